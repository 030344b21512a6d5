"""An inverted-file index (IVF) over one channel's embeddings, for libraries with very many faces.

The vectors are split into about ``sqrt(n)`` lists by k-means; a search compares each query, exactly, with the
faces of the ``probes`` lists whose centres are nearest to it, instead of with every face. Every distance it
returns is exact, and it returns *every* face within the radius in the lists it looks at, so the guessing rules
(tolerance, margin over the second-best name, exclusions) see exactly what the full search would see there;
only a face that lies in a list that was not looked at can be missed (measured in ``benchmarks/guess_scale.py``).

Why not a graph index (usearch HNSW): measured here it built 300-2000 vectors per second (a million faces in
about an hour), kept a second copy of the vectors (+400 MB per million), and answers "the k nearest", which
for a person with hundreds of confirmed faces hides the second-best name that the margin rule needs.

The index holds no vectors: only the list centres and, per face id, its list. Vectors stay in the caller's
matrix (rows sorted by face id), so a changed vector is always compared as it is now, and the index is small
enough to save (``.npz``) and reload in milliseconds. It holds *all* faces of a channel; which rows count
(e.g. the confirmed ones) is a mask given to each search, so naming a face never changes the index.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from faces.recognition.blas import one_blas_thread
from faces.recognition.vectors import BLOCK_ELEMENTS, METRICS, Prepared, radius_pairs

DEFAULT_PROBES = 8
_KMEANS_ITERATIONS = 8
_SAMPLE_PER_LIST = 32
_FORMAT = 1


def list_count(n: int) -> int:
    """How many lists for ``n`` vectors: about ``sqrt(n)`` (search and build costs balanced), at least 1."""
    return max(1, min(4096, int(round(math.sqrt(max(n, 1))))))


class IvfIndex:
    """Face ids (sorted) with the list each belongs to, and the list centres.

    ``keys`` always equals the face ids of the matrix it is searched with (see :meth:`sync`), so the face at
    position ``i`` of ``keys`` is row ``i`` of that matrix.
    """

    def __init__(self, metric: str, centroids: np.ndarray, keys: np.ndarray, lists: np.ndarray,
                 built_size: int | None = None):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric
        self.centroids = np.ascontiguousarray(centroids, np.float32)
        self._centre_norms = np.einsum("ij,ij->i", self.centroids, self.centroids)
        self.keys = np.asarray(keys, np.int64)
        self.lists = np.asarray(lists, np.int32)
        self.built_size = len(self.keys) if built_size is None else int(built_size)
        self._order: np.ndarray | None = None  # rows sorted by list, and where each list starts
        self._starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def list_total(self) -> int:
        """Number of lists."""
        return len(self.centroids)

    # --- building and keeping up to date ---------------------------------------------------------------------

    @classmethod
    def build(cls, keys: np.ndarray, vectors: Prepared, *, lists: int | None = None, seed: int = 0) -> IvfIndex:
        """Index the rows of ``vectors`` (face ids ``keys``, sorted): k-means on a sample, then every row is
        put in the list of its nearest centre."""
        n = len(keys)
        nlist = min(lists or list_count(n), max(n, 1))
        rng = np.random.default_rng(seed)
        dim = vectors.data.shape[1] if vectors.data.ndim == 2 else 0
        if n == 0:
            return cls(vectors.metric, np.zeros((1, dim), np.float32), np.empty(0, np.int64), np.empty(0, np.int32))
        sample = vectors.data[np.sort(rng.choice(n, min(n, nlist * _SAMPLE_PER_LIST), replace=False))]
        centroids = sample[rng.choice(len(sample), nlist, replace=False)].copy()
        for _ in range(_KMEANS_ITERATIONS):
            index = cls(vectors.metric, centroids, np.empty(0, np.int64), np.empty(0, np.int32))
            assigned = index.assign(sample)
            counts = np.bincount(assigned, minlength=nlist)
            order = np.argsort(assigned, kind="stable")
            present = np.nonzero(counts)[0]
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[present]
            centroids = np.zeros_like(centroids)
            centroids[present] = np.add.reduceat(sample[order], starts, axis=0) / counts[present, None]
            empty = counts == 0
            if empty.any():  # an empty list restarts at a random sample vector
                centroids[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
            if vectors.metric == "cosine":
                centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        index = cls(vectors.metric, centroids, np.empty(0, np.int64), np.empty(0, np.int32))
        index.keys = np.asarray(keys, np.int64).copy()
        index.lists = index.assign(vectors.data)
        index.built_size = n
        return index

    def assign(self, data: np.ndarray) -> np.ndarray:
        """The nearest list of each row of ``data`` (prepared vectors), in blocks."""
        out = np.empty(len(data), np.int32)
        step = max(1, BLOCK_ELEMENTS // max(1, len(self.centroids)))
        for start in range(0, len(data), step):
            out[start:start + step] = np.argmin(self._centre_scores(data[start:start + step]), axis=1)
        return out

    def _centre_scores(self, data: np.ndarray) -> np.ndarray:
        """A score per (row, list) that orders lists like the distance to their centre (smaller = nearer)."""
        dots = data @ self.centroids.T
        if self.metric == "cosine":
            return -dots
        dots *= -2.0
        dots += self._centre_norms[None, :]
        return dots

    def sync(self, keys: np.ndarray, vectors: Prepared) -> tuple[int, int]:
        """Make the index hold exactly the face ids ``keys`` (sorted; row ``i`` of ``vectors`` is ``keys[i]``):
        new faces are put in their nearest list, faces that are gone are dropped, the others keep their list.
        Returns ``(added, removed)``."""
        keys = np.asarray(keys, np.int64)
        if len(keys) == len(self.keys) and np.array_equal(keys, self.keys):
            return 0, 0
        lists = np.empty(len(keys), np.int32)
        if len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            known = self.keys[pos] == keys
        else:
            pos = np.zeros(len(keys), np.int64)
            known = np.zeros(len(keys), bool)
        lists[known] = self.lists[pos[known]]
        new_rows = np.nonzero(~known)[0]
        if len(new_rows):
            lists[new_rows] = self.assign(vectors.data[new_rows])
        removed = len(self.keys) - int(known.sum())
        self.keys, self.lists = keys.copy(), lists
        self._order = self._starts = None
        return len(new_rows), removed

    def outgrown(self) -> bool:
        """True when the index has grown or shrunk so much since it was built that its lists are badly sized."""
        n = len(self.keys)
        return n > 4 * max(self.built_size, 1) or (self.built_size > 1000 and n < self.built_size // 4)

    # --- searching -------------------------------------------------------------------------------------------

    def _grouped(self) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None:
            self._order = np.argsort(self.lists, kind="stable")
            self._starts = np.searchsorted(self.lists[self._order], np.arange(len(self.centroids) + 1))
        return self._order, self._starts

    def radius_pairs(self, queries: Prepared, known: Prepared, radius: float, allowed: np.ndarray | None = None,
                     probes: int = DEFAULT_PROBES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :func:`faces.recognition.vectors.radius_pairs` (exact distances, sorted by query then distance),
        over the faces of the ``probes`` lists nearest to each query.

        Args:
            queries: the vectors to search for.
            known: the matrix the index describes (row ``i`` = face ``keys[i]``).
            allowed: optional mask over the rows of ``known``: only those rows are returned.
            probes: lists looked at per query (all lists = the exact search).
        Returns:
            ``(query_rows, known_rows, distances)``.
        """
        empty = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        if not len(queries) or not len(self.keys):
            return empty
        if len(known) != len(self.keys):
            raise ValueError("the index does not describe this matrix: sync it first")
        probes = max(1, min(probes, len(self.centroids)))
        order, starts = self._grouped()
        if probes >= len(self.centroids):
            chosen = np.broadcast_to(np.arange(len(self.centroids)), (len(queries), len(self.centroids)))
        else:
            scores = self._centre_scores(queries.data)
            chosen = np.argpartition(scores, probes - 1, axis=1)[:, :probes]
        pair_query = np.repeat(np.arange(len(queries)), chosen.shape[1])
        pair_list = np.ascontiguousarray(chosen).reshape(-1)
        by_list = np.argsort(pair_list, kind="stable")
        pair_query, pair_list = pair_query[by_list], pair_list[by_list]
        bounds = np.searchsorted(pair_list, np.arange(len(self.centroids) + 1))
        out_q, out_k, out_d = [], [], []
        with one_blas_thread():  # many small products: see faces.recognition.blas
            for lst in np.nonzero(np.diff(bounds))[0].tolist():
                rows = order[starts[lst]:starts[lst + 1]]
                if allowed is not None:
                    rows = rows[allowed[rows]]
                if not len(rows):
                    continue
                qrows = pair_query[bounds[lst]:bounds[lst + 1]]
                q, k, d = radius_pairs(queries.take(qrows), known.take(rows), radius)
                if len(q):
                    out_q.append(qrows[q])
                    out_k.append(rows[k])
                    out_d.append(d)
        if not out_q:
            return empty
        q, k, d = np.concatenate(out_q), np.concatenate(out_k), np.concatenate(out_d)
        sort = np.lexsort((d, q))
        return q[sort], k[sort], d[sort]

    # --- saving ----------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (``.npz``), atomically (another process may be reading it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, format=np.int64(_FORMAT), metric=np.str_(self.metric), centroids=self.centroids,
                         keys=self.keys, lists=self.lists, built_size=np.int64(self.built_size))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> IvfIndex | None:
        """The index saved at ``path``, or None when there is none or it cannot be read."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != _FORMAT:
                    return None
                return cls(str(data["metric"]), data["centroids"], data["keys"], data["lists"],
                           int(data["built_size"]))
        except (OSError, KeyError, ValueError):
            return None
