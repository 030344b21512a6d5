// Who may view one photo (its owner chooses): private, contacts, one group, or everybody.
// Usage in a page: import {visibilityControl} from "./sharing_visibility.js";
//   container.appendChild(visibilityControl(image.id));   (only for the owner's own photos)
import {api} from "./api.js";
import {el, toast} from "./ui.js";

const LABELS = {private: "Only me", contacts: "My contacts", public: "Everybody"};

/** A labelled select that shows and changes the visibility of image `imageId`. */
export function visibilityControl(imageId) {
  const select = el("select", {class: "input", "aria-label": "Who may view this photo", disabled: true});
  const root = el("label", {class: "field sharing-visibility"}, el("span", {}, "Who may view this photo"), select);
  api("GET", `/api/images/${imageId}/visibility`).then((data) => {
    const options = Object.entries(LABELS).map(([value, label]) => ({value, label}));
    for (const g of data.groups) options.push({value: `group:${g.id}`, label: `Group: ${g.name}`});
    const current = data.visibility === "group" ? `group:${data.group_id}` : data.visibility;
    select.replaceChildren(...options.map((o) => el("option", {value: o.value, selected: o.value === current}, o.label)));
    select.disabled = false;
  }).catch((err) => { root.hidden = true; if (err.status !== 403 && err.status !== 404) toast(err.message, "error"); });
  select.addEventListener("change", async () => {
    const [visibility, group] = select.value.split(":");
    try {
      await api("PUT", `/api/images/${imageId}/visibility`,
        {visibility, group_id: group ? Number(group) : null});
      toast("Saved.", "ok");
    } catch (err) {
      toast(err.message, "error");
    }
  });
  return root;
}
