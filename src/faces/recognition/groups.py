"""Groups of look-alike unnamed faces: pure functions over numpy arrays (no database).

1. :func:`similarity_edges` links two faces when, in *every* channel (finder) where both have an embedding,
   their distance is within a strict threshold (stricter than the guessing tolerance); each face keeps its
   ``k`` nearest links.
2. :func:`chinese_whispers` clusters that graph (Biemann 2006): every face takes the label that weighs most among
   its links, until nothing changes. Faces with a *fixed* label (members of existing groups) keep it, so groups
   are stable when photos are added: new faces join an existing group or form new ones.
3. Two faces of one photo are never in one group (the face with the stronger links stays; existing members win).
   A face alone is in no group.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from faces.recognition.vectors import Prepared, radius_pairs, row_distances

NO_GROUP = -1


def similarity_edges(
    n: int,
    channels: dict[str, tuple[Prepared, np.ndarray, float]],
    sources: np.ndarray | None = None,
    k: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links between ``n`` faces (nodes ``0..n-1``).

    Args:
        channels: per channel, ``(vectors, rows, threshold)``: row ``i`` of ``vectors`` is node ``rows[i]``.
        sources: nodes whose links are searched (default: all); links go from them to any node.
        k: links kept per source node per channel (the nearest).
    Returns:
        ``(a, b, weight)`` with ``a < b``, unique pairs; weight in (0, 1], higher = more alike.
    """
    pairs: set[tuple[int, int]] = set()
    for vectors, rows, threshold in channels.values():
        if len(rows) == 0:
            continue
        if sources is None:
            src_idx = np.arange(len(rows))
        else:
            src_idx = np.nonzero(np.isin(rows, sources))[0]
        if len(src_idx) == 0:
            continue
        q, t, _ = radius_pairs(vectors.take(src_idx), vectors, threshold)
        keep = src_idx[q] != t
        q, t = q[keep], t[keep]
        # radius_pairs sorts by (query, distance): keep the first k of every query
        if len(q):
            starts = np.r_[0, np.nonzero(np.diff(q))[0] + 1]
            rank = np.arange(len(q)) - np.repeat(starts, np.diff(np.r_[starts, len(q)]))
            q, t = q[rank < k], t[rank < k]
        a, b = rows[src_idx[q]], rows[t]
        pairs.update(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    arr = np.array(sorted(pairs), dtype=np.int64)
    a, b = arr[:, 0], arr[:, 1]
    ok = np.ones(len(a), bool)
    total = np.zeros(len(a), np.float64)
    count = np.zeros(len(a), np.int64)
    for vectors, rows, threshold in channels.values():
        position = np.full(n, -1, np.int64)
        position[rows] = np.arange(len(rows))
        pa, pb = position[a], position[b]
        both = (pa >= 0) & (pb >= 0)
        d = row_distances(vectors, pa[both], vectors, pb[both])
        ok[np.nonzero(both)[0][d > threshold]] = False
        total[both] += d / threshold
        count[both] += 1
    ok &= count > 0
    weight = 1.0 - total[ok] / np.maximum(count[ok], 1)
    return a[ok], b[ok], np.maximum(weight, 0.01).astype(np.float32)


def chinese_whispers(
    n: int,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    image_ids: np.ndarray,
    labels: np.ndarray | None = None,
    next_label: int = 1,
    iterations: int = 30,
    seed: int = 0,
) -> np.ndarray:
    """Cluster ``n`` faces linked by ``edges``.

    Args:
        edges: ``(a, b, weight)`` as from :func:`similarity_edges`.
        image_ids: the photo of each face (two faces of one photo never share a group).
        labels: existing group of each face, ``NO_GROUP`` (-1) for free faces; existing labels are kept.
        next_label: first id for new groups (larger than every existing group id).
    Returns:
        The group of each face (existing ids kept, new groups numbered from ``next_label``), -1 for no group.
    """
    image_ids = np.asarray(image_ids, dtype=np.int64)
    fixed_labels = np.full(n, NO_GROUP, np.int64) if labels is None else np.asarray(labels, np.int64).copy()
    fixed = fixed_labels != NO_GROUP
    current = fixed_labels.copy()
    # free faces start alone, with temporary negative labels
    current[~fixed] = -2 - np.nonzero(~fixed)[0]
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for a, b, w in zip(*(x.tolist() for x in edges)):
        neighbours[a].append((b, w))
        neighbours[b].append((a, w))
    free = [i for i in np.nonzero(~fixed)[0].tolist() if neighbours[i]]
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = 0
        for i in rng.permutation(free).tolist() if free else []:
            weights: dict[int, float] = defaultdict(float)
            for j, w in neighbours[i]:
                weights[current[j]] += w
            best = max(weights.items(), key=lambda item: (item[1], item[0] == current[i], -abs(item[0])))[0]
            if best != current[i]:
                current[i] = best
                changed += 1
        if not changed:
            break
    current = _one_face_per_photo(current, fixed, image_ids, neighbours)
    # Renumber: fixed labels stay; temporary labels of groups with 2+ faces get new ids; singletons get none.
    result = np.full(n, NO_GROUP, np.int64)
    result[fixed] = current[fixed]
    temp, counts = np.unique(current[current < -1], return_counts=True)
    new_ids = {}
    for label, count in zip(temp.tolist(), counts.tolist()):
        if count >= 2:
            new_ids[label] = next_label
            next_label += 1
    for i in np.nonzero(~fixed)[0].tolist():
        label = int(current[i])
        if label >= 0:
            result[i] = label
        elif label in new_ids:
            result[i] = new_ids[label]
    return result


def _one_face_per_photo(current: np.ndarray, fixed: np.ndarray, image_ids: np.ndarray,
                        neighbours: list[list[tuple[int, float]]]) -> np.ndarray:
    """Keep one face per (group, photo): existing members first, then the face most linked inside the group."""
    members: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (label, image) in enumerate(zip(current.tolist(), image_ids.tolist())):
        members[(label, image)].append(i)
    for (label, _image), faces in members.items():
        if len(faces) < 2:
            continue

        def strength(i: int) -> tuple[bool, float]:
            return bool(fixed[i]), sum(w for j, w in neighbours[i] if current[j] == label)

        keep = max(faces, key=strength)
        for i in faces:
            if i != keep and not fixed[i]:
                current[i] = -2 - len(current) - i  # alone again, with a label nobody else has
    return current


def relabel_like(new: np.ndarray, old: np.ndarray, next_label: int) -> np.ndarray:
    """Rename the groups of ``new`` so that they keep the ids of ``old`` where they overlap most
    (each old id used once); other groups get ids from ``next_label``. -1 stays -1."""
    new = np.asarray(new, np.int64)
    old = np.asarray(old, np.int64)
    overlap: dict[tuple[int, int], int] = defaultdict(int)
    for a, b in zip(new.tolist(), old.tolist()):
        if a != NO_GROUP and b != NO_GROUP:
            overlap[(a, b)] += 1
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for (a, b), _count in sorted(overlap.items(), key=lambda item: -item[1]):
        if a not in mapping and b not in used:
            mapping[a] = b
            used.add(b)
    labels, inverse = np.unique(new, return_inverse=True)
    targets = []
    for label in labels.tolist():
        if label == NO_GROUP:
            targets.append(NO_GROUP)
            continue
        if label not in mapping:
            mapping[label] = next_label
            next_label += 1
        targets.append(mapping[label])
    return np.asarray(targets, np.int64)[inverse.reshape(-1)] if len(new) else new.copy()
