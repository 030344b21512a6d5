// The admin page: settings (applied at once), self checks, statistics per user, deleting everybody's faces.
import {api} from "./api.js";
import {clear, el, toast} from "./ui.js";

const $ = (id) => document.getElementById(id);
const form = $("admin-form");
let loaded = null;

function check(c) {
  if (!c) return el("p", {class: "muted"}, "Not checked.");
  const libs = Object.entries(c.libraries || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const versions = [c.exiftool_version && `exiftool ${c.exiftool_version}`,
    c.pyexiftool_version && `pyexiftool ${c.pyexiftool_version}`].filter(Boolean).join(", ");
  return el("div", {class: "stack"},
    el("p", {}, c.ok ? el("span", {class: "admin-ok"}, "Can run") : el("span", {class: "admin-bad"}, "Cannot run"),
      c.ok ? "" : el("span", {class: "reason"}, ": ", c.reason || "")),
    libs || versions ? el("p", {class: "muted"}, libs || versions) : null,
    (c.model_files || []).length ? el("ul", {class: "admin-files"}, c.model_files.map((f) =>
      el("li", {}, `${f.name}: `, f.ok ? "ok" : (f.problem || "missing"),
        f.size ? el("small", {class: "muted"}, ` (${(f.size / 1e6).toFixed(1)} MB)`) : null))) : null);
}

function field(label, input) {
  return el("label", {class: "field"}, el("span", {}, label), input);
}

function renderFinders(finders) {
  const box = clear($("finders"));
  for (const f of finders) {
    const p = `finders.${f.name}.`;
    const enabled = el("input", {type: "checkbox", name: `${p}enabled`, checked: f.enabled && f.check.ok,
      disabled: !f.check.ok});
    box.appendChild(el("section", {class: "card admin-finder", dataset: {finder: f.name}},
      el("h2", {}, `Finder: ${f.name}`),
      el("label", {class: "switch"}, enabled, el("span", {class: "track"}),
        f.check.ok ? "Find faces with this finder" : "Off: this finder cannot run here"),
      el("div", {class: "admin-fields"},
        field("Minimum face size (px)", el("input", {class: "input", type: "number", min: 1, max: 10000, step: 1,
          name: `${p}min_face_size`, value: f.min_face_size})),
        field("Detection confidence", el("input", {class: "input", type: "number", step: "any", min: -10, max: 10,
          name: `${p}score_threshold`, value: f.score_threshold})),
        field("Match tolerance", el("input", {class: "input", type: "number", step: "any", min: 0.01, max: 2,
          name: `${p}tolerance`, value: f.tolerance})),
        field("Model", el("select", {class: "input", name: `${p}model`},
          f.models.map((m) => el("option", {value: m, selected: m === f.model}, m))))),
      check(f.check)));
  }
}

function render(s) {
  loaded = s;
  renderFinders(s.finders);
  clear($("exiftool")).appendChild(check(s.metadata.check));
  for (const key of ["write_names", "sidecar", "read_regions"]) {
    const input = form.elements[`metadata.${key}`];
    input.checked = s.metadata[key];
    input.disabled = !s.metadata.check.ok && key !== "sidecar";
  }
  for (const select of form.querySelectorAll("select[data-choices]")) {
    const key = select.dataset.choices;
    clear(select);
    for (const choice of s.choices[key]) select.appendChild(el("option", {value: choice, selected: choice === s[key]}, choice));
  }
  form.elements.registration_open.checked = s.registration_open;
}

function values() {
  const out = {};
  for (const input of form.querySelectorAll("input[name], select[name]")) {
    if (input.disabled) continue;
    const key = input.name;
    let value;
    if (input.type === "checkbox") value = input.checked;
    else if (input.type === "number") value = input.value === "" ? null : Number(input.value);
    else value = input.value;
    out[key] = value;
  }
  return out;
}

async function loadStats() {
  const rows = clear($("user-stats"));
  for (const u of await api("GET", "/api/admin/stats")) {
    rows.appendChild(el("tr", {}, el("th", {}, u.username),
      ...["images", "faces", "confirmed", "guessed", "unknown", "ignored", "names", "errors", "seconds_detecting"]
        .map((k) => el("td", {class: "num"}, String(u[k] ?? 0)))));
  }
}

async function loadSync() {
  const s = await api("GET", "/api/admin/sync");
  $("sync-summary").textContent = `Server ${s.server_id}; automatic sync ${s.interval ? `every ${s.interval} s` : "off"}; `
    + `${s.tokens} tokens, ${s.log_entries} change-log entries, ${s.pending_imports} imports waiting for their photos.`;
  const rows = clear($("sync-peers"));
  if (!s.peers.length) rows.appendChild(el("tr", {}, el("td", {colspan: 5, class: "muted"}, "No peers.")));
  for (const p of s.peers) {
    rows.appendChild(el("tr", {}, el("th", {}, p.owner), el("td", {}, p.url), el("td", {class: "num"}, String(p.cursor)),
      el("td", {}, p.last_sync_at || "never"), el("td", {}, p.last_error || "")));
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  $("admin-error").hidden = true;
  try {
    render(await api("PUT", "/api/admin/settings", {values: values()}));
    toast("Saved. The new settings apply now.", "ok");
  } catch (err) {
    $("admin-error").textContent = err.message;
    $("admin-error").hidden = false;
  }
});
$("recheck").addEventListener("click", async () => {
  try {
    render(await api("GET", "/api/admin/settings?recheck=true"));
    toast("Checked again.", "ok");
  } catch (err) {
    toast(err.message, "error");
  }
});
$("delete-all-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("delete-all-error").hidden = true;
  try {
    const r = await api("POST", "/api/admin/delete-faces", {confirm: $("delete-all-confirm").value});
    toast(`Deleted ${r.faces} faces and ${r.names} names.`, "ok");
    $("delete-all-confirm").value = "";
    await loadStats();
  } catch (err) {
    $("delete-all-error").textContent = err.message;
    $("delete-all-error").hidden = false;
  }
});

(async () => {
  try {
    render(await api("GET", "/api/admin/settings"));
    await loadStats();
    await loadSync();
  } catch (err) {
    toast(err.message, "error");
  }
})();
