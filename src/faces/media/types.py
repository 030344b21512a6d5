"""What media hands to the rest of faces: image facts, decoded pixels, and specific errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ImageInfo:
    """Facts about one image file, read without decoding every pixel.

    ``width`` and ``height`` are those of the upright image (after the EXIF orientation is applied).
    ``orientation`` is the EXIF orientation tag (1-8, 1 when absent) of the file as stored.
    """

    path: Path
    content_hash: str  # sha256 hex of the file bytes
    bytes: int
    width: int
    height: int
    format: str  # Pillow's format name: JPEG, PNG, WEBP, GIF, TIFF, BMP, HEIF, PPM...
    orientation: int = 1
    taken_at: datetime | None = None  # date taken from EXIF, naive local time as the camera wrote it


@dataclass
class LoadedImage:
    """Decoded upright RGB pixels, possibly reduced, with the factor back to full resolution.

    ``pixels`` is a C-contiguous uint8 array of shape (h, w, 3), RGB order.
    A box found on ``pixels`` maps to full-resolution upright coordinates by multiplying by ``scale``
    (``scale`` = full width / ``pixels`` width; 1.0 when not reduced). Use :meth:`to_full` and
    :meth:`to_full_point`: they also correct the tiny vertical difference that rounding the sides leaves.
    """

    pixels: np.ndarray
    scale: float
    full_width: int
    full_height: int

    @property
    def scale_y(self) -> float:
        """The vertical factor back to full resolution (equal to ``scale`` but for rounding of the sides)."""
        height = self.pixels.shape[0] if self.pixels.ndim >= 2 and self.pixels.shape[0] else 0
        return self.full_height / height if height else self.scale

    def to_full_point(self, x: float, y: float) -> tuple[float, float]:
        """Map a point (a landmark) on ``pixels`` to full-resolution upright coordinates."""
        return x * self.scale, y * self.scale_y

    def to_full(self, x: float, y: float, w: float, h: float) -> tuple[int, int, int, int]:
        """Map a box on ``pixels`` to an integer box in full-resolution upright pixels, clipped to the image."""
        sy = self.scale_y
        x0 = min(self.full_width, max(0, round(x * self.scale)))
        y0 = min(self.full_height, max(0, round(y * sy)))
        x1 = min(self.full_width, round((x + w) * self.scale))
        y1 = min(self.full_height, round((y + h) * sy))
        return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


class MediaError(Exception):
    """An image could not be read. ``code`` is stable (for scripts); the message is for people.

    Codes: ``empty``, ``not_an_image``, ``unsupported_format``, ``truncated``, ``corrupt``, ``too_many_pixels``,
    ``no_access``, ``missing``, and ``unreadable`` for anything else.
    """

    code = "unreadable"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class EmptyFileError(MediaError):
    code = "empty"


class NotAnImageError(MediaError):
    code = "not_an_image"


class UnsupportedFormatError(MediaError):
    code = "unsupported_format"


class TruncatedImageError(MediaError):
    code = "truncated"


class DecompressionBombError(MediaError):
    code = "too_many_pixels"


class FileAccessError(MediaError):
    code = "no_access"


class MissingFileError(FileAccessError):
    """The file is not there (any more): moved or deleted since it was added."""

    code = "missing"


class CorruptImageError(MediaError):
    """The file is in a known image format, but its data is damaged (not merely cut short)."""

    code = "corrupt"
