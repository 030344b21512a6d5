"""Distances between embeddings, computed in blocks so that memory stays bounded.

Two metrics, as the finders declare them: ``euclidean`` (dlib) and ``cosine`` (1 - cosine similarity, SFace).
Vectors are first *prepared* once (float32, unit length for cosine, squared norms kept for euclidean), then
compared with one matrix product per block.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from faces.recognition.blas import one_blas_thread

METRICS = ("euclidean", "cosine")
BLOCK_ELEMENTS = 8_000_000  # query rows x known rows per block (32 MB of float32 distances)
SKINNY_QUERIES = 64  # up to this many queries, the product runs on one BLAS thread


class MetricError(ValueError):
    """An unknown metric name."""


@dataclass
class Prepared:
    """Vectors ready for fast comparison: ``data`` (n, d) float32 and, for euclidean, their squared norms."""

    metric: str
    data: np.ndarray
    sq_norms: np.ndarray | None = None

    def __len__(self) -> int:
        return self.data.shape[0]

    def take(self, rows: np.ndarray) -> Prepared:
        """The prepared vectors of ``rows`` (indices)."""
        return Prepared(self.metric, self.data[rows], None if self.sq_norms is None else self.sq_norms[rows])


def prepare(vectors: np.ndarray, metric: str) -> Prepared:
    """Prepare ``vectors`` (n, d) for comparison under ``metric`` ("euclidean" or "cosine")."""
    if metric not in METRICS:
        raise MetricError(f"unknown distance metric {metric!r}; expected one of {', '.join(METRICS)}")
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if data.ndim != 2:
        data = data.reshape(len(vectors), -1) if data.size else data.reshape(0, 0)
    if metric == "cosine":
        norms = np.linalg.norm(data, axis=1, keepdims=True)
        return Prepared(metric, data / np.maximum(norms, 1e-12))
    return Prepared(metric, data, np.einsum("ij,ij->i", data, data))


def distance_matrix(a: Prepared, b: Prepared) -> np.ndarray:
    """All distances between the rows of ``a`` and of ``b``: (len(a), len(b)) float32."""
    dots = a.data @ b.data.T
    if a.metric == "cosine":
        return 1.0 - dots
    sq = a.sq_norms[:, None] + b.sq_norms[None, :] - 2.0 * dots
    np.maximum(sq, 0.0, out=sq)
    return np.sqrt(sq, out=sq)


def row_distances(a: Prepared, rows_a: np.ndarray, b: Prepared, rows_b: np.ndarray) -> np.ndarray:
    """Distances between pairs ``(a[rows_a[i]], b[rows_b[i]])``: (len(rows_a),) float32."""
    dots = np.einsum("ij,ij->i", a.data[rows_a], b.data[rows_b])
    if a.metric == "cosine":
        return 1.0 - dots
    sq = a.sq_norms[rows_a] + b.sq_norms[rows_b] - 2.0 * dots
    return np.sqrt(np.maximum(sq, 0.0))


def radius_pairs(queries: Prepared, known: Prepared, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (query row, known row) whose distance is at most ``radius``, exact, in blocks.

    Returns ``(query_rows, known_rows, distances)``, sorted by query row then distance.
    """
    # a few queries against many faces: the product only streams the matrix once, one thread does it as fast
    # and does not wait for a busy second core (see faces.recognition.blas)
    with one_blas_thread() if len(queries) <= SKINNY_QUERIES else nullcontext():
        out_q, out_k, out_d = _radius_blocks(queries, known, radius)
    if not out_q:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    q = np.concatenate(out_q).astype(np.int64)
    k = np.concatenate(out_k).astype(np.int64)
    d = np.concatenate(out_d).astype(np.float32)
    order = np.lexsort((d, q))
    return q[order], k[order], d[order]


def _radius_blocks(queries: Prepared, known: Prepared, radius: float) -> tuple[list, list, list]:
    out_q: list = []
    out_k: list = []
    out_d: list = []
    if len(queries) and len(known):
        step = max(1, BLOCK_ELEMENTS // max(1, len(known)))
        for start in range(0, len(queries), step):
            block = queries.take(np.arange(start, min(start + step, len(queries))))
            # In place, and the square root only for the hits: the full matrix is touched as few times as possible.
            scores = block.data @ known.data.T
            if queries.metric == "cosine":
                q, k = np.nonzero(scores >= 1.0 - radius)
                d = 1.0 - scores[q, k]
            else:
                scores *= -2.0
                scores += known.sq_norms[None, :]
                scores += block.sq_norms[:, None]
                q, k = np.nonzero(scores <= radius * radius)
                d = np.sqrt(np.maximum(scores[q, k], 0.0))
            out_q.append(q + start)
            out_k.append(k)
            out_d.append(d)
    return out_q, out_k, out_d
