"""Clone sync: two servers holding the same owner's library pull each other's change logs over HTTP.

- The owner creates a token on server A (:func:`create_token`; only its SHA-256 is kept) and gives it to B,
  which records A as a peer (:func:`add_peer`); and the other way round for sync in both directions.
- B pulls ``GET <A>/api/sync/changes?since=<cursor>`` with ``Authorization: Bearer <token>``
  (:func:`changes_since` answers it) and applies each batch with its new cursor in one transaction
  (:func:`pull`), so a sync killed at any point resumes where it stopped and nothing is applied twice.
  Entries that started on the pulling server itself (``origin``) are skipped: no echo.
- ``faces serve`` pulls from every peer every ``sync_interval`` seconds (:class:`AutoSync`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faces.portability import records, schema
from faces.portability.apply import Applier
from faces.store.db import Store
from faces.store.models import ChangeLogEntry, PendingImport, SyncPeer, SyncToken, User, utcnow

log = logging.getLogger(__name__)
BATCH = 500
MAX_BATCH = 2000
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
GAP_WAIT = timedelta(seconds=30)
TIMEOUT = 60.0


class SyncError(RuntimeError):
    """A sync could not be done; the message says why in plain words."""


# --- tokens ---------------------------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, owner_id: int, label: str = "") -> str:
    """A new sync token for ``owner_id``'s library; returned once, only its hash is stored."""
    token = "fst_" + secrets.token_urlsafe(32)
    session.add(SyncToken(owner_id=owner_id, token_hash=_hash(token), label=label[:200]))
    session.flush()
    return token


def token_owner(session: Session, token: str | None) -> int | None:
    """The owner whose library ``token`` opens, or None (hashes compared in constant time)."""
    if not token or len(token) > 200:
        return None
    wanted = _hash(token)
    found = None
    for owner_id, token_hash in session.execute(select(SyncToken.owner_id, SyncToken.token_hash)).all():
        if hmac.compare_digest(token_hash, wanted):
            found = owner_id
    return found


def list_tokens(session: Session, owner_id: int) -> list[dict]:
    """The owner's tokens (id, label, created): never the tokens themselves."""
    return [{"id": t.id, "label": t.label, "created_at": records.iso(t.created_at)}
            for t in session.scalars(select(SyncToken).where(SyncToken.owner_id == owner_id).order_by(SyncToken.id))]


def revoke_token(session: Session, owner_id: int, token_id: int) -> bool:
    """Delete token ``token_id`` of ``owner_id``; False when there is no such token."""
    row = session.get(SyncToken, token_id)
    if row is None or row.owner_id != owner_id:
        return False
    session.delete(row)
    return True


# --- peers ----------------------------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """``url`` checked (http or https, a host) and without a trailing slash. Raises SyncError."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        raise SyncError(f"{url[:100]!r} is not a server address like http://host:8000")
    if parts.query or parts.fragment:
        raise SyncError("the server address must not have a query (?...) or a fragment (#...)")
    return url.rstrip("/")


def add_peer(session: Session, owner_id: int, url: str, token: str) -> SyncPeer:
    """Record the clone at ``url`` whose owner gave ``token``; a known address gets the new token."""
    url = normalise_url(url)
    token = (token or "").strip()
    if not token or len(token) > 200:
        raise SyncError("the token is empty or too long: create one on the other server with 'faces sync token'")
    peer = session.scalar(select(SyncPeer).where(SyncPeer.owner_id == owner_id, SyncPeer.url == url))
    if peer is None:
        peer = SyncPeer(owner_id=owner_id, url=url, token=token, cursor=0)
        session.add(peer)
    else:
        peer.token = token
    session.flush()
    return peer


def remove_peer(session: Session, owner_id: int, peer_id: int) -> bool:
    """Forget peer ``peer_id`` of ``owner_id``; False when there is no such peer."""
    peer = session.get(SyncPeer, peer_id)
    if peer is None or peer.owner_id != owner_id:
        return False
    session.delete(peer)
    return True


# --- the serving side -----------------------------------------------------------------------------------------


def changes_since(session: Session, owner_id: int, since: int, limit: int, server: str) -> dict:
    """The answer to a pull: entries of ``owner_id`` after ``since`` (at most ``limit``).

    On PostgreSQL and MariaDB, transactions may commit out of sequence order; a gap in the numbers that is
    younger than a few seconds may be a transaction still committing, so the answer stops before it.
    """
    limit = max(1, min(int(limit), MAX_BATCH))
    rows = session.scalars(select(ChangeLogEntry).where(ChangeLogEntry.owner_id == owner_id,
                                                        ChangeLogEntry.seq > since)
                           .order_by(ChangeLogEntry.seq).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if session.get_bind().dialect.name != "sqlite" and rows:
        top = session.scalar(select(func.max(ChangeLogEntry.seq)).where(ChangeLogEntry.seq <= rows[-1].seq))
        numbers = set(session.scalars(select(ChangeLogEntry.seq).where(ChangeLogEntry.seq > since,
                                                                       ChangeLogEntry.seq <= top)).all())
        young = utcnow() - GAP_WAIT
        kept = []
        expected = since + 1
        for row in rows:
            changed = row.changed_at if row.changed_at.tzinfo else row.changed_at.replace(tzinfo=timezone.utc)
            missing = any(n not in numbers for n in range(expected, row.seq)) if row.seq - expected < 10_000 else False
            if missing and changed > young:
                more = False
                break
            kept.append(row)
            expected = row.seq + 1
        rows = kept
    entries = [{"seq": r.seq, "entity": r.entity, "key": r.entity_uuid, "op": r.op, "data": r.data,
                "changed_at": records.iso(r.changed_at), "origin": r.origin or server} for r in rows]
    last = rows[-1].seq if rows else since
    return {"server_id": server, "entries": entries, "last": last, "more": more}


# --- the pulling side -----------------------------------------------------------------------------------------


@dataclass
class PullResult:
    """What one pull from one peer did."""

    peer: str
    entries: int = 0
    applied: int = 0
    skipped_own: int = 0
    cursor: int = 0
    counts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"peer": self.peer, "entries": self.entries, "applied": self.applied,
                "skipped_own": self.skipped_own, "cursor": self.cursor, **self.counts}


def _validated(body: bytes, since: int) -> dict:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise SyncError("the peer's answer is not valid JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("entries"), list):
        raise SyncError("the peer's answer has no list of changes")
    if not isinstance(answer.get("last"), int) or answer["last"] < since:
        raise SyncError("the peer's answer has no valid position")
    server = answer.get("server_id")
    if not isinstance(server, str) or not 1 <= len(server) <= 64:
        raise SyncError("the peer's answer has no server id")
    clean = []
    for i, entry in enumerate(answer["entries"]):
        if not isinstance(entry, dict):
            raise SyncError(f"change {i} of the peer's answer is not an object")
        entity, op, key = entry.get("entity"), entry.get("op"), entry.get("key")
        origin = entry.get("origin")
        if entity not in schema.MODELS or op not in ("upsert", "delete") or not isinstance(key, str) \
                or not 1 <= len(key) <= 200 or not isinstance(origin, str) or len(origin) > 64:
            raise SyncError(f"change {i} of the peer's answer is malformed")
        data = entry.get("data")
        try:
            if op == "upsert" or data is not None:
                data = schema.check(entity, data, f"change {i}")
        except schema.InvalidRecord as exc:
            raise SyncError(f"the peer sent an invalid change: {exc}") from None
        changed_at = entry.get("changed_at")
        try:
            changed_at = schema.normal_time(changed_at, f"change {i}") if isinstance(changed_at, str) else None
        except schema.InvalidRecord:
            changed_at = None
        clean.append({"entity": entity, "key": key, "op": op, "data": data, "origin": origin,
                      "changed_at": changed_at})
    return {"server_id": server, "entries": clean, "last": answer["last"], "more": bool(answer.get("more"))}


def _effective(session: Session, settings):  # noqa: ANN001, ANN202
    try:
        from faces.sharing.admin_settings import effective_settings
    except ImportError:
        return settings
    return effective_settings(session, settings)


def pull(store: Store, settings, peer_id: int, *, batch: int = BATCH, max_batches: int | None = None,  # noqa: ANN001
         client: httpx.Client | None = None) -> PullResult:
    """Pull and apply everything ``peer_id`` has changed since its cursor. Raises SyncError (and records the
    message on the peer) when the peer cannot be reached or answers nonsense; what was applied stays."""
    own = records.server_id(settings.data_dir)
    with store.session() as session:
        peer = session.get(SyncPeer, peer_id)
        if peer is None:
            raise SyncError(f"there is no peer {peer_id}")
        url, token, owner_id = peer.url, peer.token, peer.owner_id
    result = PullResult(peer=url)
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False)
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            batches += 1
            with store.session() as session:
                cursor = session.get(SyncPeer, peer_id).cursor
            try:
                response = _get(http, f"{url}/api/sync/changes", token, {"since": cursor, "limit": batch})
            except SyncError as exc:
                _record_error(store, peer_id, str(exc))
                raise
            answer = _validated(response, cursor)
            if answer["server_id"] == own:
                message = "this address is this server itself, not a clone"
                _record_error(store, peer_id, message)
                raise SyncError(message)
            with store.session() as session:
                peer = session.scalar(select(SyncPeer).where(SyncPeer.id == peer_id).with_for_update())
                if peer is None:
                    raise SyncError("the peer was removed during the sync")
                if peer.cursor != cursor:
                    continue  # another sync of this peer moved on meanwhile; ask again from there
                applier = Applier(session, owner_id)
                effective = _effective(session, settings)
                for entry in answer["entries"]:
                    result.entries += 1
                    if entry["origin"] == own:
                        result.skipped_own += 1
                        continue
                    applier.origin = entry["origin"]
                    applier.entry(entry["entity"], entry["key"], entry["op"], entry["data"], entry["changed_at"],
                                  effective)
                    result.applied += 1
                applier.finish(effective)
                peer.cursor = answer["last"]
                peer.last_sync_at = utcnow()
                peer.last_error = None
                result.cursor = peer.cursor
                for k, v in applier.result.as_dict().items():
                    result.counts[k] = result.counts.get(k, 0) + v
            if not answer["more"]:
                break
    finally:
        if client is None:
            http.close()
    return result


def _get(http: httpx.Client, url: str, token: str, params: dict) -> bytes:
    try:
        with http.stream("GET", url, params=params, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status_code in (401, 403):
                raise SyncError("the peer refused the token: create a new one there with 'faces sync token' "
                                "and give it with 'faces sync add-peer'")
            if response.status_code != 200:
                raise SyncError(f"the peer answered HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise SyncError("the peer's answer is too large")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise SyncError(f"the peer {url.rsplit('/api/', 1)[0]} cannot be reached ({type(exc).__name__})") from None


def _record_error(store: Store, peer_id: int, message: str) -> None:
    with store.session() as session:
        peer = session.get(SyncPeer, peer_id)
        if peer is not None:
            peer.last_error = message[:500]


def sync_owner(store: Store, settings, owner_id: int | None = None) -> list[dict]:  # noqa: ANN001
    """Pull from every peer of ``owner_id`` (every owner's peers when None); one dict per peer (errors
    included, as ``error``)."""
    with store.session() as session:
        query = select(SyncPeer.id).order_by(SyncPeer.id)
        if owner_id is not None:
            query = query.where(SyncPeer.owner_id == owner_id)
        peer_ids = session.scalars(query).all()
    out = []
    for peer_id in peer_ids:
        try:
            out.append(pull(store, settings, peer_id).as_dict())
        except SyncError as exc:
            out.append({"peer_id": peer_id, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - one broken peer must not stop the others
            log.exception("sync with peer %s failed", peer_id)
            _record_error(store, peer_id, f"the sync failed ({type(exc).__name__}); see faces.log")
            out.append({"peer_id": peer_id, "error": f"the sync failed ({type(exc).__name__})"})
    return out


def sync_state(session: Session, owner_id: int | None = None) -> dict:
    """The sync state for the admin page (every library when ``owner_id`` is None): peers with their cursor,
    last sync and last error (never their tokens), number of tokens, log entries and parked imports."""
    query = select(SyncPeer, User.username).join(User, User.id == SyncPeer.owner_id).order_by(SyncPeer.id)
    tokens = select(func.count()).select_from(SyncToken)
    entries = select(func.count()).select_from(ChangeLogEntry)
    parked = select(func.count()).select_from(PendingImport)
    if owner_id is not None:
        query = query.where(SyncPeer.owner_id == owner_id)
        tokens = tokens.where(SyncToken.owner_id == owner_id)
        entries = entries.where(ChangeLogEntry.owner_id == owner_id)
        parked = parked.where(PendingImport.owner_id == owner_id)
    peers = [{"id": p.id, "owner": username, "url": p.url, "cursor": p.cursor,
              "last_sync_at": records.iso(p.last_sync_at), "last_error": p.last_error}
             for p, username in session.execute(query).all()]
    return {"peers": peers, "tokens": session.scalar(tokens) or 0, "log_entries": session.scalar(entries) or 0,
            "pending_imports": session.scalar(parked) or 0}


class AutoSync:
    """Pulls from every peer every ``interval`` seconds in a daemon thread (``faces serve``)."""

    def __init__(self, store: Store, settings, interval: float):  # noqa: ANN001
        self.store = store
        self.settings = settings
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AutoSync:
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="faces-sync", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sync_owner(self.store, self.settings)
            except Exception:  # noqa: BLE001 - keep syncing later
                log.exception("automatic sync failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def last_change(session: Session, owner_id: int) -> datetime | None:
    """When the owner's library last changed (for the page)."""
    return session.scalar(select(func.max(ChangeLogEntry.changed_at)).where(ChangeLogEntry.owner_id == owner_id))
