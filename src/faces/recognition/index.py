"""An approximate nearest-neighbour index (usearch HNSW) for very large sets of confirmed faces.

Exact search (:func:`faces.recognition.vectors.radius_pairs`) costs one matrix product over every known face
per query; with a million known faces an HNSW graph answers 10k queries much faster, once it is built.
The index returns up to ``k`` candidates per query; their distances are then recomputed exactly, so a guess's
distance is never approximate, only (rarely) a far neighbour may be missed.
"""

from __future__ import annotations

import numpy as np

from faces.recognition.vectors import Prepared, row_distances


class IndexUnavailable(RuntimeError):
    """usearch is not installed."""


class UsearchIndex:
    """HNSW over prepared vectors; rows are addressed by their position (``0..n-1``) in the known set."""

    def __init__(self, known: Prepared, *, dtype: str = "f16", connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 64, threads: int = 0):
        try:
            from usearch.index import Index
        except ImportError as exc:  # pragma: no cover - usearch is a dependency
            raise IndexUnavailable(f"usearch cannot be imported: {exc}") from None
        self.known = known
        self.threads = threads
        metric = "cos" if known.metric == "cosine" else "l2sq"
        self.index = Index(ndim=known.data.shape[1], metric=metric, dtype=dtype, connectivity=connectivity,
                           expansion_add=expansion_add, expansion_search=expansion_search)
        if len(known):
            self.index.add(np.arange(len(known), dtype=np.uint64), known.data, threads=threads)

    def radius_pairs(self, queries: Prepared, radius: float, k: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :func:`faces.recognition.vectors.radius_pairs`, over the ``k`` approximate nearest neighbours."""
        empty = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        if not len(queries) or not len(self.known):
            return empty
        found = self.index.search(queries.data, min(k, len(self.known)), threads=self.threads)
        keys = np.asarray(found.keys).reshape(len(queries), -1).astype(np.int64)
        counts = np.asarray(found.counts).reshape(-1)
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        q = np.nonzero(valid)[0]
        kk = keys[valid]
        d = row_distances(queries, q, self.known, kk)
        keep = d <= radius
        q, kk, d = q[keep], kk[keep], d[keep].astype(np.float32)
        order = np.lexsort((d, q))
        return q[order], kk[order], d[order]
