"""The finder interface: one detector plus one embedder, behind one small class.

A finder turns a decoded upright image into faces (box, score, landmarks, embedding). It loads its models
once per process, on first use, under a lock, and never downloads anything: model files come from installed
packages. The pipeline composes finders; recognition compares their embeddings with the finder's ``metric``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from faces.config import FinderSettings
from faces.media.types import LoadedImage


@dataclass
class DetectedFace:
    """One face found by one finder.

    ``box`` is ``(x, y, w, h)`` in integer pixels of the full-resolution upright image.
    ``landmarks`` are ``(x, y)`` points in the same coordinates (5 points for both finders).
    ``embedding`` is a float32 vector (128-d for both finders).
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: list[tuple[float, float]]
    embedding: np.ndarray


@dataclass
class ModelFile:
    """A model file a finder needs, with where it was found and whether it checked out."""

    name: str
    path: str
    size: int | None = None
    sha256: str | None = None
    ok: bool = False
    problem: str = ""


@dataclass
class SelfCheck:
    """What a finder needs and whether it can run here. ``reason`` says why not, in plain words."""

    finder: str
    ok: bool
    libraries: dict[str, str] = field(default_factory=dict)  # package -> version
    model_files: list[ModelFile] = field(default_factory=list)
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)


class FinderUnavailable(RuntimeError):
    """The finder cannot run on this machine (missing library or model file); the message says why."""


class Finder(ABC):
    """Base class of every finder. Subclasses set the class attributes and write ``_load`` and ``_detect``."""

    name: ClassVar[str]  # registry key, stored with every embedding: "dlib", "opencv"
    metric: ClassVar[str]  # "euclidean" or "cosine": how two embeddings of this finder are compared
    embedding_dim: ClassVar[int] = 128

    def __init__(self, settings: FinderSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def model_version(self) -> str:
        """A string naming the embedding model; embeddings of different versions are never compared."""
        return f"{self.name}-{self.settings.model}"

    @property
    def max_side(self) -> int | None:
        """Longest side the detector needs; media decodes JPEGs at a reduced scale down to about this."""
        return self.settings.max_side or None

    def load(self) -> None:
        """Load the models, once per process. Raises FinderUnavailable when they cannot be loaded."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def detect(self, image: LoadedImage) -> list[DetectedFace]:
        """Find the faces in ``image``; boxes and landmarks in full-resolution upright pixels.

        Faces smaller than ``min_face_size`` or scored below ``score_threshold`` are left out.
        """
        self.load()
        faces = self._detect(image)
        minimum = self.settings.min_face_size
        return [
            f for f in faces
            if min(f.box[2], f.box[3]) >= minimum and f.score >= self.settings.score_threshold
        ]

    @abstractmethod
    def self_check(self, thorough: bool = False) -> SelfCheck:
        """Report libraries, versions and model files, and whether this finder can run (without raising).

        ``thorough`` (``faces selfcheck``, the admin page) may also try what costs time and memory, such as
        building a model; the quick check (choosing the finders of a scan) leaves that to the workers."""

    @abstractmethod
    def _load(self) -> None:
        """Load the model files into memory."""

    @abstractmethod
    def _detect(self, image: LoadedImage) -> list[DetectedFace]:
        """Detect, align and embed every face of ``image`` (no size or score filtering needed here)."""

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
        """Distances between one embedding ``a`` (d,) and many ``b`` (n, d) under ``metric``."""
        if metric == "cosine":
            a_n = a / (np.linalg.norm(a) or 1.0)
            b_n = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
            return 1.0 - b_n @ a_n
        return np.linalg.norm(b - a, axis=1)
