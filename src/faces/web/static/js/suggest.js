// A name field that offers the library's names (and the owner's contacts) as one types.
import {api} from "./api.js";
import {debounce, el} from "./ui.js";

let listCounter = 0;

/**
 * nameInput({owner, placeholder, onPick, onSubmit, bare})
 *  onPick(suggestion): a suggestion was chosen ({label, name_id, contact_user_id}).
 *  onSubmit(text): Enter without a highlighted suggestion.
 *  showOnFocus: offer the names as soon as the empty field gets the focus.
 * Returns {root, input, clear(), focus(), close()}.
 */
export function nameInput({owner = null, placeholder = "Type a name", onPick, onSubmit, bare = false, id,
                           showOnFocus = false} = {}) {
  const listId = `suggestions-${++listCounter}`;
  const input = el("input", {
    class: bare ? "" : "input", type: "text", placeholder, maxlength: 200, autocomplete: "off", spellcheck: "false",
    role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": listId, id,
  });
  const list = el("ul", {class: "suggestions", role: "listbox", id: listId, hidden: true});
  const root = el("div", {class: "suggest-wrap"}, input, list);
  let items = [];
  let active = -1;
  let controller = null;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    active = -1;
  }

  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", i === index ? "true" : "false"));
    if (index >= 0 && list.children[index]) list.children[index].scrollIntoView({block: "nearest"});
  }

  function pick(item) {
    close();
    if (onPick) onPick(item);
  }

  function show(found) {
    items = found;
    list.replaceChildren(...found.map((item, i) => {
      const li = el("li", {role: "option", id: `${listId}-${i}`, "aria-selected": "false"},
        el("span", {class: "label"}, item.label),
        item.detail ? el("span", {class: "detail"}, item.detail) : null);
      li.addEventListener("pointerdown", (e) => { e.preventDefault(); pick(item); });
      return li;
    }));
    list.hidden = found.length === 0 || document.activeElement !== input;
    input.setAttribute("aria-expanded", list.hidden ? "false" : "true");
    active = -1;
  }

  const lookup = debounce(async () => {
    if (controller) controller.abort();
    controller = new AbortController();
    const params = new URLSearchParams({q: input.value, limit: "8"});
    if (owner) params.set("owner", owner);
    try {
      show(await api("GET", `/api/names/suggest?${params}`, undefined, {signal: controller.signal}));
    } catch (err) {
      if (err.name !== "AbortError") close();
    }
  }, 120);

  input.addEventListener("input", lookup);
  // an empty field offers names only when asked (arrow down), so the list does not cover the buttons below it
  input.addEventListener("focus", () => { if (input.value.trim() || showOnFocus) lookup(); });
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && !items.length) {
      e.preventDefault();
      lookup();
    } else if (e.key === "ArrowDown" && items.length) {
      e.preventDefault();
      if (list.hidden) { list.hidden = false; input.setAttribute("aria-expanded", "true"); }
      highlight((active + 1) % items.length);
    } else if (e.key === "ArrowUp" && items.length) {
      e.preventDefault();
      highlight(active <= 0 ? items.length - 1 : active - 1);
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (!list.hidden && active >= 0) pick(items[active]);
      else { close(); if (onSubmit) onSubmit(input.value.trim()); }
    } else if (e.key === "Escape" && !list.hidden) {
      e.stopPropagation();
      close();
    }
  });

  return {
    root, input, close,
    clear() { input.value = ""; close(); },
    focus() { input.focus(); },
  };
}
