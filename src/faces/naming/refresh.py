"""Refreshing guesses and groups after detection or naming: the store side of ``faces.recognition``.

Only what can change is recomputed. After a change to faces ``C`` (new faces, or faces whose name changed),
the faces whose guess is recomputed are the unnamed/guessed faces that are in ``C``, in the same photos as ``C``,
within reach (tolerance + margin) of a face of ``C`` in some finder, or whose guess's anchor is in ``C`` or no
longer holds; plus the other faces of their photos (one person per photo). They are compared with all confirmed
faces. Embeddings are kept in process memory per owner and channel (finder + model version), checked against a
fingerprint of the embeddings table (count, largest id, sum of face ids) and topped up with new rows only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

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
    vectors: np.ndarray
    prepared: Prepared


_cache: dict[tuple[str, int, str, str], _ChannelCache] = {}
_cache_lock = threading.Lock()


def clear_cache(owner_id: int | None = None) -> None:
    """Forget the cached embeddings (of one owner, or all): after deleting a library."""
    with _cache_lock:
        for key in [k for k in _cache if owner_id is None or k[1] == owner_id]:
            del _cache[key]


def _to_matrix(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Stack float32 blobs of the most common length; returns (matrix, mask of rows kept)."""
    if not blobs:
        return np.empty((0, 0), np.float32), np.zeros(0, bool)
    lengths = np.fromiter((len(b) for b in blobs), np.int64, len(blobs))
    common = np.bincount(lengths).argmax()
    keep = lengths == common
    data = b"".join(b for b, k in zip(blobs, keep.tolist()) if k)
    return np.frombuffer(data, np.float32).reshape(int(keep.sum()), int(common) // 4).copy(), keep


def _channels(session: Session, settings, owner_id: int) -> dict[str, tuple[str, float, _ChannelCache]]:  # noqa: ANN001
    """Per channel key ``finder`` (or ``finder@version`` for older model versions): (finder, tolerance, cache)."""
    url = session.get_bind().url.render_as_string(hide_password=True)
    rows = session.execute(
        select(Embedding.finder, Embedding.model_version, func.count(Embedding.id), func.max(Embedding.id),
               func.sum(Embedding.face_id))
        .join(Face, Face.id == Embedding.face_id)
        .where(Face.owner_id == owner_id)
        .group_by(Embedding.finder, Embedding.model_version)
    ).all()
    newest: dict[str, int] = {}
    for finder, _version, _count, max_id, _sum in rows:
        newest[finder] = max(newest.get(finder, -1), int(max_id))
    result: dict[str, tuple[str, float, _ChannelCache]] = {}
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
        result[label] = (finder, conf.tolerance, cached)
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
            if not len(new_rows) or matrix.shape[1] == cached.vectors.shape[1]:
                face_ids = np.concatenate([cached.face_ids, ids[keep]])
                vectors = np.concatenate([cached.vectors, matrix]) if len(new_rows) else cached.vectors
                order = np.argsort(face_ids, kind="stable")
                face_ids, vectors = face_ids[order], vectors[order]
                return _ChannelCache(fingerprint, face_ids, vectors, prepare(vectors, FINDER_METRICS[finder]))
    rows = session.execute(base).all()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    matrix, keep = _to_matrix([r[1] for r in rows])
    ids = ids[keep]
    order = np.argsort(ids, kind="stable")
    ids, matrix = ids[order], matrix[order] if len(ids) else np.empty((0, 128), np.float32)
    return _ChannelCache(fingerprint, ids, matrix, prepare(matrix, FINDER_METRICS[finder]))


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

    def rows_of(self, face_ids: np.ndarray) -> np.ndarray:
        """Row index of each face id (-1 when not in the library)."""
        pos = np.searchsorted(self.ids, face_ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (len(self.ids) > 0) & (self.ids[pos] == face_ids) if len(self.ids) else np.zeros(len(face_ids), bool)
        return np.where(found, pos, -1)


def _load_faces(session: Session, owner_id: int) -> _Faces:
    rows = session.execute(
        select(Face.id, Face.image_id, Face.state, Face.name_id, Face.guess_name_id, Face.guess_anchor_face_id,
               Face.cluster_id, Face.guess_distance, Face.guess_finders)
        .where(Face.owner_id == owner_id).order_by(Face.id)
    ).all()
    n = len(rows)
    cols = list(zip(*rows)) if rows else [()] * 9
    return _Faces(
        ids=np.fromiter(cols[0], np.int64, n),
        image=np.fromiter(cols[1], np.int64, n),
        state=np.fromiter((_STATE_CODES[FaceState(s)] for s in cols[2]), np.int64, n),
        name=np.fromiter((v or 0 for v in cols[3]), np.int64, n),
        guess=np.fromiter((v or 0 for v in cols[4]), np.int64, n),
        anchor=np.fromiter((v or 0 for v in cols[5]), np.int64, n),
        cluster=np.fromiter((NO_GROUP if v is None else v for v in cols[6]), np.int64, n),
        distance=np.fromiter((np.nan if v is None else v for v in cols[7]), np.float64, n),
        finders=list(cols[8]),
    )


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
        session.execute(update(Face), [{"id": int(faces.ids[row]), **values} for row, values in updates.items()])
    return result


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
    cand_rows = np.nonzero(candidate)[0]
    for _finder, tolerance, cache in channels.values():
        if not len(cache.face_ids):
            continue
        pos = np.searchsorted(cache.face_ids, changed_ids)
        pos = np.minimum(pos, len(cache.face_ids) - 1)
        src = pos[cache.face_ids[pos] == changed_ids]
        cand_pos = np.searchsorted(cache.face_ids, faces.ids[cand_rows])
        cand_pos = np.minimum(cand_pos, len(cache.face_ids) - 1)
        in_channel = cache.face_ids[cand_pos] == faces.ids[cand_rows]
        if not len(src) or not in_channel.any():
            continue
        radius = tolerance * max(rules.tolerance_scale, GROUP_SCALE) + rules.margin * tolerance
        _, hit, _ = radius_pairs(cache.prepared.take(src), cache.prepared.take(cand_pos[in_channel]), radius)
        affected[cand_rows[in_channel][np.unique(hit)]] = True
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
    for label, (_finder, tolerance, cache) in channels.items():
        if not len(cache.face_ids):
            continue
        kpos = np.searchsorted(cache.face_ids, faces.ids[known_rows_all])
        kpos = np.minimum(kpos, len(cache.face_ids) - 1)
        kin = cache.face_ids[kpos] == faces.ids[known_rows_all]
        qpos = np.searchsorted(cache.face_ids, target_ids)
        qpos = np.minimum(qpos, len(cache.face_ids) - 1)
        qin = cache.face_ids[qpos] == target_ids
        krows = known_rows_all[kin]
        channel_inputs[label] = Channel(
            tolerance=tolerance,
            known=cache.prepared.take(kpos[kin]),
            known_face_ids=faces.ids[krows],
            known_name_ids=faces.name[krows],
            query=cache.prepared.take(qpos[qin]),
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
    node_ids = faces.ids[nodes]
    inputs = {}
    for label, (_finder, tolerance, cache) in channels.items():
        if not len(cache.face_ids):
            continue
        pos = np.minimum(np.searchsorted(cache.face_ids, node_ids), len(cache.face_ids) - 1)
        inside = cache.face_ids[pos] == node_ids
        inputs[label] = (cache.prepared.take(pos[inside]), np.nonzero(inside)[0], tolerance * GROUP_SCALE)
    old = faces.cluster[nodes]
    next_label = int(max(faces.cluster.max(initial=0), 0)) + 1
    if full:
        edges = similarity_edges(len(nodes), inputs, None, GROUP_LINKS)
        fresh = chinese_whispers(len(nodes), edges, faces.image[nodes], None, next_label)
        new = relabel_like(fresh, old, next_label)
    else:
        sources = np.nonzero(np.isin(nodes, changed_rows) & (old == NO_GROUP))[0]
        if not len(sources):
            return
        edges = similarity_edges(len(nodes), inputs, sources, GROUP_LINKS)
        new = chinese_whispers(len(nodes), edges, faces.image[nodes], old, next_label)
    for i in np.nonzero(new != old)[0].tolist():
        row = int(nodes[i])
        updates.setdefault(row, {})["cluster_id"] = None if new[i] == NO_GROUP else int(new[i])
        result.grouped += 1
