"""Helpers for the media tests."""

from __future__ import annotations

import numpy as np


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 arrays of the same shape, in grey levels."""
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for an ``upright`` picture under EXIF ``orientation``.

    Written from the EXIF 2.3 definition of the tag (where the stored 0th row and 0th column lie on the
    upright picture), not from any library's transpose table:
    1 row0=top col0=left, 2 top/right, 3 bottom/right, 4 bottom/left,
    5 row0=left col0=top, 6 right/top, 7 right/bottom, 8 left/bottom.
    """
    u = upright
    table = {
        1: lambda: u,
        2: lambda: u[:, ::-1],
        3: lambda: u[::-1, ::-1],
        4: lambda: u[::-1, :],
        # stored row r runs along an upright column, stored column c along an upright row
        5: lambda: u.transpose(1, 0, 2),  # stored[r, c] = u[c, r]
        6: lambda: u[:, ::-1].transpose(1, 0, 2),  # stored[r, c] = u[c, W-1-r]
        7: lambda: u[::-1, ::-1].transpose(1, 0, 2),  # stored[r, c] = u[H-1-c, W-1-r]
        8: lambda: u[::-1, :].transpose(1, 0, 2),  # stored[r, c] = u[H-1-c, r]
    }
    return np.ascontiguousarray(table[orientation]())


def quadrants(width: int, height: int) -> np.ndarray:
    """An upright test picture: red top-left, green top-right, blue bottom-left, white bottom-right."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    image[:h2, :w2] = (255, 0, 0)
    image[:h2, w2:] = (0, 255, 0)
    image[h2:, :w2] = (0, 0, 255)
    image[h2:, w2:] = (255, 255, 255)
    return image


def quadrant_means(image: np.ndarray) -> np.ndarray:
    """The mean colour of the inner part of each quadrant (TL, TR, BL, BR), away from the edges."""
    h, w = image.shape[:2]
    def block(y0, y1, x0, x1):
        return image[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    hq, wq = h // 4, w // 4
    return np.array([
        block(hq // 2, h // 2 - hq // 2, wq // 2, w // 2 - wq // 2),
        block(hq // 2, h // 2 - hq // 2, w // 2 + wq // 2, w - wq // 2),
        block(h // 2 + hq // 2, h - hq // 2, wq // 2, w // 2 - wq // 2),
        block(h // 2 + hq // 2, h - hq // 2, w // 2 + wq // 2, w - wq // 2),
    ])
