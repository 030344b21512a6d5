// The groups page: look-alike unnamed faces; name a group in one action, or take a face out of it.
import {api} from "./api.js";
import {el, plural, toast} from "./ui.js";
import {nameInput} from "./suggest.js";

const box = document.getElementById("groups");
const empty = document.getElementById("groups-empty");
const more = document.getElementById("groups-more");
const undoButton = document.getElementById("undo-button");
const summary = document.getElementById("groups-summary");
const PAGE = 20;
let offset = 0;
let total = 0;

function faceTile(group, face, card) {
  const remove = el("button", {type: "button", "aria-label": "Not the same person: take out of this group", title: "Not the same person"}, "×");
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    try {
      const fresh = await api("POST", `/api/groups/${group.id}/remove`, {face_ids: [face.id]});
      if (fresh.size < 2) { card.remove(); total -= 1; showEmpty(); }
      else card.replaceWith(groupCard(fresh));
    } catch (err) {
      remove.disabled = false;
      toast(err.message, "error");
    }
  });
  return el("div", {class: "group-face", dataset: {faceId: face.id}},
    el("img", {src: `${face.thumb_url}?size=192`, alt: "Face", loading: "lazy"}), remove);
}

function groupCard(group) {
  const card = el("section", {class: "group-card", dataset: {groupId: group.id}});
  const errorBox = el("p", {class: "form-error", role: "alert", hidden: true});
  let chosen = null;
  async function nameIt(body) {
    errorBox.hidden = true;
    try {
      const result = await api("POST", `/api/groups/${group.id}/name`, body);
      toast(`${plural(result.faces, "face", "faces")} named ${result.person.name}.`, "ok");
      card.remove();
      total -= 1;
      showEmpty();
      checkUndo();
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    }
  }
  const field = nameInput({
    placeholder: "Who are they?",
    onPick: (item) => { chosen = item; field.input.value = item.label; },
    onSubmit: (text) => { if (text) nameIt({name: text}); },
  });
  const form = el("form", {onsubmit: (e) => {
    e.preventDefault();
    const text = field.input.value.trim();
    if (!text) return;
    nameIt(chosen && chosen.name_id && chosen.label === text ? {name_id: chosen.name_id} : {name: text});
  }}, field.root, el("button", {type: "submit", class: "btn primary"}, "Name all"));
  const faces = el("div", {class: "group-faces"}, group.faces.map((f) => faceTile(group, f, card)));
  if (group.size > group.faces.length) faces.appendChild(el("div", {class: "group-face group-more"}, `+${group.size - group.faces.length}`));
  card.append(
    el("header", {},
      el("span", {class: "count"}, plural(group.size, "face", "faces")),
      el("span", {class: "muted"}, `in ${plural(group.images, "photo", "photos")}`),
      form),
    errorBox, faces);
  return card;
}

function showEmpty() {
  empty.hidden = box.children.length > 0;
  summary.textContent = total
    ? `${plural(total, "group", "groups")} of look-alike faces without a name. Name a whole group at once; take out a face that does not belong.`
    : "Faces without a name that look alike. Name a whole group at once; take out a face that does not belong.";
}

async function loadPage() {
  try {
    const page = await api("GET", `/api/groups?offset=${offset}&limit=${PAGE}`);
    total = page.total;
    page.groups.forEach((g) => box.appendChild(groupCard(g)));
    offset += page.groups.length;
    more.hidden = offset >= total;
  } catch (err) {
    toast(err.message, "error");
  }
  showEmpty();
}

async function checkUndo() {
  try {
    const state = await api("GET", "/api/undo");
    undoButton.hidden = !state.available;
    undoButton.textContent = state.available ? `Undo ${state.action}` : "Undo";
  } catch {
    undoButton.hidden = true;
  }
}
undoButton.addEventListener("click", async () => {
  try {
    const result = await api("POST", "/api/undo", {});
    toast(result.message, "ok");
    box.replaceChildren();
    offset = 0;
    loadPage();
    checkUndo();
  } catch (err) {
    toast(err.message, "error");
  }
});
document.getElementById("groups-more-button").addEventListener("click", loadPage);

loadPage();
checkUndo();
