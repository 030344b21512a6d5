"""What a detection worker does with one image: decode it once, run each pending finder, return plain results.

These functions run inside worker processes (see :mod:`faces.jobs.executor`), and in Celery workers later:
:func:`init_worker` loads the finders' models once per process; :func:`process_image` handles one
:class:`DetectTask` and returns a :class:`DetectResult` made of plain picklable values.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from faces.config import Settings

log = logging.getLogger(__name__)


@dataclass
class DetectTask:
    """One image to look at: its id and path, the finders still pending on it, the decode size."""

    image_id: int
    path: str
    finders: list[str]
    max_side: int | None  # largest side any of these finders needs; None = full resolution
    max_pixels: int = 120_000_000  # decompression-bomb limit


@dataclass
class FoundFace:
    """One face one finder found: box ``(x, y, w, h)`` in upright full-resolution pixels, and its embedding."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: list[list[float]]
    vector: bytes  # float32


@dataclass
class FinderOutcome:
    """One finder's result on one image: ``done`` (faces), ``no_face`` or ``error`` (with ``error``)."""

    status: str
    faces: list[FoundFace] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    model_version: str = ""


@dataclass
class DetectResult:
    """Everything found on one image; ``media_code``/``media_error`` set when the file could not be decoded."""

    image_id: int
    finders: dict[str, FinderOutcome] = field(default_factory=dict)
    media_code: str | None = None
    media_error: str | None = None
    seconds: float = 0.0


_finders: dict = {}


def init_worker(settings: Settings, finder_names: list[str], single_thread: bool = True) -> None:
    """Load the models of ``finder_names`` once in this process.

    With ``single_thread`` the native libraries use one thread each: the parallelism is one process per core.
    """
    from faces.finders.registry import create_finder

    if single_thread:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass
    _finders.clear()
    for name in finder_names:
        finder = create_finder(name, settings)
        finder.load()
        _finders[name] = finder


def process_image(task: DetectTask) -> DetectResult:
    """Decode ``task.path`` once at ``task.max_side`` and run each of ``task.finders`` on it.

    A file that cannot be decoded gives a result with ``media_code``/``media_error``; a finder that fails gives
    that finder an ``error`` outcome; neither raises.
    """
    from faces.media import load_image
    from faces.media.types import MediaError

    started = time.perf_counter()
    result = DetectResult(image_id=task.image_id)
    try:
        image = load_image(task.path, task.max_side, max_pixels=task.max_pixels)
    except MediaError as exc:
        result.media_code, result.media_error = exc.code, exc.message
        result.seconds = time.perf_counter() - started
        return result
    decode_share = (time.perf_counter() - started) / max(1, len(task.finders))
    for name in task.finders:
        finder = _finders.get(name)
        if finder is None:
            result.finders[name] = FinderOutcome(status="error", error=f"finder {name} is not loaded in this worker")
            continue
        t0 = time.perf_counter()
        try:
            faces = finder.detect(image)
        except MemoryError:
            outcome = FinderOutcome(status="error", error="ran out of memory while looking for faces")
        except Exception as exc:  # noqa: BLE001 - one finder failing on one image is recorded, not raised
            log.warning("finder %s failed on image %s: %s", name, task.image_id, exc)
            outcome = FinderOutcome(status="error", error=f"{type(exc).__name__}: {exc}")
        else:
            found = [
                FoundFace(box=tuple(int(v) for v in f.box), score=float(f.score),
                          landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks],
                          vector=_vector_bytes(f.embedding))
                for f in faces
            ]
            outcome = FinderOutcome(status="done" if found else "no_face", faces=found)
        outcome.seconds = time.perf_counter() - t0 + decode_share
        outcome.model_version = finder.model_version
        result.finders[name] = outcome
    result.seconds = time.perf_counter() - started
    del image
    _release_memory()
    return result


def _release_memory() -> None:
    """Give the freed buffers of big photos back to the system (glibc keeps them otherwise), so that two
    workers' memory stays near their models' size between photos: at most once a second (a trim takes 2-3 ms,
    5 % of a small photo's time when done after each)."""
    global _trim, _trimmed_at
    if _trim is None:
        try:
            import ctypes

            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    now = time.monotonic()
    if _trim and now - _trimmed_at >= TRIM_INTERVAL:
        _trim(0)
        _trimmed_at = now


_trim = None
_trimmed_at = 0.0
TRIM_INTERVAL = 1.0  # seconds


def _vector_bytes(embedding) -> bytes:
    import numpy as np

    return np.ascontiguousarray(embedding, dtype=np.float32).tobytes()
