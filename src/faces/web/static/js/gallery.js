// The gallery: photos newest first with endless scrolling, zoom, frames, naming in place, full size view,
// uploads with progress, detection progress. Also drives the search page and a person's page.
import {api, upload} from "./api.js";
import {clear, debounce, el, formatDate, icon, plural, toast} from "./ui.js";
import {closeEditor, openEditor, renderFrames} from "./frames.js";
import {nameInput} from "./suggest.js";
import {visibilityControl} from "./sharing_visibility.js";

const app = document.getElementById("gallery-app");
const PAGE = app.dataset.page; // gallery | search | person
const PERSON = app.dataset.personId ? Number(app.dataset.personId) : null;
const OWNER = app.dataset.ownerId ? Number(app.dataset.ownerId) : null;

const grid = document.getElementById("gallery");
const emptyBox = document.getElementById("empty");
const loadMore = document.getElementById("load-more");
const sentinel = document.getElementById("sentinel");
const zoomInput = document.getElementById("zoom");
const framesSwitch = document.getElementById("show-frames");

const state = {
  images: [],          // ImageOut, in gallery order
  byId: new Map(),     // id -> {image, tile}
  cursor: null,
  done: false,
  loading: false,
  generation: 0,       // bumps when filters change, so late answers of an old query are dropped
  filters: null,       // query parameters of the current listing (null: nothing asked yet)
  perRow: 4,
  rowsBuilt: 0,        // images already packed into complete rows
  canWrite: true,
};

const ICON_EXPAND = '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M4 4h6v2H7.4l3.3 3.3-1.4 1.4L6 7.4V10H4zm10 0h6v6h-2V7.4l-3.3 3.3-1.4-1.4L16.6 6H14zM4 14h2v2.6l3.3-3.3 1.4 1.4L7.4 18H10v2H4zm14 0h2v6h-6v-2h2.6l-3.3-3.3 1.4-1.4 3.3 3.3z"/></svg>';

// --- settings kept between visits -----------------------------------------------------------------------------

function defaultPerRow() {
  const w = window.innerWidth;
  return w < 500 ? 2 : w < 900 ? 3 : w < 1400 ? 4 : 5;
}
state.perRow = Number(localStorage.getItem("faces.zoom")) || defaultPerRow();
zoomInput.value = String(state.perRow);
framesSwitch.checked = localStorage.getItem("faces.frames") !== "off";
grid.classList.toggle("frames-hidden", !framesSwitch.checked);

zoomInput.addEventListener("input", () => {
  state.perRow = Number(zoomInput.value);
  localStorage.setItem("faces.zoom", String(state.perRow));
  closeEditor();
  relayout();
});
framesSwitch.addEventListener("change", () => {
  localStorage.setItem("faces.frames", framesSwitch.checked ? "on" : "off");
  grid.classList.toggle("frames-hidden", !framesSwitch.checked);
  closeEditor();
});

// --- tiles and rows -----------------------------------------------------------------------------------------

function ratio(image) {
  if (image.error || !image.width || !image.height) return 1;
  return image.width / image.height; // not clamped: the frames are placed in shares of the tile
}

function thumbSize() {
  const width = (grid.clientWidth || window.innerWidth) / state.perRow * (window.devicePixelRatio || 1);
  return width > 900 ? 1280 : width > 420 ? 640 : 320;
}

function statusBadge(image) {
  if (image.status === "pending") return el("span", {class: "tile-status"}, el("span", {class: "spinner"}), "Looking for faces");
  if (image.status === "done" && image.finder_errors && image.finder_errors.length && !image.faces.length) {
    return el("span", {class: "tile-status", title: image.finder_errors.join("\n")}, "Detection failed");
  }
  return null;
}

function buildTile(image) {
  const tile = el("div", {class: "tile", dataset: {imageId: image.id}, tabindex: "-1"});
  fillTile(tile, image);
  let lastTap = 0;
  tile.addEventListener("dblclick", () => openLightbox(image.id));
  tile.addEventListener("pointerup", (e) => {
    if (e.pointerType !== "touch" || e.target.closest(".frame, .expand")) return;
    const now = Date.now();
    if (now - lastTap < 320) { lastTap = 0; openLightbox(image.id); } else lastTap = now;
  });
  return tile;
}

function fillTile(tile, image) {
  clear(tile);
  tile.className = "tile";
  const r = ratio(image);
  tile.style.flexGrow = String(r);
  tile.style.aspectRatio = String(r);
  if (image.error) {
    tile.classList.add("broken");
    tile.title = image.error;
    tile.appendChild(el("div", {class: "broken-body"},
      el("strong", {}, "This file cannot be shown"), el("span", {}, image.error)));
    return;
  }
  const img = el("img", {alt: image.taken_at ? `Photo taken ${formatDate(image.taken_at)}` : "Photo",
    loading: "lazy", decoding: "async", draggable: "false"});
  img.addEventListener("load", () => img.classList.add("loaded"));
  img.src = `${image.thumb_url}?size=${thumbSize()}`;
  tile.appendChild(img);
  const layer = el("div", {class: "frames"});
  renderFrames(layer, image, (face, frame) => onFrame(image, face, frame));
  tile.appendChild(layer);
  const badge = statusBadge(image);
  if (badge) tile.appendChild(badge);
  const expand = el("button", {type: "button", class: "expand", "aria-label": "Show full size", title: "Full size (double-click)"});
  expand.innerHTML = ICON_EXPAND; // a constant icon, no user text
  expand.addEventListener("click", (e) => { e.stopPropagation(); openLightbox(image.id); });
  tile.appendChild(expand);
}

function updateImage(image) {
  const entry = state.byId.get(image.id);
  if (!entry) return;
  const old = entry.image;
  entry.image = image;
  const index = state.images.findIndex((i) => i.id === image.id);
  if (index >= 0) state.images[index] = image;
  if (old.status === image.status && !old.error && !image.error) {
    // keep the loaded <img>: only the frames and the badge change
    const layer = entry.tile.querySelector(".frames");
    if (layer) renderFrames(layer, image, (face, frame) => onFrame(image, face, frame));
    const badge = entry.tile.querySelector(".tile-status");
    if (badge) badge.remove();
    const fresh = statusBadge(image);
    if (fresh) entry.tile.appendChild(fresh);
  } else {
    fillTile(entry.tile, image);
  }
  if (lightbox.imageId === image.id) renderLightbox();
}

function makeRow(images, complete) {
  const row = el("div", {class: "gallery-row"});
  for (const image of images) row.appendChild(state.byId.get(image.id).tile);
  if (!complete) {
    // keep the last row's photos the size they would have in a full row
    const avg = images.reduce((s, i) => s + ratio(i), 0) / images.length;
    row.appendChild(el("div", {class: "filler", style: {flexGrow: String(avg * (state.perRow - images.length))}}));
  }
  return row;
}

function relayout() {
  grid.classList.toggle("small-tiles", state.perRow >= 5);
  const rows = [];
  for (let i = 0; i < state.images.length; i += state.perRow) {
    const part = state.images.slice(i, i + state.perRow);
    rows.push(makeRow(part, part.length === state.perRow));
  }
  grid.replaceChildren(...rows);
  state.rowsBuilt = Math.floor(state.images.length / state.perRow) * state.perRow;
}

function appendLayout() {
  // drop the last, incomplete row and pack from there
  const last = grid.lastElementChild;
  if (last && last.querySelector(".filler")) last.remove();
  for (let i = state.rowsBuilt; i < state.images.length; i += state.perRow) {
    const part = state.images.slice(i, i + state.perRow);
    grid.appendChild(makeRow(part, part.length === state.perRow));
  }
  state.rowsBuilt = Math.floor(state.images.length / state.perRow) * state.perRow;
}

// --- loading pages ------------------------------------------------------------------------------------------

function listUrl() {
  const params = new URLSearchParams(state.filters);
  params.set("limit", "60");
  if (state.cursor) params.set("cursor", state.cursor);
  return `/api/images?${params}`;
}

async function loadNext() {
  if (state.loading || state.done || !state.filters) return;
  state.loading = true;
  const generation = state.generation;
  loadMore.hidden = false;
  try {
    const page = await api("GET", listUrl());
    if (generation !== state.generation) return;
    for (const image of page.items) {
      if (state.byId.has(image.id)) continue;
      state.images.push(image);
      state.byId.set(image.id, {image, tile: buildTile(image)});
    }
    state.cursor = page.next_cursor;
    state.done = !page.next_cursor;
    appendLayout();
    showEmpty();
    nearby.observeNew();
  } catch (err) {
    toast(err.message, "error");
    state.done = true;
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      loadMore.hidden = true;
      // keep filling while the sentinel is still on screen
      if (!state.done && sentinelVisible()) loadNext();
    }
  }
}

function sentinelVisible() {
  return sentinel.getBoundingClientRect().top < window.innerHeight + 1200;
}

function reset(filters) {
  closeEditor();
  state.generation += 1;
  state.images = [];
  state.byId.clear();
  state.cursor = null;
  state.done = false;
  state.loading = false;
  state.rowsBuilt = 0;
  state.filters = filters;
  clear(grid);
  emptyBox.hidden = true;
  loadNext();
}

function showEmpty() {
  const none = state.done && state.images.length === 0;
  emptyBox.hidden = !none;
  const count = document.getElementById("result-count");
  if (count && state.filters) {
    count.hidden = false;
    count.textContent = state.done ? plural(state.images.length, "photo", "photos") + " found" : "Photos found so far:";
    if (!state.done) count.textContent = `${state.images.length}+ photos found`;
  }
  if (!none) return;
  clear(emptyBox);
  if (PAGE === "gallery") {
    emptyBox.append(el("span", {class: "emoji"}, icon("camera")), el("h2", {}, "No photos yet"),
      el("p", {}, "Drop photos anywhere on this page, or use the Upload button. Faces are found by themselves."),
      el("button", {type: "button", class: "btn primary", onclick: () => fileInput.click()}, "Upload photos"));
  } else if (PAGE === "person") {
    emptyBox.append(el("h2", {}, "No photos"), el("p", {}, "No photo has this name confirmed. Switch on guessed photos to see the guesses."));
  } else {
    emptyBox.append(el("h2", {}, "Nothing found"), el("p", {}, "Try other names, OR instead of AND, or a wider date range."));
  }
}

new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) loadNext();
}, {rootMargin: "1200px 0px"}).observe(sentinel);

window.addEventListener("resize", debounce(() => { if (state.images.length) relayout(); }, 150));

// --- keeping frames current ---------------------------------------------------------------------------------

// Tiles near the screen are refreshed at once after a change; the others when they come near.
const nearby = (() => {
  const near = new Set();
  const stale = new Set();
  const observed = new WeakSet();
  const queueRefresh = debounce(() => {
    const ids = [...stale].filter((id) => near.has(id));
    ids.forEach((id) => stale.delete(id));
    if (ids.length) refreshImages(ids);
  }, 100);
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const id = Number(entry.target.dataset.imageId);
      if (entry.isIntersecting) near.add(id); else near.delete(id);
    }
    if (stale.size) queueRefresh();
  }, {rootMargin: "100% 0px"});
  return {
    observeNew() {
      for (const {tile} of state.byId.values()) {
        if (!observed.has(tile)) { observed.add(tile); observer.observe(tile); }
      }
    },
    nearIds() { return [...near].filter((id) => state.byId.has(id)); },
    markAllStale() {
      for (const id of state.byId.keys()) if (!near.has(id)) stale.add(id);
    },
  };
})();

async function refreshImages(ids) {
  for (let i = 0; i < ids.length; i += 200) {
    const part = ids.slice(i, i + 200);
    try {
      const batch = await api("GET", `/api/images/batch?ids=${part.join(",")}`);
      batch.items.forEach(updateImage);
    } catch (err) {
      if (err.status !== 404) toast(err.message, "error");
    }
  }
}

function refreshAfterNaming() {
  nearby.markAllStale();
  const ids = nearby.nearIds();
  if (lightbox.imageId && !ids.includes(lightbox.imageId)) ids.push(lightbox.imageId);
  refreshImages(ids);
  if (PAGE === "person") loadPerson();
}

function onFrame(image, face, frame) {
  openEditor(face, frame, {owner: image.owner_id, readOnly: !state.canWrite, onChanged: refreshAfterNaming});
}

// --- full size view -----------------------------------------------------------------------------------------

const lightbox = {imageId: null, root: null};

function openLightbox(imageId) {
  closeEditor();
  lightbox.imageId = imageId;
  if (!lightbox.root) {
    lightbox.root = el("div", {class: "lightbox", role: "dialog", "aria-modal": "true", "aria-label": "Photo"});
    document.body.appendChild(lightbox.root);
    document.addEventListener("keydown", (e) => {
      if (!lightbox.imageId || document.querySelector(".editor")) return;
      if (e.key === "Escape") closeLightbox();
      else if (e.key === "ArrowRight") step(1);
      else if (e.key === "ArrowLeft") step(-1);
    });
  }
  lightbox.root.hidden = false;
  document.body.style.overflow = "hidden";
  renderLightbox();
}

function closeLightbox() {
  closeEditor();
  lightbox.imageId = null;
  if (lightbox.root) lightbox.root.hidden = true;
  document.body.style.overflow = "";
}

function step(delta) {
  const index = state.images.findIndex((i) => i.id === lightbox.imageId);
  const next = state.images[index + delta];
  if (next) { closeEditor(); lightbox.imageId = next.id; renderLightbox(); }
  if (index + delta >= state.images.length - 3) loadNext();
}

function renderLightbox() {
  const entry = state.byId.get(lightbox.imageId);
  if (!entry) return closeLightbox();
  const image = entry.image;
  const when = image.taken_at ? `Taken ${formatDate(image.taken_at)}` : `Added ${formatDate(image.added_at)}`;
  const names = image.faces.filter((f) => f.state === "confirmed" && f.name).map((f) => f.name.name);
  const bar = el("div", {class: "lightbox-bar"},
    el("span", {class: "title"}, names.length ? `${names.join(", ")} · ${when}` : when),
    visibilityControl(image.id),  // hides itself for observers who may not change it
    el("button", {type: "button", class: "btn small", "aria-label": "Previous photo", onclick: () => step(-1)}, "‹"),
    el("button", {type: "button", class: "btn small", "aria-label": "Next photo", onclick: () => step(1)}, "›"),
    el("button", {type: "button", class: "btn small", id: "lightbox-close", onclick: closeLightbox}, "Close"));
  let stage;
  if (image.error) {
    stage = el("div", {class: "lightbox-stage"}, el("div", {class: "empty"}, el("h2", {}, "This file cannot be shown"), el("p", {}, image.error)));
  } else {
    const figure = el("div", {class: "lightbox-figure"});
    const img = el("img", {src: image.full_url, alt: "Photo at full size"});
    const layer = el("div", {class: "frames"});
    renderFrames(layer, image, (face, frame) => onFrame(image, face, frame));
    figure.append(img, layer);
    stage = el("div", {class: "lightbox-stage"}, figure);
    stage.addEventListener("click", (e) => { if (e.target === stage) closeLightbox(); });
  }
  const keepFrames = grid.classList.contains("frames-hidden");
  lightbox.root.classList.toggle("frames-hidden", keepFrames);
  lightbox.root.replaceChildren(bar, stage);
}

// --- detection progress -------------------------------------------------------------------------------------

const pill = document.getElementById("detection-pill");
let pollTimer = null;
let lastDone = -1;

function showDetection(status) {
  if (!pill) return;
  clear(pill);
  pill.className = "pill";
  if (status.running && (status.total > 0 || status.phase)) {
    pill.classList.add("running");
    const share = status.total ? Math.round((status.done / status.total) * 100) : 0;
    pill.append(el("span", {class: "spinner"}),
      status.total ? `Detection is running: ${status.done} of ${status.total}` : "Detection is running");
    if (status.total) pill.append(el("span", {class: "bar"}, el("i", {style: {width: `${share}%`}})));
    pill.hidden = false;
  } else if (status.error) {
    pill.classList.add("error");
    pill.append(status.error);
    pill.hidden = false;
  } else {
    pill.hidden = true;
  }
  pill.title = status.message;
}

async function pollDetection() {
  clearTimeout(pollTimer);
  try {
    const status = await api("GET", "/api/detection");
    showDetection(status);
    const pending = state.images.filter((i) => i.status === "pending").map((i) => i.id);
    if (status.running) {
      if (status.done !== lastDone && pending.length) refreshImages(pending);
      lastDone = status.done;
      pollTimer = setTimeout(pollDetection, 2000);
    } else {
      lastDone = -1;
      if (pending.length) {
        // the run has ended: show its faces and the new guesses
        nearby.markAllStale();
        refreshImages([...new Set([...pending, ...nearby.nearIds()])]);
      }
    }
  } catch (err) {
    pollTimer = setTimeout(pollDetection, 5000);
  }
}

async function startDetection() {
  try {
    const status = await api("POST", "/api/detection", {auto: true});
    showDetection(status);
  } catch (err) {
    // a library one may only look at cannot be started: just show the progress
  }
  pollTimer = setTimeout(pollDetection, 800);
}

// --- uploads ------------------------------------------------------------------------------------------------

const fileInput = document.getElementById("file-input");
const uploadPanel = document.getElementById("upload-panel");
const uploadBar = document.getElementById("upload-bar");
const uploadList = document.getElementById("upload-list");
const uploadTitle = document.getElementById("upload-title");
const OUTCOME = {added: ["Added", "ok"], duplicate: ["Already there", "dup"], unreadable: ["Cannot be read", "bad"], rejected: ["Not added", "bad"]};
let uploading = false;

async function uploadFiles(files) {
  files = [...files].filter((f) => f.size > 0 || f.type);
  if (!files.length) return;
  if (uploading) { toast("Please wait until the current upload is done.", "info"); return; }
  uploading = true;
  uploadPanel.hidden = false;
  clear(uploadList);
  const total = files.reduce((s, f) => s + f.size, 0) || 1;
  let sent = 0;
  let added = 0;
  uploadTitle.textContent = `Uploading ${plural(files.length, "photo", "photos")}…`;
  uploadBar.style.width = "0%";
  const rows = files.map((f) => {
    const li = el("li", {}, el("span", {class: "fname"}, f.name), el("span", {class: "outcome muted"}, "waiting"));
    uploadList.appendChild(li);
    return li;
  });
  for (let i = 0; i < files.length; i++) {
    const file = files[i];
    const form = new FormData();
    form.append("files", file, file.name);
    const outcome = rows[i].querySelector(".outcome");
    outcome.textContent = "uploading…";
    try {
      const result = await upload("/api/uploads", form, (loaded) => {
        uploadBar.style.width = `${Math.min(100, ((sent + loaded) / total) * 100)}%`;
      });
      const item = result.files[0];
      const [text, kind] = OUTCOME[item.outcome] || [item.outcome, "dup"];
      outcome.textContent = text;
      rows[i].className = kind;
      if (item.error) rows[i].title = item.error;
      if (item.outcome === "added") added += 1;
    } catch (err) {
      outcome.textContent = err.message;
      rows[i].className = "bad";
    }
    sent += file.size;
    uploadBar.style.width = `${Math.min(100, (sent / total) * 100)}%`;
  }
  uploading = false;
  uploadTitle.textContent = added ? `${plural(added, "photo", "photos")} added` : "Upload finished";
  if (!uploadList.querySelector("li.bad")) {
    setTimeout(() => { if (!uploading) uploadPanel.hidden = true; }, 8000);
  }
  if (added) {
    toast(`${plural(added, "photo", "photos")} added. Looking for faces…`, "ok");
    reset(state.filters);
    pollTimer = setTimeout(pollDetection, 500);
  }
}

if (PAGE === "gallery") {
  document.getElementById("upload-button").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => { uploadFiles(fileInput.files); fileInput.value = ""; });
  document.getElementById("upload-close").addEventListener("click", () => { uploadPanel.hidden = true; });
  const dropzone = document.getElementById("dropzone");
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth += 1; dropzone.hidden = false; } });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) dropzone.hidden = true; });
  document.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    dropzone.hidden = true;
    uploadFiles(e.dataTransfer.files);
  });
}

// --- search -------------------------------------------------------------------------------------------------

function setupSearch() {
  const form = document.getElementById("search-form");
  const chipsBox = document.getElementById("search-chips");
  const fromInput = document.getElementById("search-from");
  const toInput = document.getElementById("search-to");
  const guesses = document.getElementById("search-guesses");
  const matchButtons = [...form.querySelectorAll("[data-match]")];
  const chosen = new Map(); // name id -> label
  let match = "all";

  const field = nameInput({
    bare: true, placeholder: "Add a name", id: "search-name-input", showOnFocus: true,
    onPick: (item) => {
      if (!item.name_id) { toast("This contact has no photos with a name yet.", "info"); return; }
      chosen.set(item.name_id, item.label);
      field.clear();
      drawChips();
    },
    onSubmit: () => {},
  });

  function drawChips() {
    chipsBox.replaceChildren(...[...chosen].map(([id, label]) => el("span", {class: "chip"}, label,
      el("button", {type: "button", "aria-label": `Remove ${label}`, onclick: () => { chosen.delete(id); drawChips(); }}, "×"))), field.root);
  }

  function setMatch(value) {
    match = value;
    matchButtons.forEach((b) => b.setAttribute("aria-pressed", b.dataset.match === value ? "true" : "false"));
  }
  matchButtons.forEach((b) => b.addEventListener("click", () => setMatch(b.dataset.match)));

  function run() {
    const params = new URLSearchParams();
    for (const id of chosen.keys()) params.append("name", String(id));
    if (chosen.size > 1) params.set("match", match);
    if (fromInput.value) params.set("from", fromInput.value);
    if (toInput.value) params.set("to", toInput.value);
    if (guesses.checked) params.set("guesses", "true");
    const shown = new URLSearchParams(params);
    for (const [id, label] of chosen) shown.append("label", `${id}:${label}`);
    history.replaceState(null, "", `/search?${shown}`);
    reset(params);
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); field.close(); run(); });

  // a search from the address (links and reloads)
  const query = new URLSearchParams(location.search);
  const labels = new Map(query.getAll("label").map((v) => {
    const at = v.indexOf(":");
    return [Number(v.slice(0, at)), v.slice(at + 1)];
  }));
  for (const id of query.getAll("name").map(Number).filter(Boolean)) chosen.set(id, labels.get(id) || `#${id}`);
  setMatch(query.get("match") === "any" ? "any" : "all");
  fromInput.value = query.get("from") || "";
  toInput.value = query.get("to") || "";
  guesses.checked = query.get("guesses") === "true";
  drawChips();
  if (query.toString()) run();
  else {
    emptyBox.hidden = false;
    emptyBox.replaceChildren(el("span", {class: "emoji"}, icon("search")), el("h2", {}, "Find photos"),
      el("p", {}, "Pick people (photos with all of them, or with any of them) and a date range, then search."));
  }
}

// --- a person's page ----------------------------------------------------------------------------------------

async function loadPerson() {
  try {
    const person = await api("GET", `/api/names/${PERSON}`);
    document.getElementById("person-name").textContent = person.name;
    document.title = `${person.name} · faces`;
    document.getElementById("person-counts").textContent =
      `${plural(person.images, "photo", "photos")} · ${plural(person.confirmed, "face", "faces")} named` +
      (person.guessed ? ` · ${person.guessed} guessed` : "");
    const avatar = document.getElementById("person-avatar");
    if (person.thumb_url) { avatar.src = `${person.thumb_url}?size=192`; avatar.hidden = false; }
    return person;
  } catch (err) {
    if (err.status === 404) location.assign("/people");
    return null;
  }
}

function setupPerson() {
  const guesses = document.getElementById("person-guesses");
  const listing = () => {
    const params = new URLSearchParams({name: String(PERSON)});
    if (OWNER) params.set("owner", String(OWNER));
    if (guesses.checked) params.set("guesses", "true");
    return params;
  };
  guesses.addEventListener("change", () => reset(listing()));
  loadPerson();
  reset(listing());

  const renameDialog = document.getElementById("rename-dialog");
  const renameInput = document.getElementById("rename-input");
  const renameError = document.getElementById("rename-error");
  document.getElementById("person-rename").addEventListener("click", () => {
    renameInput.value = document.getElementById("person-name").textContent;
    renameError.hidden = true;
    renameDialog.showModal();
    renameInput.select();
  });
  document.getElementById("rename-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("PATCH", `/api/names/${PERSON}`, {name: renameInput.value});
      renameDialog.close();
      await loadPerson();
      refreshAfterNaming();
      toast("Renamed.", "ok");
    } catch (err) {
      renameError.textContent = err.message;
      renameError.hidden = false;
    }
  });

  const mergeDialog = document.getElementById("merge-dialog");
  const mergeError = document.getElementById("merge-error");
  let target = null;
  const mergeField = nameInput({
    owner: OWNER, placeholder: "The name to keep",
    onPick: (item) => { target = item.name_id ? item : null; mergeField.input.value = item.label; },
    onSubmit: () => {},
  });
  document.getElementById("merge-target").replaceWith(mergeField.root);
  document.getElementById("person-merge").addEventListener("click", () => {
    target = null;
    mergeField.clear();
    mergeError.hidden = true;
    mergeDialog.showModal();
    mergeField.focus();
  });
  document.getElementById("merge-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!target || target.label !== mergeField.input.value) {
      mergeError.textContent = "Pick the name to keep from the list.";
      mergeError.hidden = false;
      return;
    }
    try {
      await api("POST", "/api/names/merge", {keep: target.name_id, other: PERSON});
      location.assign(`/people/${target.name_id}`);
    } catch (err) {
      mergeError.textContent = err.message;
      mergeError.hidden = false;
    }
  });
  for (const dialog of [renameDialog, mergeDialog]) {
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  }
}

// --- start --------------------------------------------------------------------------------------------------

if (PAGE === "gallery") {
  reset(new URLSearchParams());
  startDetection();
} else if (PAGE === "search") {
  setupSearch();
} else if (PAGE === "person") {
  setupPerson();
}
