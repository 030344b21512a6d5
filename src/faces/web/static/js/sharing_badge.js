// On every page: the number of unread notifications next to "Photos of me" in the navigation.
import {api} from "./api.js";
import {el} from "./ui.js";

function show(count) {
  const link = document.querySelector('.mainnav a[href="/me/photos"]');
  if (!link) return;
  let badge = link.querySelector(".sharing-badge");
  if (!badge) {
    badge = el("span", {class: "sharing-badge", "aria-label": "unread notifications", style: {
      display: "inline-block", minWidth: "1.4em", padding: "0 .4em", borderRadius: "999px", background: "#d33",
      color: "#fff", fontSize: ".8em", textAlign: "center", fontWeight: "700"}});
    link.append(" ", badge);
  }
  badge.textContent = String(count);
  badge.hidden = !count;
  badge.style.display = count ? "inline-block" : "none";
}

if (document.body.dataset.userId) {
  api("GET", "/api/notifications?limit=1").then((data) => show(data.unread)).catch(() => {});
  document.addEventListener("faces:notifications", (event) => show(event.detail.unread));
}
