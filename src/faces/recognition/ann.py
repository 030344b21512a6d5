"""One IVF index per library channel (owner + finder + model version): when to use it, and keeping it current.

:class:`ChannelIndexes` holds the indexes of a process. ``get`` returns an index bound to the channel's current
matrix, or None when the exact search is the better choice (setting ``ann_index``: ``exact``; ``auto`` below
``ann_min_faces`` faces in the channel). The first use in a process loads the index saved in the data directory,
or builds it (seconds for a million faces) and saves it. Every later use *syncs* it with the channel's face ids:
new faces go into their nearest list, deleted faces are dropped; nothing is rebuilt unless the library has grown
or shrunk fourfold. Names play no part: the index holds every face of the channel, and each search gets a mask of
the rows that count (the confirmed faces), so confirming, renaming or resetting a face never touches it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faces.recognition.index import DEFAULT_PROBES, IvfIndex
from faces.recognition.vectors import Prepared

log = logging.getLogger(__name__)
ANN_MODES = ("auto", "exact", "ivf")
DEFAULT_MIN_FACES = 50_000


@dataclass(frozen=True)
class AnnPolicy:
    """When and how to use the index: ``mode`` (auto | exact | ivf), the channel size from which ``auto`` uses it,
    the lists looked at per query, and where indexes are saved (None: not saved)."""

    mode: str = "auto"
    min_faces: int = DEFAULT_MIN_FACES
    probes: int = DEFAULT_PROBES
    directory: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in ANN_MODES:
            raise ValueError(f"unknown ann_index {self.mode!r}; expected one of {', '.join(ANN_MODES)}")

    def wants(self, faces: int) -> bool:
        """Is the index used for a channel of ``faces`` faces?"""
        return faces > 0 and (self.mode == "ivf" or (self.mode == "auto" and faces >= self.min_faces))


@dataclass
class _Entry:
    index: IvfIndex
    path: Path | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    unsaved: int = 0


class BoundIndex:
    """An index together with the matrix it describes (rows sorted by face id)."""

    def __init__(self, entry: _Entry, face_ids: np.ndarray, vectors: Prepared, probes: int):
        self._entry, self.face_ids, self.vectors, self.probes = entry, face_ids, vectors, probes

    def radius_pairs(self, queries: Prepared, radius: float, allowed: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the matrix within ``radius`` of each query (see :meth:`IvfIndex.radius_pairs`)."""
        with self._entry.lock:
            # another thread may have synced the index to a newer matrix meanwhile
            self._entry.index.sync(self.face_ids, self.vectors)
            return self._entry.index.radius_pairs(queries, self.vectors, radius, allowed, self.probes)


class ChannelIndexes:
    """The indexes of one process, by channel key (any hashable tuple, e.g. database, owner, finder, version)."""

    def __init__(self) -> None:
        self._entries: dict[tuple, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, face_ids: np.ndarray, vectors: Prepared, policy: AnnPolicy) -> BoundIndex | None:
        """The index of channel ``key``, synced with ``face_ids`` (sorted; row ``i`` of ``vectors``), or None
        when ``policy`` says the exact search is used."""
        if not policy.wants(len(face_ids)):
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = self._open(key, face_ids, vectors, policy)
        with entry.lock:
            added, removed = entry.index.sync(face_ids, vectors)
            entry.unsaved += added + removed
            if entry.index.outgrown():
                entry.index = self._build(key, face_ids, vectors)
                entry.unsaved = 1
            if entry.path is not None and entry.unsaved > max(1000, len(face_ids) // 20):
                self._save(entry)
        return BoundIndex(entry, face_ids, vectors, policy.probes)

    def forget(self, match) -> None:  # noqa: ANN001 - a predicate over keys
        """Drop the in-memory indexes whose key ``match(key)`` accepts (their files stay, and are synced on use)."""
        with self._lock:
            for key in [k for k in self._entries if match(k)]:
                del self._entries[key]

    def _open(self, key: tuple, face_ids: np.ndarray, vectors: Prepared, policy: AnnPolicy) -> _Entry:
        path = None
        if policy.directory is not None:
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
            path = policy.directory / f"{digest}.npz"
            loaded = IvfIndex.load(path)
            if loaded is not None and loaded.metric == vectors.metric and loaded.centroids.shape[1:] == \
                    vectors.data.shape[1:]:
                return _Entry(loaded, path)
        entry = _Entry(self._build(key, face_ids, vectors), path)
        if path is not None:
            self._save(entry)
        return entry

    @staticmethod
    def _build(key: tuple, face_ids: np.ndarray, vectors: Prepared) -> IvfIndex:
        started = time.perf_counter()
        index = IvfIndex.build(face_ids, vectors)
        log.info("nearest-neighbour index of %s faces (%s lists) built in %.1f s", len(face_ids),
                 index.list_total, time.perf_counter() - started)
        return index

    @staticmethod
    def _save(entry: _Entry) -> None:
        try:
            entry.index.save(entry.path)
            entry.unsaved = 0
        except OSError as exc:  # a read-only data directory costs a rebuild per process, nothing else
            log.warning("cannot save the nearest-neighbour index to %s: %s", entry.path, exc)
