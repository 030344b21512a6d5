"""Refreshing guesses and groups after detection or naming: the store side of ``faces.recognition``.

Only what can change is recomputed. After a change to faces ``C`` (new faces, or faces whose name changed),
the faces whose guess is recomputed are the unnamed/guessed faces that are in ``C``, in the same photos as ``C``,
within reach (tolerance + margin) of a face of ``C`` in some finder, or whose guess's anchor is in ``C`` or no
longer holds; plus the other faces of their photos (one person per photo). They are compared with all confirmed
faces: exactly, or through the channel's nearest-neighbour index (:mod:`faces.recognition.ann`) when the library
and the batch are large (setting ``ann_index``).

Kept in process memory per owner: the embeddings per channel (finder + model version), checked against a
fingerprint of the embeddings table (count, largest id, sum of face ids) and topped up with new rows only; and the
faces as arrays, checked on every refresh with a few indexed queries (:func:`_load_faces`).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import bindparam, event, func, select, text, update
from sqlalchemy.orm import Session

from faces.recognition.ann import AnnPolicy, BoundIndex, ChannelIndexes
from faces.recognition.groups import NO_GROUP, chinese_whispers, relabel_like, similarity_edges
from faces.recognition.guess import Channel, GuessRules, guess_names
from faces.recognition.vectors import Prepared, prepare, radius_pairs
from faces.store.models import Embedding, Face, FaceState, RejectedName, utcnow

# How each finder's embeddings are compared (the finders declare the same in their ``metric``).
FINDER_METRICS = {"dlib": "euclidean", "opencv": "cosine"}
DEFAULT_RULES = GuessRules()
# Two faces are linked into one group only within this fraction of the finder's tolerance.
GROUP_SCALE = 0.8
GROUP_LINKS = 10

_STATE_CODES = {state: code for code, state in enumerate(FaceState)}
_CANDIDATE_CODES = (_STATE_CODES[FaceState.UNNAMED], _STATE_CODES[FaceState.GUESSED])
_CONFIRMED = _STATE_CODES[FaceState.CONFIRMED]


@dataclass
class RefreshResult:
    """What a refresh did: faces looked at, guesses written (new or changed), withdrawn, and group changes."""

    examined: int = 0
    guessed: int = 0
    withdrawn: int = 0
    grouped: int = 0


# --- embeddings cached in process memory -----------------------------------------------------------------------


@dataclass
class _ChannelCache:
    fingerprint: tuple
    face_ids: np.ndarray  # sorted
    prepared: Prepared  # row i = face_ids[i]; the only copy of the vectors (cosine ones are kept normalised)


@dataclass
class _Chan:
    """One channel of a library: its finder and tolerance, its embeddings, and how to reach its index."""

    finder: str
    tolerance: float
    cache: _ChannelCache
    key: tuple
    policy: AnnPolicy

    def index_for(self, queries: int) -> BoundIndex | None:
        """The index, when the setting wants it and ``queries`` faces to look around make it worth it;
        else None (exact search). Loaded or built on first use in the process, synced on every use."""
        size = len(self.cache.face_ids)
        if self.policy.mode != "ivf" and not (self.policy.wants(size) and queries * size >= _EXACT_WORK):
            return None
        return _indexes.get(self.key, self.cache.face_ids, self.cache.prepared, self.policy)


_cache: dict[tuple[str, int, str, str], _ChannelCache] = {}
_indexes = ChannelIndexes()
# Below this many distances (faces to look around x faces of the channel) the exact search is cheap (a few
# passes over the channel's matrix) and misses nothing; above, the index is used (setting ann_index "auto").
_EXACT_WORK = 1 << 24
_channel_rows: dict[tuple[str, int], tuple[tuple, list]] = {}
_cache_lock = threading.Lock()
_TOUCHED = "faces_refresh_cache_keys"


def _touch(session: Session, key: tuple) -> None:
    """Remember that ``key`` was cached from this transaction's view: dropped again if it rolls back."""
    session.info.setdefault(_TOUCHED, set()).add(key)


@event.listens_for(Session, "after_commit")
def _keep(session: Session) -> None:
    session.info.pop(_TOUCHED, None)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    for key in session.info.pop(_TOUCHED, ()):
        if key[0] == "faces":
            _faces_cache.pop(key[1:], None)
        else:
            _channel_rows.pop(key[1:], None)


def clear_cache(owner_id: int | None = None) -> None:
    """Forget the cached embeddings, faces and indexes (of one owner, or all): after deleting a library."""
    _indexes.forget(lambda key: owner_id is None or key[1] == owner_id)
    with _cache_lock:
        for key in [k for k in _cache if owner_id is None or k[1] == owner_id]:
            del _cache[key]
        for key in [k for k in _faces_cache if owner_id is None or k[1] == owner_id]:
            del _faces_cache[key]
        for key in [k for k in _channel_rows if owner_id is None or k[1] == owner_id]:
            del _channel_rows[key]


def _to_matrix(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Stack float32 blobs of the most common length; returns (matrix, mask of rows kept)."""
    if not blobs:
        return np.empty((0, 0), np.float32), np.zeros(0, bool)
    lengths = np.fromiter((len(b) for b in blobs), np.int64, len(blobs))
    common = np.bincount(lengths).argmax()
    keep = lengths == common
    data = b"".join(b for b, k in zip(blobs, keep.tolist()) if k)
    return np.frombuffer(data, np.float32).reshape(int(keep.sum()), int(common) // 4).copy(), keep


def ann_policy(settings) -> AnnPolicy:  # noqa: ANN001
    """The nearest-neighbour index settings (``ann_index``, ``ann_min_faces``, ``ann_probes``); indexes are saved
    in ``DATA_DIR/ann-index``."""
    return AnnPolicy(settings.ann_index, settings.ann_min_faces, settings.ann_probes, settings.data_dir / "ann-index")


def _channels(session: Session, settings, owner_id: int) -> dict[str, _Chan]:  # noqa: ANN001
    """Per channel key ``finder`` (or ``finder@version`` for older model versions): its :class:`_Chan`."""
    url = session.get_bind().url.render_as_string(hide_password=True)
    # The whole table's count and largest id are nearly free; only when they moved is the owner's part counted.
    # (two queries: SQLite answers each from its metadata, but not both in one)
    conn = session.connection()
    overall = (conn.execute(text("SELECT count(*) FROM embeddings")).scalar(),
               conn.execute(text("SELECT max(id) FROM embeddings")).scalar())
    seen = _channel_rows.get((url, owner_id))
    if seen is not None and seen[0] == overall:
        rows = seen[1]
    else:
        rows = session.execute(
            select(Embedding.finder, Embedding.model_version, func.count(Embedding.id), func.max(Embedding.id),
                   func.sum(Embedding.face_id))
            .join(Face, Face.id == Embedding.face_id)
            .where(Face.owner_id == owner_id)
            .group_by(Embedding.finder, Embedding.model_version)
        ).all()
        _channel_rows[(url, owner_id)] = (overall, rows)
        _touch(session, ("channels", url, owner_id))
    newest: dict[str, int] = {}
    for finder, _version, _count, max_id, _sum in rows:
        newest[finder] = max(newest.get(finder, -1), int(max_id))
    result: dict[str, _Chan] = {}
    policy = ann_policy(settings)
    for finder, version, count, max_id, face_sum in rows:
        conf = settings.finders.get(finder)
        if conf is None or not conf.enabled or finder not in FINDER_METRICS:
            continue
        fingerprint = (int(count), int(max_id), int(face_sum or 0))
        key = (url, owner_id, finder, version)
        with _cache_lock:
            cached = _cache.get(key)
        if cached is None or cached.fingerprint != fingerprint:
            cached = _load_channel(session, owner_id, finder, version, fingerprint, cached)
            with _cache_lock:
                _cache[key] = cached
        # the newest model version of a finder is named after the finder; older ones keep their version
        label = finder if newest[finder] == int(max_id) else f"{finder}@{version}"
        result[label] = _Chan(finder, conf.tolerance, cached, key, policy)
    return result


def _load_channel(session: Session, owner_id: int, finder: str, version: str, fingerprint: tuple,
                  cached: _ChannelCache | None) -> _ChannelCache:
    base = select(Embedding.face_id, Embedding.vector).join(Face, Face.id == Embedding.face_id).where(
        Face.owner_id == owner_id, Embedding.finder == finder, Embedding.model_version == version)
    if cached is not None and cached.fingerprint[1] < fingerprint[1]:
        # only new rows? then append them
        new_rows = session.execute(base.where(Embedding.id > cached.fingerprint[1])).all()
        ids = np.fromiter((r[0] for r in new_rows), np.int64, len(new_rows))
        if (len(new_rows) == fingerprint[0] - cached.fingerprint[0]
                and int(ids.sum()) == fingerprint[2] - cached.fingerprint[2]):
            matrix, keep = _to_matrix([r[1] for r in new_rows])
            if not len(new_rows) or matrix.shape[1:] == cached.prepared.data.shape[1:]:
                face_ids = np.concatenate([cached.face_ids, ids[keep]])
                order = np.argsort(face_ids, kind="stable")
                added = prepare(matrix, FINDER_METRICS[finder])
                both = Prepared(added.metric, np.concatenate([cached.prepared.data, added.data])[order],
                                None if added.sq_norms is None
                                else np.concatenate([cached.prepared.sq_norms, added.sq_norms])[order])
                return _ChannelCache(fingerprint, face_ids[order], both)
    rows = session.execute(base).all()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    matrix, keep = _to_matrix([r[1] for r in rows])
    ids = ids[keep]
    order = np.argsort(ids, kind="stable")
    ids, matrix = ids[order], matrix[order] if len(ids) else np.empty((0, 128), np.float32)
    return _ChannelCache(fingerprint, ids, prepare(matrix, FINDER_METRICS[finder]))


# --- the library's faces, as arrays -----------------------------------------------------------------------------


@dataclass
class _Faces:
    ids: np.ndarray
    image: np.ndarray
    state: np.ndarray
    name: np.ndarray  # 0 = none
    guess: np.ndarray  # 0 = none
    anchor: np.ndarray  # 0 = none
    cluster: np.ndarray  # -1 = none
    distance: np.ndarray
    finders: list[str | None]

    def copy(self) -> _Faces:
        """An independent copy (the cached arrays are never changed in place)."""
        return _Faces(self.ids.copy(), self.image.copy(), self.state.copy(), self.name.copy(), self.guess.copy(),
                      self.anchor.copy(), self.cluster.copy(), self.distance.copy(), list(self.finders))

    def rows_of(self, face_ids: np.ndarray) -> np.ndarray:
        """Row index of each face id (-1 when not in the library)."""
        pos = np.searchsorted(self.ids, face_ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (len(self.ids) > 0) & (self.ids[pos] == face_ids) if len(self.ids) else np.zeros(len(face_ids), bool)
        return np.where(found, pos, -1)


_FACE_COLUMNS = ("id, image_id, state, name_id, guess_name_id, guess_anchor_face_id, cluster_id, guess_distance, "
                 "guess_finders")
# Deleted faces lower the count; new faces raise it and, like every change, have a recent updated_at (the window
# checksum below sees them). Deleted names are found by their ids: their faces lost the name through the foreign
# key, without a new updated_at, and are read again.
_FINGERPRINT_SQL = ("SELECT (SELECT count(*) FROM faces WHERE owner_id = :owner), "
                    "(SELECT max(updated_at) FROM faces WHERE owner_id = :owner)")
# Any change to a face bumps its updated_at (the actions, the pipeline, imports and this refresh all do). Rows
# changed this long before the newest change seen are checked again: transactions commit out of order; a longer
# transaction that inserts faces is caught by the count.
_DELTA_WINDOW = timedelta(seconds=120)
# A checksum of the cached columns of one row, the same in SQL and numpy (:func:`_row_hashes`); summed over the
# rows changed since the window start, it tells in one indexed query whether the cache still holds all of them.
_HASH_MOD = 2147483629
_HASH_SQL = ("(({state} + 7 * {name_id} + 11 * {guess_name_id} + 13 * {guess_anchor_face_id} + 17 * ({cluster_id} + 1)"
             " + 19 * {image_id}) * ({id} % 65521 + 1)) % " + str(_HASH_MOD))


def _hash_sql(dialect: str) -> str:
    state = "CASE state " + " ".join(f"WHEN '{s.value}' THEN {c}" for s, c in _STATE_CODES.items()) + " ELSE 99 END"
    # MariaDB computes in 64 bits anyway and has no CAST(... AS BIGINT); PostgreSQL would overflow int4
    big = (lambda c: c) if dialect in ("mysql", "mariadb") else (lambda c: f"CAST({c} AS BIGINT)")
    return _HASH_SQL.format(state=state, id=big("id"), image_id=big("image_id"),
                            name_id=big("coalesce(name_id, 0)"), guess_name_id=big("coalesce(guess_name_id, 0)"),
                            guess_anchor_face_id=big("coalesce(guess_anchor_face_id, 0)"),
                            cluster_id=big("coalesce(cluster_id, -1)"))


def _row_hashes(faces: _Faces, rows: np.ndarray) -> np.ndarray:
    f = faces
    value = (f.state[rows] + 7 * f.name[rows] + 11 * f.guess[rows] + 13 * f.anchor[rows]
             + 17 * (f.cluster[rows] + 1) + 19 * f.image[rows])
    return (value * (f.ids[rows] % 65521 + 1)) % _HASH_MOD


@dataclass
class _FacesCache:
    faces: _Faces
    count: int  # the owner's faces
    names: np.ndarray  # the owner's name ids, sorted
    since: datetime  # start of the window: rows changed since are checked by checksum on every load
    in_window: np.ndarray  # per row of faces: changed since ``since`` (as far as the cache knows)
    newest: datetime | None  # newest updated_at seen (rows from there on are read again)


_faces_cache: dict[tuple[str, int], _FacesCache] = {}


def _rows_to_faces(rows: list) -> _Faces:
    n = len(rows)
    if not n:
        empty = np.empty(0, np.int64)
        return _Faces(empty, empty, empty, empty, empty, empty, empty, np.empty(0), [])
    table = np.array([tuple(r)[:9] for r in rows], dtype=object)

    def ints(col: int, none: int) -> np.ndarray:
        values = table[:, col]
        return np.where(values == None, none, values).astype(np.int64)  # noqa: E711 - elementwise

    codes = {state.value: code for state, code in _STATE_CODES.items()}
    distance = table[:, 7]
    return _Faces(
        ids=ints(0, 0), image=ints(1, 0),
        state=np.fromiter((codes[v] for v in table[:, 2].tolist()), np.int64, n),
        name=ints(3, 0), guess=ints(4, 0), anchor=ints(5, 0), cluster=ints(6, NO_GROUP),
        distance=np.where(distance == None, np.nan, distance).astype(np.float64),  # noqa: E711
        finders=table[:, 8].tolist(),
    )


def _as_datetime(value: object) -> datetime | None:
    """A database timestamp as an aware UTC datetime (SQLite returns text; naive values are UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _db_time(session: Session, value: datetime) -> object:
    """``value`` in the form that compares correctly with updated_at on this database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return value
    value = value.astimezone(timezone.utc).replace(tzinfo=None)
    if dialect == "sqlite":
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.replace(microsecond=0)  # MariaDB keeps whole seconds


def _read_fingerprint(session: Session, owner_id: int) -> tuple[int, np.ndarray, datetime | None]:
    """The owner's face count, name ids and newest updated_at."""
    conn = session.connection()
    count, newest = conn.execute(text(_FINGERPRINT_SQL), {"owner": owner_id}).one()
    names = conn.execute(text("SELECT id FROM names WHERE owner_id = :owner ORDER BY id"),
                         {"owner": owner_id}).scalars().all()
    return int(count or 0), np.asarray(names, np.int64), _as_datetime(newest)


def _window_sum(session: Session, owner_id: int, since: datetime) -> tuple[int, int]:
    """(rows, checksum) of the owner's faces changed since ``since``, from the database."""
    sql = (f"SELECT count(*), sum({_hash_sql(session.get_bind().dialect.name)}) FROM faces "
           "WHERE owner_id = :owner AND updated_at >= :since")
    count, total = session.connection().execute(text(sql), {"owner": owner_id,
                                                            "since": _db_time(session, since)}).one()
    return int(count or 0), int(total or 0)


def _expected_sum(cache: _FacesCache) -> tuple[int, int]:
    rows = np.nonzero(cache.in_window)[0]
    return len(rows), int(_row_hashes(cache.faces, rows).sum()) if len(rows) else 0


def _merge_rows(old: _Faces, in_window: np.ndarray, rows: list, window_value: bool | None = True
                ) -> tuple[_Faces, np.ndarray]:
    """``old`` with ``rows`` (changed or new faces) applied; their ``in_window`` flag set to ``window_value``
    (None: unchanged)."""
    new = _rows_to_faces(rows)
    if not len(new.ids):
        return old, in_window
    pos = old.rows_of(new.ids)
    present = pos >= 0
    merged = old.copy()
    flags = in_window.copy()
    for field in ("image", "state", "name", "guess", "anchor", "cluster", "distance"):
        getattr(merged, field)[pos[present]] = getattr(new, field)[present]
    for i, p in zip(np.nonzero(present)[0].tolist(), pos[present].tolist()):
        merged.finders[p] = new.finders[i]
    if window_value is not None:
        flags[pos[present]] = window_value
    if (~present).any():
        add = np.nonzero(~present)[0]
        ids = np.concatenate([merged.ids, new.ids[add]])
        order = np.argsort(ids, kind="stable")
        cat = {f: np.concatenate([getattr(merged, f), getattr(new, f)[add]])[order]
               for f in ("image", "state", "name", "guess", "anchor", "cluster", "distance")}
        finders = merged.finders + [new.finders[i] for i in add.tolist()]
        merged = _Faces(ids[order], finders=[finders[i] for i in order.tolist()], **cat)
        flags = np.concatenate([flags, np.full(len(add), bool(window_value))])[order]
    return merged, flags


def _select(session: Session, where: str, params: dict) -> list:
    return session.connection().execute(text(f"SELECT {_FACE_COLUMNS} FROM faces WHERE {where}"), params).fetchall()


def _select_ids(session: Session, ids: list[int]) -> list:
    """The rows of faces ``ids`` (those that still exist)."""
    rows: list = []
    statement = text(f"SELECT {_FACE_COLUMNS} FROM faces WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    for start in range(0, len(ids), 500):
        rows += session.connection().execute(statement, {"ids": ids[start:start + 500]}).fetchall()
    return rows


def _load_faces(session: Session, owner_id: int) -> _Faces:
    """The owner's faces as arrays, from the process cache checked against the database (plain text SQL, no ORM
    work per row):

    1. the face count, the name ids (faces of a deleted name are read again) and the newest updated_at;
    2. the rows changed since the window start (newest change seen - 120 s, moved on now and then) must have the
       checksum of the cached rows. If anything differs, the rows from the newest change seen on are read and
       merged; if the checksum still differs, every row of the window; if the count still differs, everything.
    """
    key = (session.get_bind().url.render_as_string(hide_password=True), owner_id)
    count, names, newest = _read_fingerprint(session, owner_id)
    cached = _faces_cache.get(key)
    if cached is not None and count >= cached.count:
        found = _fresh_cache(session, owner_id, cached, count, names, newest)
        if found is not None:
            _faces_cache[key] = found
            _touch(session, ("faces", *key))
            return found.faces.copy()
    since = (newest or utcnow()) - _DELTA_WINDOW
    rows = session.connection().execute(
        text(f"SELECT {_FACE_COLUMNS}, CASE WHEN updated_at >= :since THEN 1 ELSE 0 END FROM faces "
             "WHERE owner_id = :owner ORDER BY id"), {"owner": owner_id, "since": _db_time(session, since)}).fetchall()
    faces = _rows_to_faces(rows)
    in_window = np.fromiter((r[9] for r in rows), np.int64, len(rows)).astype(bool)
    _faces_cache[key] = _FacesCache(faces, count, names, since, in_window, newest)
    _touch(session, ("faces", *key))
    return faces.copy()


def _fresh_cache(session: Session, owner_id: int, cached: _FacesCache, count: int, names: np.ndarray,
                 newest: datetime | None) -> _FacesCache | None:
    """``cached`` brought up to date with the database, or None when it must be read in full."""
    faces, in_window = cached.faces, cached.in_window
    deleted = np.setdiff1d(cached.names, names, assume_unique=True)
    if len(deleted):  # faces that used a deleted name lost it without a new updated_at: read them again
        used = np.nonzero(np.isin(faces.name, deleted) | np.isin(faces.guess, deleted))[0]
        faces, in_window = _merge_rows(faces, in_window, _select_ids(session, faces.ids[used].tolist()), None)
    window = _window_sum(session, owner_id, cached.since)
    current = _FacesCache(faces, count, names, cached.since, in_window, newest)

    def complete(candidate: _FacesCache) -> bool:
        return len(candidate.faces.ids) == count and _expected_sum(candidate) == window

    if count != cached.count or newest != cached.newest or not complete(current):
        # the usual change: a few rows from the newest change seen on (ours included)
        start = cached.newest or cached.since
        rows = _select(session, "owner_id = :owner AND updated_at >= :since",
                       {"owner": owner_id, "since": _db_time(session, start)})
        faces, in_window = _merge_rows(faces, in_window, rows)
        current = _FacesCache(faces, count, names, cached.since, in_window, newest)
        if not complete(current):
            # something older in the window changed (a transaction that committed late): read the window again,
            # and the rows that left it (changed with an older time) by id
            rows = _select(session, "owner_id = :owner AND updated_at >= :since",
                           {"owner": owner_id, "since": _db_time(session, cached.since)})
            seen = {r[0] for r in rows}
            gone = [int(i) for i in faces.ids[in_window].tolist() if int(i) not in seen]
            faces, in_window = _merge_rows(faces, np.zeros(len(faces.ids), bool), rows)
            faces, in_window = _merge_rows(faces, in_window, _select_ids(session, gone), window_value=False)
            current = _FacesCache(faces, count, names, cached.since, in_window, newest)
            if not complete(current):
                return None
    if newest is not None and cached.since < newest - 2 * _DELTA_WINDOW and current.in_window.any():
        current = _move_window(session, owner_id, current, newest - _DELTA_WINDOW)
    return current


def _move_window(session: Session, owner_id: int, cache: _FacesCache, since: datetime) -> _FacesCache:
    """Start the window later (fewer rows to check on every load): which cached rows changed since ``since``."""
    ids = session.connection().execute(text("SELECT id FROM faces WHERE owner_id = :owner AND updated_at >= :since"),
                                       {"owner": owner_id, "since": _db_time(session, since)}).scalars().all()
    in_window = np.isin(cache.faces.ids, np.asarray(ids, np.int64))
    return _FacesCache(cache.faces, cache.count, cache.names, since, in_window, cache.newest)


def _remember_written(session: Session, owner_id: int, faces: _Faces, updates: dict[int, dict],
                      now: datetime) -> None:
    """After writing ``updates``: apply them to the cached arrays. Writing changes no count; the written rows are
    now in the window (if the transaction rolls back, the checksum no longer matches and the rows are read again)."""
    key = (session.get_bind().url.render_as_string(hide_password=True), owner_id)
    cached = _faces_cache.get(key)
    if cached is None or len(cached.faces.ids) != len(faces.ids) or not np.array_equal(cached.faces.ids, faces.ids):
        _faces_cache.pop(key, None)
        return
    for row, values in updates.items():
        for column, field, none in (("guess_name_id", "guess", 0), ("guess_anchor_face_id", "anchor", 0),
                                    ("cluster_id", "cluster", NO_GROUP), ("guess_distance", "distance", np.nan)):
            if column in values:
                getattr(faces, field)[row] = none if values[column] is None else values[column]
        if "state" in values:
            faces.state[row] = _STATE_CODES[values["state"]]
        if "guess_finders" in values:
            faces.finders[row] = values["guess_finders"]
    in_window = cached.in_window.copy()
    in_window[list(updates)] = True
    stored = _as_datetime(_db_time(session, now)) if session.get_bind().dialect.name != "postgresql" else now
    newest = stored if cached.newest is None else max(cached.newest, stored)
    _faces_cache[key] = _FacesCache(faces, cached.count, cached.names, cached.since, in_window, newest)
    _touch(session, ("faces", *key))


# --- the refresh ------------------------------------------------------------------------------------------------


def refresh_guesses(session: Session, settings, owner_id: int, face_ids: list[int] | None = None,  # noqa: ANN001
                    *, rules: GuessRules | None = None) -> RefreshResult:
    """Recompute the guesses (and groups) of ``owner_id``'s library that ``face_ids`` (new or changed faces)
    can affect; all of them when ``face_ids`` is None. Runs inside the caller's transaction.

    Args:
        settings: the finders' settings (which are enabled, their tolerance).
        face_ids: faces that were added or whose state/name changed; None = recompute everything.
        rules: guessing rules (default: :data:`DEFAULT_RULES`).
    Returns:
        A :class:`RefreshResult` with counts.
    """
    rules = rules or DEFAULT_RULES
    session.flush()
    faces = _load_faces(session, owner_id)
    result = RefreshResult()
    if not len(faces.ids):
        return result
    channels = _channels(session, settings, owner_id)
    candidate = np.isin(faces.state, _CANDIDATE_CODES)
    known = (faces.state == _CONFIRMED) & (faces.name > 0)

    if face_ids is None:
        targets = candidate.copy()
        changed_rows = np.nonzero(candidate)[0]
    else:
        requested = faces.rows_of(np.asarray(sorted(set(face_ids)), np.int64))
        changed_rows = requested[requested >= 0]
        targets = _affected(faces, channels, changed_rows, candidate, known, rules)
    target_rows = np.nonzero(targets)[0]
    result.examined = len(target_rows)

    updates: dict[int, dict] = {}
    now = utcnow()
    _guess(session, faces, channels, target_rows, known, rules, updates, result, now, owner_id)
    _group(faces, channels, candidate, changed_rows, face_ids is None, updates, result)
    # faces that are no longer candidates keep no guess and no group
    stale = ~candidate & ((faces.guess > 0) | (faces.cluster != NO_GROUP) | (faces.anchor > 0))
    for row in np.nonzero(stale)[0].tolist():
        updates.setdefault(row, {}).update(guess_name_id=None, guess_distance=None, guess_finders=None,
                                           guess_anchor_face_id=None, guessed_at=None, cluster_id=None)
    if updates:
        _write(session, faces, updates, now)
        _remember_written(session, owner_id, faces, updates, now)
    return result


def _write(session: Session, faces: _Faces, updates: dict[int, dict], now: datetime) -> None:
    """Write guess/group changes with plain Core UPDATEs (executemany by id, grouped by the columns set).
    These are not decisions: the ORM-level change hooks (clone change log) have nothing to record."""
    table = Face.__table__
    by_columns: dict[tuple[str, ...], list[dict]] = {}
    for row, values in updates.items():
        values = {**values, "updated_at": now}
        by_columns.setdefault(tuple(sorted(values)), []).append({"b_id": int(faces.ids[row]), **values})
    connection = session.connection()
    for columns, params in by_columns.items():
        statement = update(table).where(table.c.id == bindparam("b_id")).values(
            {c: bindparam(c) for c in columns})
        connection.execute(statement, params)
    # Face objects already loaded in this session read the new values on next access.
    written = {int(faces.ids[row]) for row in updates}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Face) and obj.id in written:
            session.expire(obj)


def _affected(faces: _Faces, channels, changed_rows: np.ndarray, candidate: np.ndarray, known: np.ndarray,
              rules: GuessRules) -> np.ndarray:
    """The candidate faces whose guess can change after a change to ``changed_rows``."""
    affected = np.zeros(len(faces.ids), bool)
    affected[changed_rows] = True
    affected |= np.isin(faces.image, faces.image[changed_rows])
    changed_ids = faces.ids[changed_rows]
    affected |= np.isin(faces.anchor, changed_ids) & (faces.anchor > 0)
    # guesses that no longer hold: anchor gone, no longer confirmed, or named otherwise; name deleted
    has_guess = faces.guess > 0
    anchor_rows = faces.rows_of(faces.anchor)
    anchor_ok = (anchor_rows >= 0) & known[np.maximum(anchor_rows, 0)] & (
        faces.name[np.maximum(anchor_rows, 0)] == faces.guess)
    affected |= has_guess & ~anchor_ok
    affected |= (faces.state == _STATE_CODES[FaceState.GUESSED]) & ~has_guess
    # faces within reach of a changed face, in any channel
    for chan in channels.values():
        cache = chan.cache
        if not len(cache.face_ids):
            continue
        pos = np.searchsorted(cache.face_ids, changed_ids)
        pos = np.minimum(pos, len(cache.face_ids) - 1)
        src = pos[cache.face_ids[pos] == changed_ids]
        if not len(src):
            continue
        # search every face of the channel (no copy of the large matrix), keep the candidates
        radius = chan.tolerance * max(rules.tolerance_scale, GROUP_SCALE) + rules.margin * chan.tolerance
        index = chan.index_for(len(src))
        if index is not None:
            _, hit, _ = index.radius_pairs(cache.prepared.take(src), radius)
        else:
            _, hit, _ = radius_pairs(cache.prepared.take(src), cache.prepared, radius)
        hit_rows = faces.rows_of(cache.face_ids[np.unique(hit)])
        hit_rows = hit_rows[hit_rows >= 0]
        affected[hit_rows[candidate[hit_rows]]] = True
    # the other faces of those photos (one person per photo)
    affected |= np.isin(faces.image, faces.image[affected])
    return affected & candidate


def _guess(session: Session, faces: _Faces, channels, target_rows: np.ndarray, known: np.ndarray,
           rules: GuessRules, updates: dict[int, dict], result: RefreshResult, now: datetime,
           owner_id: int) -> None:
    if not len(target_rows):
        return
    target_ids = faces.ids[target_rows]
    channel_inputs: dict[str, Channel] = {}
    known_rows_all = np.nonzero(known)[0]
    for label, chan in channels.items():
        cache, tolerance = chan.cache, chan.tolerance
        if not len(cache.face_ids):
            continue
        qpos = np.searchsorted(cache.face_ids, target_ids)
        qpos = np.minimum(qpos, len(cache.face_ids) - 1)
        qin = cache.face_ids[qpos] == target_ids
        query = cache.prepared.take(qpos[qin])
        index = chan.index_for(len(query))
        if index is not None or len(query) * 20 < len(cache.face_ids):
            # Compared with the channel's whole matrix (no copy of it): faces that are not confirmed carry name 0,
            # which is never a guess; the index (large batches) looks only at the confirmed rows, exactly.
            rows = faces.rows_of(cache.face_ids)
            names = np.where((rows >= 0) & known[np.maximum(rows, 0)], faces.name[np.maximum(rows, 0)], 0)
            search = None if index is None else functools.partial(_index_search, index, names > 0)
            channel_inputs[label] = Channel(tolerance, cache.prepared, cache.face_ids, names, query,
                                            np.nonzero(qin)[0], search=search)
            continue
        kpos = np.searchsorted(cache.face_ids, faces.ids[known_rows_all])
        kpos = np.minimum(kpos, len(cache.face_ids) - 1)
        kin = cache.face_ids[kpos] == faces.ids[known_rows_all]
        krows = known_rows_all[kin]
        channel_inputs[label] = Channel(
            tolerance=tolerance,
            known=cache.prepared.take(kpos[kin]),
            known_face_ids=faces.ids[krows],
            known_name_ids=faces.name[krows],
            query=query,
            query_rows=np.nonzero(qin)[0],
        )
    rejected: dict[int, set[int]] = {}
    for fid, nid in _rejected(session, owner_id, target_ids):
        rejected.setdefault(fid, set()).add(nid)
    photo_names: dict[int, set[int]] = {}
    in_photos = known & np.isin(faces.image, faces.image[target_rows])
    for image, name in zip(faces.image[in_photos].tolist(), faces.name[in_photos].tolist()):
        photo_names.setdefault(image, set()).add(name)
    guesses = guess_names(target_ids, faces.image[target_rows], channel_inputs, rules, rejected, photo_names)
    for row in target_rows.tolist():
        fid = int(faces.ids[row])
        guess = guesses.get(fid)
        old_guess = int(faces.guess[row])
        if guess is None:
            if old_guess or faces.state[row] != _CANDIDATE_CODES[0]:
                updates.setdefault(row, {}).update(
                    state=FaceState.UNNAMED, guess_name_id=None, guess_distance=None, guess_finders=None,
                    guess_anchor_face_id=None, guessed_at=None)
                result.withdrawn += 1 if old_guess else 0
            continue
        finders = ",".join(dict.fromkeys(c.split("@")[0] for c in guess.channels))
        score = round(guess.score, 4)
        if (old_guess == guess.name_id and faces.anchor[row] == guess.anchor_face_id
                and faces.finders[row] == finders and faces.distance[row] == score
                and faces.state[row] == _CANDIDATE_CODES[1]):
            continue
        values = dict(state=FaceState.GUESSED, guess_name_id=guess.name_id, guess_distance=score,
                      guess_finders=finders, guess_anchor_face_id=guess.anchor_face_id)
        if old_guess != guess.name_id:
            values["guessed_at"] = now
            result.guessed += 1
        updates.setdefault(row, {}).update(values)


def _index_search(index: BoundIndex, allowed: np.ndarray, query: Prepared, radius: float):
    return index.radius_pairs(query, radius, allowed)


def _rejected(session: Session, owner_id: int, face_ids: np.ndarray) -> list[tuple[int, int]]:
    if len(face_ids) > 2000:
        rows = session.execute(select(RejectedName.face_id, RejectedName.name_id)
                               .join(Face, Face.id == RejectedName.face_id).where(Face.owner_id == owner_id)).all()
        return [(f, n) for f, n in rows]
    if not len(face_ids):
        return []
    rows = session.execute(select(RejectedName.face_id, RejectedName.name_id)
                           .where(RejectedName.face_id.in_(face_ids.tolist()))).all()
    return [(f, n) for f, n in rows]


def _group(faces: _Faces, channels, candidate: np.ndarray, changed_rows: np.ndarray, full: bool,
           updates: dict[int, dict], result: RefreshResult) -> None:
    """Groups of the candidate faces: all of them (full) or only the changed ones joining/forming groups."""
    nodes = np.nonzero(candidate)[0]
    if not len(nodes):
        return
    old = faces.cluster[nodes]
    sources = None
    if not full:
        sources = np.nonzero(np.isin(nodes, changed_rows) & (old == NO_GROUP))[0]
        if not len(sources):
            return
    node_ids = faces.ids[nodes]
    inputs = {}
    for label, chan in channels.items():
        cache = chan.cache
        if not len(cache.face_ids):
            continue
        pos = np.minimum(np.searchsorted(cache.face_ids, node_ids), len(cache.face_ids) - 1)
        inside = cache.face_ids[pos] == node_ids
        inputs[label] = (cache.prepared.take(pos[inside]), np.nonzero(inside)[0], chan.tolerance * GROUP_SCALE)
    next_label = int(max(faces.cluster.max(initial=0), 0)) + 1
    if full:
        edges = similarity_edges(len(nodes), inputs, None, GROUP_LINKS)
        fresh = chinese_whispers(len(nodes), edges, faces.image[nodes], None, next_label)
        new = relabel_like(fresh, old, next_label)
    else:
        edges = similarity_edges(len(nodes), inputs, sources, GROUP_LINKS)
        new = chinese_whispers(len(nodes), edges, faces.image[nodes], old, next_label)
    for i in np.nonzero(new != old)[0].tolist():
        row = int(nodes[i])
        updates.setdefault(row, {})["cluster_id"] = None if new[i] == NO_GROUP else int(new[i])
        result.grouped += 1
