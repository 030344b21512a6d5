// Backup & sync page: export/import of the library, clone peers, tokens, sync now.
import {api, upload} from "./api.js";
import {clear, el, toast} from "./ui.js";

const $ = (id) => document.getElementById(id);

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

async function load() {
  const s = await api("GET", "/api/sync/status");
  const peers = clear($("peers"));
  for (const p of s.peers) {
    const remove = el("button", {class: "btn ghost", type: "button"}, "Remove");
    remove.addEventListener("click", async () => {
      await api("DELETE", `/api/sync/peers/${p.id}`);
      await load();
    });
    peers.appendChild(el("tr", {dataset: {peer: String(p.id)}}, el("td", {}, p.url),
      el("td", {}, p.last_sync_at ? new Date(p.last_sync_at).toLocaleString() : "never"),
      el("td", {class: p.last_error ? "form-error" : ""}, p.last_error || ""), el("td", {}, remove)));
  }
  if (!s.peers.length) peers.appendChild(el("tr", {}, el("td", {colspan: "4"}, "No clone yet.")));
  const tokens = clear($("tokens"));
  for (const t of s.token_list) {
    const revoke = el("button", {class: "btn ghost", type: "button"}, "Revoke");
    revoke.addEventListener("click", async () => {
      await api("DELETE", `/api/sync/tokens/${t.id}`);
      await load();
    });
    tokens.appendChild(el("tr", {}, el("td", {}, t.label || "(no label)"),
      el("td", {}, new Date(t.created_at).toLocaleString()), el("td", {}, revoke)));
  }
  $("sync-summary").textContent = `${s.log_entries} changes in the log; ` +
    (s.interval > 0 ? `automatic sync every ${s.interval} s.` : "automatic sync is off (setting sync_interval).") +
    (s.pending_imports ? ` ${s.pending_imports} photos awaited by imported faces.` : "");
}

$("import-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("import-error", "");
  const file = $("import-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  try {
    const r = await upload("/api/library/import", form);
    toast(r.unchanged ? "Nothing to change: your library already holds everything in the file."
      : `Imported ${r.faces} faces and ${r.names} names; ${r.images_missing} photos are not here yet.`, "ok");
    await load();
  } catch (err) {
    showError("import-error", err.message);
  }
});

$("peer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("peer-error", "");
  try {
    await api("POST", "/api/sync/peers", {url: $("peer-url").value, token: $("peer-token").value});
    $("peer-token").value = "";
    await load();
  } catch (err) {
    showError("peer-error", err.message);
  }
});

$("sync-now").addEventListener("click", async () => {
  showError("peer-error", "");
  try {
    const r = await api("POST", "/api/sync/now");
    const failed = r.results.filter((x) => x.error);
    if (failed.length) showError("peer-error", failed.map((x) => x.error).join("; "));
    else toast(`Synced with ${r.results.length} clone(s).`, "ok");
  } catch (err) {
    showError("peer-error", err.message);
  }
  await load();
});

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const r = await api("POST", "/api/sync/tokens", {label: $("token-label").value});
  $("token-value").textContent = r.token;
  $("token-new").hidden = false;
  $("token-label").value = "";
  await load();
});

load().catch((err) => toast(err.message, "error"));
