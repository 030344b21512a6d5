// The sharing page: contacts, requests, groups of contacts, and the two lock dialogs (view / write lists).
import {api} from "./api.js";
import {clear, el, toast} from "./ui.js";

let contacts = [];
let groups = [];
let lists = {view: null, write: null};
let editing = null;

const $ = (id) => document.getElementById(id);

function person(c) {
  return el("span", {class: "who"}, c.display_name, " ", el("small", {class: "muted"}, `@${c.username}`));
}

async function run(promise, okText) {
  try {
    const result = await promise;
    if (okText) toast(okText, "ok");
    return result;
  } catch (err) {
    toast(err.message, "error");
    throw err;
  }
}

function renderContacts(data) {
  contacts = data.contacts;
  const list = clear($("contacts"));
  if (!contacts.length) list.appendChild(el("li", {class: "muted"}, "No contacts yet."));
  for (const c of contacts) {
    list.appendChild(el("li", {dataset: {userId: c.user_id}}, person(c),
      el("button", {type: "button", class: "btn ghost small", onclick: () => removeContact(c)}, "Remove")));
  }
  $("incoming-box").hidden = !data.incoming.length;
  const incoming = clear($("incoming"));
  for (const c of data.incoming) {
    incoming.appendChild(el("li", {}, person(c), el("span", {class: "sharing-inline"},
      el("button", {type: "button", class: "btn primary small", onclick: () => answer(c, true)}, "Accept"),
      el("button", {type: "button", class: "btn ghost small", onclick: () => answer(c, false)}, "Decline"))));
  }
  $("outgoing-box").hidden = !data.outgoing.length;
  const outgoing = clear($("outgoing"));
  for (const c of data.outgoing) {
    outgoing.appendChild(el("li", {}, person(c),
      el("button", {type: "button", class: "btn ghost small", onclick: () => removeContact(c)}, "Withdraw")));
  }
}

function renderGroups(data) {
  groups = data;
  const box = clear($("groups"));
  if (!groups.length) box.appendChild(el("p", {class: "muted"}, "No groups yet."));
  for (const g of groups) {
    const members = el("ul", {class: "sharing-list"});
    for (const m of g.members) {
      members.appendChild(el("li", {}, person(m), el("button", {type: "button", class: "btn ghost small",
        onclick: () => run(api("DELETE", `/api/contact-groups/${g.id}/members/${m.user_id}`)).then(renderGroups)},
        "Take out")));
    }
    const inGroup = new Set(g.members.map((m) => m.user_id));
    const select = el("select", {class: "input", "aria-label": `Add a contact to ${g.name}`},
      el("option", {value: ""}, "Add a contact…"),
      contacts.filter((c) => !inGroup.has(c.user_id)).map((c) => el("option", {value: c.user_id}, c.display_name)));
    select.addEventListener("change", () => {
      if (select.value) run(api("PUT", `/api/contact-groups/${g.id}/members/${select.value}`)).then(renderGroups);
    });
    box.appendChild(el("div", {class: "card stack", dataset: {groupId: g.id}},
      el("div", {class: "sharing-inline"}, el("h3", {}, g.name),
        el("button", {type: "button", class: "btn ghost small", onclick: () => renameGroup(g)}, "Rename"),
        el("button", {type: "button", class: "btn ghost small", onclick: () => deleteGroup(g)}, "Delete")),
      members, select));
  }
}

function summary(list) {
  if (list.default) return "default";
  const allowed = list.allow_users.length + list.allow_groups.length;
  const denied = list.deny_users.length + list.deny_groups.length;
  if (list.contacts === "deny") return "only you";
  const parts = [];
  if (list.contacts === "allow") parts.push("all contacts");
  if (allowed) parts.push(`${allowed} allowed`);
  if (denied) parts.push(`${denied} denied`);
  return parts.length ? parts.join(", ") : "only you";
}

function renderLocks(data) {
  lists = data;
  $("lock-view-summary").textContent = summary(data.view);
  $("lock-write-summary").textContent = summary(data.write);
  $("lock-view").disabled = false;  // the dialogs open only once contacts, groups and lists are known
  $("lock-write").disabled = false;
}

function choiceSelect(name, value) {
  return el("select", {class: "input", name, "aria-label": name},
    el("option", {value: "", selected: !value}, "—"),
    el("option", {value: "allow", selected: value === "allow"}, "allow"),
    el("option", {value: "deny", selected: value === "deny"}, "deny"));
}

function openLock(kind) {
  editing = kind;
  const list = lists[kind];
  $("lock-title").textContent = kind === "view" ? "Who may view your faces and names" : "Who may name your faces";
  $("mode-default-text").textContent = kind === "view" ? "The default (normally: all your contacts)"
    : "The default (normally: only you)";
  $("mode-default").checked = list.default;
  $("mode-custom").checked = !list.default;
  const rows = clear($("lock-rows"));
  rows.appendChild(el("tr", {}, el("td", {}, "All my contacts"), el("td", {}, choiceSelect("contacts", list.contacts))));
  for (const g of groups) {
    const v = list.allow_groups.includes(g.id) ? "allow" : list.deny_groups.includes(g.id) ? "deny" : "";
    rows.appendChild(el("tr", {}, el("td", {}, `Group: ${g.name}`), el("td", {}, choiceSelect(`group-${g.id}`, v))));
  }
  for (const c of contacts) {
    const v = list.allow_users.includes(c.user_id) ? "allow" : list.deny_users.includes(c.user_id) ? "deny" : "";
    rows.appendChild(el("tr", {}, el("td", {}, c.display_name, " ", el("small", {class: "muted"}, `@${c.username}`)),
      el("td", {}, choiceSelect(`user-${c.user_id}`, v))));
  }
  $("lock-error").hidden = true;
  $("lock-dialog").showModal();
}

async function saveLock() {
  const body = {default: $("mode-default").checked, contacts: null, allow_users: [], deny_users: [],
    allow_groups: [], deny_groups: []};
  for (const select of $("lock-rows").querySelectorAll("select")) {
    const v = select.value;
    if (!v) continue;
    if (select.name === "contacts") body.contacts = v;
    else if (select.name.startsWith("group-")) body[`${v}_groups`].push(Number(select.name.slice(6)));
    else body[`${v}_users`].push(Number(select.name.slice(5)));
  }
  if (!body.default && !$("mode-custom").checked) body.default = false;
  try {
    renderLocks(await api("PUT", `/api/permissions/${editing}`, body));
    $("lock-dialog").close();
    toast("Saved.", "ok");
  } catch (err) {
    $("lock-error").textContent = err.message;
    $("lock-error").hidden = false;
  }
}

async function removeContact(c) {
  if (!confirm(`End the connection with ${c.display_name}?`)) return;
  renderContacts(await run(api("DELETE", `/api/contacts/${c.user_id}`)));
  await reloadGroups();
}

async function answer(c, accept) {
  renderContacts(await run(api("POST", `/api/contacts/requests/${c.request_id}`, {accept})));
  await reloadGroups();
}

async function renameGroup(g) {
  const name = prompt("New name of the group", g.name);
  if (name && name !== g.name) renderGroups(await run(api("PATCH", `/api/contact-groups/${g.id}`, {name})));
}

async function deleteGroup(g) {
  if (!confirm(`Delete the group ${g.name}? Photos only it could see become private.`)) return;
  renderGroups(await run(api("DELETE", `/api/contact-groups/${g.id}`)));
  renderLocks(await api("GET", "/api/permissions"));
}

async function reloadGroups() {
  renderGroups(await api("GET", "/api/contact-groups"));
}

$("contact-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("contact-username");
  renderContacts(await run(api("POST", "/api/contacts", {username: input.value.trim()}), "Request sent."));
  input.value = "";
});
$("group-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("group-name");
  renderGroups(await run(api("POST", "/api/contact-groups", {name: input.value})));
  input.value = "";
});
$("lock-view").addEventListener("click", () => openLock("view"));
$("lock-write").addEventListener("click", () => openLock("write"));
$("lock-save").addEventListener("click", saveLock);
$("lock-cancel").addEventListener("click", () => $("lock-dialog").close());
$("lock-rows").addEventListener("change", () => { $("mode-custom").checked = true; });

(async () => {
  try {
    renderContacts(await api("GET", "/api/contacts"));
    await reloadGroups();
    renderLocks(await api("GET", "/api/permissions"));
  } catch (err) {
    toast(err.message, "error");
  }
})();
