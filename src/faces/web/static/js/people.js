// The people page: every name with a face and counts; merge; undo.
import {api} from "./api.js";
import {debounce, el, plural, toast} from "./ui.js";
import {nameInput} from "./suggest.js";

const grid = document.getElementById("people");
const empty = document.getElementById("people-empty");
const filter = document.getElementById("people-filter");
const summary = document.getElementById("people-summary");
const undoButton = document.getElementById("undo-button");
const sortButtons = [...document.querySelectorAll("[data-sort]")];
let people = [];
let sort = localStorage.getItem("faces.people.sort") || "name";

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

function card(person) {
  const cover = el("a", {class: "cover", href: `/people/${person.id}`, "aria-label": person.name});
  if (person.thumb_url) cover.appendChild(el("img", {src: `${person.thumb_url}?size=384`, alt: "", loading: "lazy"}));
  else cover.appendChild(el("span", {class: "initials"}, initials(person.name)));
  const counts = [plural(person.images, "photo", "photos")];
  if (person.guessed) counts.push(`${person.guessed} guessed`);
  return el("article", {class: "person", dataset: {nameId: person.id}}, cover,
    el("div", {class: "body"},
      el("a", {class: "name", href: `/people/${person.id}`, title: person.name}, person.name),
      el("div", {class: "counts"}, counts.join(" · "))));
}

function draw() {
  const text = filter.value.trim().toLocaleLowerCase();
  let shown = people.filter((p) => !text || p.name.toLocaleLowerCase().includes(text));
  if (sort === "count") shown = [...shown].sort((a, b) => b.images - a.images || a.name.localeCompare(b.name));
  grid.replaceChildren(...shown.map(card));
  empty.hidden = people.length > 0;
  summary.textContent = people.length
    ? `${plural(people.length, "person", "people")} · ${plural(people.reduce((s, p) => s + p.confirmed, 0), "named face", "named faces")}`
    : "Everyone you have named.";
}

async function load() {
  try {
    people = await api("GET", "/api/names");
    draw();
  } catch (err) {
    toast(err.message, "error");
  }
  checkUndo();
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
    load();
  } catch (err) {
    toast(err.message, "error");
  }
});

filter.addEventListener("input", debounce(draw, 80));
function setSort(value) {
  sort = value;
  localStorage.setItem("faces.people.sort", value);
  sortButtons.forEach((b) => b.setAttribute("aria-pressed", b.dataset.sort === value ? "true" : "false"));
  draw();
}
sortButtons.forEach((b) => b.addEventListener("click", () => setSort(b.dataset.sort)));
sortButtons.forEach((b) => b.setAttribute("aria-pressed", b.dataset.sort === sort ? "true" : "false"));

// merge
const dialog = document.getElementById("merge-dialog");
const errorBox = document.getElementById("merge-error");
const picked = {from: null, into: null};
function picker(slot, placeholder) {
  const field = nameInput({placeholder, onPick: (item) => { picked[slot] = item.name_id ? item : null; field.input.value = item.label; }, onSubmit: () => {}});
  document.getElementById(`merge-${slot}`).replaceWith(field.root);
  return field;
}
const fromField = picker("from", "Name to merge away");
const intoField = picker("into", "Name to keep");
document.getElementById("merge-button").addEventListener("click", () => {
  picked.from = picked.into = null;
  fromField.clear();
  intoField.clear();
  errorBox.hidden = true;
  dialog.showModal();
  fromField.focus();
});
dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
document.getElementById("merge-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!picked.from || !picked.into || picked.from.label !== fromField.input.value || picked.into.label !== intoField.input.value) {
    errorBox.textContent = "Pick both names from the lists.";
    errorBox.hidden = false;
    return;
  }
  try {
    await api("POST", "/api/names/merge", {keep: picked.into.name_id, other: picked.from.name_id});
    dialog.close();
    toast(`${picked.from.label} merged into ${picked.into.label}.`, "ok");
    load();
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  }
});

load();
