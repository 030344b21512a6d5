"""Synthetic embeddings for recognition tests: people as random directions, photos as noisy copies."""

from __future__ import annotations

import numpy as np

from faces.recognition.guess import Channel
from faces.recognition.vectors import prepare


def people(count: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    """``count`` random unit vectors, far apart from each other in 128 dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count, dim)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def photos_of(centre: np.ndarray, count: int, spread: float, seed: int) -> np.ndarray:
    """``count`` embeddings of one person: the centre plus noise of about ``spread`` in length."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((count, len(centre))).astype(np.float32)
    noise *= spread / np.sqrt(len(centre))
    vectors = centre + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def channel(known: np.ndarray, known_faces, known_names, query: np.ndarray, tolerance: float = 0.6,
            metric: str = "euclidean", query_rows=None) -> Channel:
    """A Channel from plain arrays."""
    return Channel(
        tolerance=tolerance,
        known=prepare(known, metric),
        known_face_ids=np.asarray(known_faces, np.int64),
        known_name_ids=np.asarray(known_names, np.int64),
        query=prepare(query, metric),
        query_rows=np.arange(len(query)) if query_rows is None else np.asarray(query_rows, np.int64),
    )
