// Photos of me: notifications, every face where I was tagged, and removing myself.
import {api} from "./api.js";
import {clear, el, toast} from "./ui.js";

const $ = (id) => document.getElementById(id);
let removing = null;

function renderNotes(data) {
  const badge = $("unread-count");
  badge.textContent = String(data.unread);
  badge.hidden = !data.unread;
  $("read-all").hidden = !data.unread;
  const list = clear($("notes"));
  if (!data.items.length) list.appendChild(el("li", {class: "muted"}, "No notifications."));
  for (const n of data.items) {
    const when = new Date(n.created_at).toLocaleString();
    list.appendChild(el("li", {class: n.read ? "" : "unread", dataset: {id: n.id}},
      el("a", {href: n.link, onclick: () => api("POST", "/api/notifications/read", {id: n.id}).catch(() => {})},
        n.text), " ", el("small", {class: "muted"}, when)));
  }
  document.dispatchEvent(new CustomEvent("faces:notifications", {detail: data}));
}

function renderPhotos(items) {
  const box = clear($("photos"));
  if (!items.length) box.appendChild(el("p", {class: "muted"}, "Nobody has tagged you in a photo."));
  for (const t of items) {
    const picture = t.may_view_image
      ? el("img", {src: `/api/me/photos/${t.face_id}/thumb?size=192`, alt: `You in a photo of ${t.owner_name}`,
          loading: "lazy"})
      : el("div", {class: "hidden-photo muted"}, "You may not view this photo, but you can remove yourself from it.");
    box.appendChild(el("article", {class: "card sharing-photo", id: `face-${t.face_id}`, dataset: {faceId: t.face_id}},
      picture, el("div", {}, "In a photo of ", el("strong", {}, t.owner_name)),
      el("button", {type: "button", class: "btn remove-me", onclick: () => askRemove(t)}, "Remove me")));
  }
  if (location.hash) {
    const target = document.querySelector(location.hash.replace(/[^#a-z0-9-]/gi, ""));
    if (target) target.scrollIntoView({block: "center"});
  }
}

function askRemove(t) {
  removing = t;
  $("remove-dialog").showModal();
}

async function load() {
  renderNotes(await api("GET", "/api/notifications"));
  renderPhotos(await api("GET", "/api/me/photos"));
}

$("remove-confirm").addEventListener("click", async () => {
  try {
    await api("POST", `/api/me/photos/${removing.face_id}/remove`);
    $("remove-dialog").close();
    toast("You were removed from that photo.", "ok");
    await load();
  } catch (err) {
    toast(err.message, "error");
  }
});
$("remove-cancel").addEventListener("click", () => $("remove-dialog").close());
$("read-all").addEventListener("click", async () => {
  try {
    renderNotes(await api("POST", "/api/notifications/read", {}));
  } catch (err) {
    toast(err.message, "error");
  }
});

load().catch((err) => toast(err.message, "error"));
