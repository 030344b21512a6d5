// Statistics of my library, and deleting all my faces and names (with a confirmation step).
import {api} from "./api.js";
import {clear, el, toast} from "./ui.js";

const $ = (id) => document.getElementById(id);
const LABELS = [["images", "Images"], ["faces", "Faces"], ["confirmed", "Named (confirmed)"], ["guessed", "Guessed"],
  ["unnamed", "Unnamed"], ["unknown", "Unknown"], ["ignored", "Ignored"], ["removed", "Removed by the person"],
  ["names", "Names"], ["errors", "Errors"], ["seconds_detecting", "Seconds spent detecting"]];

async function load() {
  const s = await api("GET", "/api/stats");
  const body = clear($("stats"));
  for (const [key, label] of LABELS) {
    body.appendChild(el("tr", {dataset: {key}}, el("th", {}, label), el("td", {class: "num"}, String(s[key] ?? 0))));
  }
  const finders = clear($("finders"));
  for (const [name, f] of Object.entries(s.finders || {})) {
    finders.appendChild(el("tr", {}, el("th", {}, name), ...["processed", "faces", "no_face", "errors", "pending",
      "seconds"].map((k) => el("td", {class: "num"}, String(f[k] ?? 0)))));
  }
}

$("delete-open").addEventListener("click", () => {
  $("delete-error").hidden = true;
  $("delete-confirm").value = "";
  $("delete-dialog").showModal();
});
$("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
$("delete-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const r = await api("POST", "/api/library/delete-faces", {confirm: $("delete-confirm").value});
    $("delete-dialog").close();
    toast(`Deleted ${r.faces} faces and ${r.names} names.`, "ok");
    await load();
  } catch (err) {
    $("delete-error").textContent = err.message;
    $("delete-error").hidden = false;
  }
});

load().catch((err) => toast(err.message, "error"));
