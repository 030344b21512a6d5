"""Guessing names: pure functions over numpy arrays (no database).

For every face without a confirmed name, per *channel* (one finder and model version), the confirmed faces
within reach are found, and for each name its nearest confirmed face. A channel *votes* for its best name when

- the distance is within the finder's tolerance (times ``GuessRules.tolerance_scale``), and
- the second-best name is clearly farther: at least ``margin x tolerance`` more.

Channels are combined (``GuessRules.combine``):

- ``agree``: every channel in which the face has an embedding (and the owner has confirmed faces) must vote,
  all for the same name;
- ``any``: at least one channel votes, and no channel votes for (or is nearest to) a different name;
- ``mean``: one combined score per name, the mean over channels of distance / tolerance, with the same rules,
  and no channel nearest (within tolerance) to another name.

Then the names that cannot be right are removed: names rejected for that face, names confirmed on another face
of the same photo; and one person is guessed at most once per photo (the closest face keeps the guess).
A guess's ``score`` is the mean over its channels of distance / tolerance (below 1.0 = within tolerance).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from faces.recognition.vectors import Prepared, radius_pairs

COMBINE_MODES = ("agree", "any", "mean")
_KEY = np.int64(1) << 31


@dataclass(frozen=True)
class GuessRules:
    """The rules that decide whether a face gets a guess. Defaults chosen by ``benchmarks/recognition.py``."""

    margin: float = 0.1  # second-best name at least margin x tolerance farther than the best
    tolerance_scale: float = 0.9  # multiplies every finder's tolerance (guesses stay a little inside it)
    combine: str = "agree"

    def __post_init__(self) -> None:
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"unknown finder combination {self.combine!r}; expected one of {COMBINE_MODES}")
        if self.margin < 0 or self.tolerance_scale <= 0:
            raise ValueError("margin must be >= 0 and tolerance_scale > 0")


@dataclass
class Channel:
    """One finder's embeddings: the confirmed faces (``known``) and the faces to guess (``query``).

    ``known_face_ids`` / ``known_name_ids`` describe the rows of ``known`` (name 0: not a candidate, skipped);
    ``query_rows[i]`` is the index, in the list of faces being guessed, of row ``i`` of ``query``.
    """

    tolerance: float
    known: Prepared
    known_face_ids: np.ndarray
    known_name_ids: np.ndarray
    query: Prepared
    query_rows: np.ndarray
    # Optional nearest-neighbour search (e.g. faces.recognition.ann.BoundIndex.radius_pairs) used instead of
    # the exact block search: ``search(query, radius) -> (query_rows, known_rows, distances)``.
    search: Callable[[Prepared, float], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None


@dataclass
class Guess:
    """The guess for one face: a name, its score (mean distance / tolerance), the channels that agreed,
    their raw distances, and the nearest confirmed face of that name (the anchor)."""

    name_id: int
    score: float
    channels: tuple[str, ...]
    distances: dict[str, float] = field(default_factory=dict)
    anchor_face_id: int = 0


@dataclass
class _Near:
    """Per face and channel: best distance and anchor per name (nearest first), and the search radius."""

    names: list[tuple[int, float, int]]  # (name_id, distance, anchor_face_id), ascending distance
    radius: float


def _nearest_names(channel: Channel, rules: GuessRules, excluded_keys: np.ndarray) -> dict[int, _Near]:
    """For each query face (index into the face list), the names within reach in this channel."""
    tol = channel.tolerance * rules.tolerance_scale
    radius = tol + rules.margin * channel.tolerance
    if channel.search is not None:
        q, k, d = channel.search(channel.query, radius)
    else:
        q, k, d = radius_pairs(channel.query, channel.known, radius)
    result: dict[int, _Near] = {}
    if len(q) == 0:
        return result
    faces = channel.query_rows[q]
    names = channel.known_name_ids[k]
    if (names <= 0).any():  # rows without a confirmed name (name 0) are not candidates
        keep = names > 0
        faces, names, k, d, q = faces[keep], names[keep], k[keep], d[keep], q[keep]
    if len(excluded_keys):
        keep = ~np.isin(faces.astype(np.int64) * _KEY + names, excluded_keys)
        faces, names, k, d = faces[keep], names[keep], k[keep], d[keep]
    # Sorted by (query row, distance): the first occurrence of (face, name) is that name's nearest face.
    _, first = np.unique(faces.astype(np.int64) * _KEY + names, return_index=True)
    first.sort()
    anchors = channel.known_face_ids[k[first]]
    for f, n, dist, a in zip(faces[first].tolist(), names[first].tolist(), d[first].tolist(), anchors.tolist()):
        near = result.get(f)
        if near is None:
            near = result[f] = _Near([], radius)
        if len(near.names) < 3:
            near.names.append((n, dist, a))
    for near in result.values():
        near.names.sort(key=lambda item: item[1])
    return result


def _vote(near: _Near | None, tolerance: float, rules: GuessRules) -> tuple[int, float, int] | None:
    """The name this channel votes for, ``(name_id, distance, anchor)``, or None."""
    if near is None or not near.names:
        return None
    name, best, anchor = near.names[0]
    second = near.names[1][1] if len(near.names) > 1 else np.inf
    if best <= tolerance * rules.tolerance_scale and second - best >= rules.margin * tolerance:
        return name, best, anchor
    return None


def guess_names(
    face_ids: np.ndarray,
    image_ids: np.ndarray,
    channels: dict[str, Channel],
    rules: GuessRules = GuessRules(),
    rejected: dict[int, set[int]] | None = None,
    photo_names: dict[int, set[int]] | None = None,
) -> dict[int, Guess]:
    """Guess names for the faces ``face_ids`` (with their ``image_ids``), against each channel's known faces.

    Args:
        face_ids, image_ids: the faces to guess (no confirmed name) and their photos, same length.
        channels: per channel name (e.g. ``"dlib"``), the known and query embeddings (see :class:`Channel`).
        rules: margin, tolerance scale, finder combination.
        rejected: face id -> names rejected for that face (never guessed for it).
        photo_names: image id -> names confirmed on faces of that photo (not guessed for its other faces).
    Returns:
        face id -> :class:`Guess`, only for the faces that get a guess; at most one face per (photo, name).
    """
    face_ids = np.asarray(face_ids, dtype=np.int64)
    image_ids = np.asarray(image_ids, dtype=np.int64)
    excluded: list[int] = []
    for row, (fid, iid) in enumerate(zip(face_ids.tolist(), image_ids.tolist())):
        for name in (rejected or {}).get(fid, ()):
            excluded.append(row * int(_KEY) + name)
        for name in (photo_names or {}).get(iid, ()):
            excluded.append(row * int(_KEY) + name)
    excluded_keys = np.unique(np.asarray(excluded, dtype=np.int64))

    per_channel: dict[str, dict[int, _Near]] = {}
    present: dict[int, list[str]] = defaultdict(list)  # face row -> channels where it can be compared
    for cname, channel in channels.items():
        if len(channel.known) == 0 or len(channel.query) == 0:
            continue
        per_channel[cname] = _nearest_names(channel, rules, excluded_keys)
        for row in channel.query_rows.tolist():
            present[row].append(cname)

    guesses: dict[int, Guess] = {}
    for row, cnames in present.items():
        guess = _combine(row, cnames, channels, per_channel, rules)
        if guess is not None:
            guesses[row] = guess

    # One person at most once per photo: the closest face keeps the name.
    best: dict[tuple[int, int], int] = {}
    for row, guess in guesses.items():
        key = (int(image_ids[row]), guess.name_id)
        if key not in best or guess.score < guesses[best[key]].score:
            best[key] = row
    kept = set(best.values())
    return {int(face_ids[row]): guess for row, guess in guesses.items() if row in kept}


def _combine(row: int, cnames: list[str], channels: dict[str, Channel], per_channel: dict[str, dict[int, _Near]],
             rules: GuessRules) -> Guess | None:
    nears = {c: per_channel[c].get(row) for c in cnames}
    if rules.combine == "mean":
        return _combine_mean(nears, channels, rules)
    votes = {c: _vote(nears[c], channels[c].tolerance, rules) for c in cnames}
    voting = {c: v for c, v in votes.items() if v is not None}
    if not voting:
        return None
    names = {v[0] for v in voting.values()}
    if len(names) != 1:
        return None
    name = names.pop()
    if rules.combine == "agree" and len(voting) != len(cnames):
        return None
    if rules.combine == "any":
        # A channel that did not vote must not be nearest to another name within its tolerance.
        for c in cnames:
            near = nears[c]
            if c not in voting and near is not None and near.names:
                other, dist, _ = near.names[0]
                if other != name and dist <= channels[c].tolerance * rules.tolerance_scale:
                    return None
    score = float(np.mean([v[1] / channels[c].tolerance for c, v in voting.items()]))
    anchor_channel = min(voting, key=lambda c: voting[c][1] / channels[c].tolerance)
    return Guess(name, score, tuple(sorted(voting)), {c: float(v[1]) for c, v in voting.items()},
                 int(voting[anchor_channel][2]))


def _combine_mean(nears: dict[str, _Near | None], channels: dict[str, Channel], rules: GuessRules) -> Guess | None:
    candidates: set[int] = set()
    for near in nears.values():
        if near is not None:
            candidates.update(n for n, _, _ in near.names)
    if not candidates:
        return None
    scored = []
    for name in candidates:
        parts, anchor, anchor_score, dists = [], 0, np.inf, {}
        for c, near in nears.items():
            tol = channels[c].tolerance
            found = None if near is None else next((item for item in near.names if item[0] == name), None)
            if found is None:
                radius = near.radius if near is not None else tol * rules.tolerance_scale + rules.margin * tol
                parts.append(radius / tol)  # not within reach: at least the search radius
            else:
                parts.append(found[1] / tol)
                dists[c] = float(found[1])
                if found[1] / tol < anchor_score:
                    anchor, anchor_score = found[2], found[1] / tol
        scored.append((float(np.mean(parts)), name, anchor, dists))
    scored.sort(key=lambda item: item[0])
    score, name, anchor, dists = scored[0]
    # no finder may be nearest, within its tolerance, to another name
    for c, near in nears.items():
        if near is not None and near.names and near.names[0][0] != name \
                and near.names[0][1] <= channels[c].tolerance * rules.tolerance_scale:
            return None
    second = scored[1][0] if len(scored) > 1 else np.inf
    if score <= rules.tolerance_scale and second - score >= rules.margin and dists:
        return Guess(name, score, tuple(sorted(dists)), dists, int(anchor))
    return None
