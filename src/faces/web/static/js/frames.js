// Frames over the faces of a photo, and the small editor that names a face in place.
import {api} from "./api.js";
import {clear, el} from "./ui.js";
import {nameInput} from "./suggest.js";

const STATE_TEXT = {
  confirmed: "Named",
  guessed: "Guess",
  unknown: "Unknown person",
  unnamed: "No name yet",
  ignored: "Ignored",
};

export function faceLabel(face) {
  if (face.state === "confirmed" && face.name) return face.name.name;
  if (face.state === "guessed" && face.guess) return `${face.guess.name}?`;
  if (face.state === "unknown") return "Unknown";
  return "";
}

function describe(face) {
  if (face.state === "confirmed" && face.name) return `Face named ${face.name.name}`;
  if (face.state === "guessed" && face.guess) return `Face guessed as ${face.guess.name}, not confirmed`;
  if (face.state === "unknown") return "Face of an unknown person";
  return "Face without a name";
}

/** Draw the frames of `image` (ImageOut) into `layer` (positioned over the photo). */
export function renderFrames(layer, image, onFrame) {
  clear(layer);
  const w = image.width || 1;
  const h = image.height || 1;
  for (const face of image.faces || []) {
    const [x, y, fw, fh] = face.box;
    const frame = el("button", {
      type: "button", class: `frame ${face.state}`, "aria-label": describe(face), title: describe(face),
      dataset: {faceId: face.id},
      style: {left: `${(x / w) * 100}%`, top: `${(y / h) * 100}%`, width: `${(fw / w) * 100}%`, height: `${(fh / h) * 100}%`},
    });
    const label = faceLabel(face);
    if (label) frame.appendChild(el("span", {class: "frame-label"}, label));
    frame.addEventListener("click", (e) => {
      e.stopPropagation();
      onFrame(face, frame);
    });
    frame.addEventListener("dblclick", (e) => e.stopPropagation());
    layer.appendChild(frame);
  }
}

// --- the editor -------------------------------------------------------------------------------------------------

let current = null;

export function closeEditor() {
  if (!current) return;
  current.anchor.classList.remove("active");
  current.root.remove();
  document.removeEventListener("pointerdown", current.outside, true);
  document.removeEventListener("keydown", current.keys, true);
  window.removeEventListener("resize", current.place);
  window.removeEventListener("scroll", current.place, true);
  current = null;
}

export function editorOpenFor() {
  return current ? current.face.id : null;
}

/**
 * Open the editor for `face` next to `anchor` (its frame). `onChanged(result)` runs after every change
 * with the API's answer ({face, image_ids}).
 */
export function openEditor(face, anchor, {owner, onChanged, readOnly = false} = {}) {
  closeEditor();
  const errorBox = el("p", {class: "form-error error", role: "alert", hidden: true});
  const busy = (on) => root.querySelectorAll("button, input").forEach((b) => { b.disabled = on; });

  async function act(path, body) {
    errorBox.hidden = true;
    busy(true);
    try {
      const result = await api("POST", `/api/faces/${face.id}/${path}`, body);
      closeEditor();
      if (onChanged) onChanged(result);
    } catch (err) {
      busy(false);
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    }
  }

  const field = nameInput({
    owner,
    placeholder: face.state === "confirmed" ? "Another name" : "Who is this?",
    onPick: (item) => act("name", item.name_id ? {name_id: item.name_id}
      : {name: item.label, contact_user_id: item.contact_user_id}),
    onSubmit: (text) => act("name", {name: text}),
    id: "face-name-input",
  });

  const heading = face.state === "confirmed" && face.name ? face.name.name
    : face.state === "guessed" && face.guess ? `${face.guess.name}?` : STATE_TEXT[face.state] || "";
  const root = el("div", {class: "editor", role: "dialog", "aria-label": "Name this face"},
    el("div", {class: "editor-head"},
      el("img", {src: `${face.thumb_url}?size=192`, alt: ""}),
      el("div", {style: {minWidth: "0"}},
        el("div", {class: "state"}, STATE_TEXT[face.state] || face.state),
        el("div", {class: `current${face.state === "guessed" ? " guess" : ""}`}, heading)),
      el("button", {type: "button", class: "btn ghost small close", "aria-label": "Close", onclick: closeEditor}, "✕")),
  );

  if (readOnly) {
    root.appendChild(el("p", {class: "muted"}, "You may look at this library but not change its names."));
  } else {
    const form = el("form", {onsubmit: (e) => { e.preventDefault(); act("name", {name: field.input.value.trim()}); }},
      field.root,
      el("button", {type: "submit", class: "btn primary", id: "face-name-save"}, "Save"));
    root.appendChild(form);
    if (face.state === "guessed" && face.guess) {
      root.appendChild(el("div", {class: "guess-actions"},
        el("button", {type: "button", class: "btn ok", id: "face-confirm", title: `Yes, this is ${face.guess.name}`, onclick: () => act("confirm")},
          "✓", el("b", {}, face.guess.name)),
        el("button", {type: "button", class: "btn danger", id: "face-reject", title: `No, this is not ${face.guess.name}`, onclick: () => act("reject")}, "✕ Not them")));
    }
    root.appendChild(el("div", {class: "more-actions"},
      el("button", {type: "button", class: "btn small ghost", id: "face-unknown", title: "Someone you do not know: never guess this face",
        onclick: () => act("unknown")}, "Unknown"),
      el("button", {type: "button", class: "btn small ghost", id: "face-ignore", title: "Not a face, or not of interest: hide the frame",
        onclick: () => act("ignore")}, "Ignore"),
      el("button", {type: "button", class: "btn small ghost", id: "face-reset", title: "Forget the name: the face may be guessed again",
        onclick: () => act("reset")}, "Reset")));
    root.appendChild(errorBox);
  }

  document.body.appendChild(root);
  anchor.classList.add("active");

  function place() {
    const r = anchor.getBoundingClientRect();
    const pw = root.offsetWidth;
    const ph = root.offsetHeight;
    let left = r.left + r.width / 2 - pw / 2;
    left = Math.max(8, Math.min(left, window.innerWidth - pw - 8));
    let top = r.bottom + 10;
    if (top + ph > window.innerHeight - 8) top = r.top - ph - 10;
    if (top < 8) top = Math.max(8, Math.min(window.innerHeight - ph - 8, r.top));
    root.style.left = `${left}px`;
    root.style.top = `${top}px`;
  }
  const outside = (e) => {
    if (!root.contains(e.target) && e.target !== anchor && !anchor.contains(e.target)) closeEditor();
  };
  const keys = (e) => { if (e.key === "Escape") { e.stopPropagation(); closeEditor(); } };
  current = {face, anchor, root, outside, keys, place};
  place();
  document.addEventListener("pointerdown", outside, true);
  document.addEventListener("keydown", keys, true);
  window.addEventListener("resize", place);
  window.addEventListener("scroll", place, true);
  if (!readOnly && window.matchMedia("(hover: hover)").matches) field.focus();
}
