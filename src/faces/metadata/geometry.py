"""Boxes between the upright image (where faces keeps its boxes) and the file as stored (where the standard
face regions live), and the normalised forms that MWG and Microsoft regions use.

EXIF orientation ``o`` says how the stored pixels must be turned to be shown upright. For a stored image of
``W x H`` pixels, a stored point ``(x, y)`` is shown upright at:

====  ==================  =====================
 o    upright point       upright size
====  ==================  =====================
 1    (x, y)              W x H
 2    (W - x, y)          W x H  (mirrored)
 3    (W - x, H - y)      W x H  (turned 180)
 4    (x, H - y)          W x H  (flipped)
 5    (y, x)              H x W  (transposed)
 6    (H - y, x)          H x W  (turned 90 clockwise)
 7    (H - y, W - x)      H x W  (transversed)
 8    (y, W - x)          H x W  (turned 90 anticlockwise)
====  ==================  =====================

These are continuous coordinates (pixel edges), so that a box maps to a box exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # (x, y, w, h)


class OrientationError(ValueError):
    """An EXIF orientation outside 1..8."""


def _check(orientation: int) -> int:
    o = int(orientation or 1)
    if not 1 <= o <= 8:
        raise OrientationError(f"EXIF orientation must be 1 to 8, not {orientation!r}")
    return o


def swaps_axes(orientation: int) -> bool:
    """True when the upright image is the stored one turned by 90 degrees (orientations 5 to 8)."""
    return _check(orientation) >= 5


def stored_size(upright_w: int, upright_h: int, orientation: int) -> tuple[int, int]:
    """The ``(width, height)`` of the stored pixels of an image shown upright as ``upright_w x upright_h``."""
    return (upright_h, upright_w) if swaps_axes(orientation) else (upright_w, upright_h)


def upright_size(stored_w: int, stored_h: int, orientation: int) -> tuple[int, int]:
    """The ``(width, height)`` of the upright image of a stored ``stored_w x stored_h`` one."""
    return (stored_h, stored_w) if swaps_axes(orientation) else (stored_w, stored_h)


def stored_to_upright_point(x: float, y: float, stored_w: float, stored_h: float,
                            orientation: int) -> tuple[float, float]:
    """Where stored point ``(x, y)`` is shown in the upright image (see the module table)."""
    o, W, H = _check(orientation), stored_w, stored_h
    return {
        1: (x, y), 2: (W - x, y), 3: (W - x, H - y), 4: (x, H - y),
        5: (y, x), 6: (H - y, x), 7: (H - y, W - x), 8: (y, W - x),
    }[o]


def upright_to_stored_point(u: float, v: float, upright_w: float, upright_h: float,
                            orientation: int) -> tuple[float, float]:
    """The stored point shown at upright point ``(u, v)``: the inverse of :func:`stored_to_upright_point`."""
    o, Wu, Hu = _check(orientation), upright_w, upright_h
    return {
        1: (u, v), 2: (Wu - u, v), 3: (Wu - u, Hu - v), 4: (u, Hu - v),
        5: (v, u), 6: (v, Wu - u), 7: (Hu - v, Wu - u), 8: (Hu - v, u),
    }[o]


def _corners_box(p: tuple[float, float], q: tuple[float, float]) -> Box:
    x0, x1 = sorted((p[0], q[0]))
    y0, y1 = sorted((p[1], q[1]))
    return (x0, y0, x1 - x0, y1 - y0)


def upright_to_stored_box(box: Sequence[float], upright_w: int, upright_h: int, orientation: int) -> Box:
    """An upright ``(x, y, w, h)`` box as a box of the stored pixels (floats)."""
    x, y, w, h = box
    p = upright_to_stored_point(x, y, upright_w, upright_h, orientation)
    q = upright_to_stored_point(x + w, y + h, upright_w, upright_h, orientation)
    return _corners_box(p, q)


def stored_to_upright_box(box: Sequence[float], stored_w: int, stored_h: int, orientation: int) -> Box:
    """A stored-pixel ``(x, y, w, h)`` box as a box of the upright image (floats)."""
    x, y, w, h = box
    p = stored_to_upright_point(x, y, stored_w, stored_h, orientation)
    q = stored_to_upright_point(x + w, y + h, stored_w, stored_h, orientation)
    return _corners_box(p, q)


def normalise(box: Sequence[float], width: float, height: float) -> Box:
    """A pixel box as fractions of ``width`` and ``height`` (left, top, width, height), clipped to 0..1."""
    x, y, w, h = box
    left = min(max(x / width, 0.0), 1.0)
    top = min(max(y / height, 0.0), 1.0)
    right = min(max((x + w) / width, 0.0), 1.0)
    bottom = min(max((y + h) / height, 0.0), 1.0)
    return (left, top, right - left, bottom - top)


def denormalise(nbox: Sequence[float], width: float, height: float) -> Box:
    """A normalised ``(left, top, width, height)`` box in pixels of a ``width x height`` image."""
    left, top, w, h = nbox
    return (left * width, top * height, w * width, h * height)


def to_int_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A float box rounded to whole pixels and clipped to a ``width x height`` image."""
    x0 = min(max(round(box[0]), 0), width)
    y0 = min(max(round(box[1]), 0), height)
    x1 = min(max(round(box[0] + box[2]), 0), width)
    y1 = min(max(round(box[1] + box[3]), 0), height)
    return (x0, y0, x1 - x0, y1 - y0)


def mwg_area(nbox: Sequence[float], digits: int = 6) -> dict[str, float | str]:
    """The MWG ``Area`` struct (centre x, y, width, height, normalised) of a normalised top-left box."""
    left, top, w, h = nbox
    return {"X": round(left + w / 2, digits), "Y": round(top + h / 2, digits), "W": round(w, digits),
            "H": round(h, digits), "Unit": "normalized"}


def from_mwg_area(area: dict) -> Box | None:
    """The normalised top-left box of an MWG ``Area`` struct; None when it is not a usable normalised area."""
    try:
        unit = str(area.get("Unit", "normalized")).strip().lower()
        if unit not in ("normalized", "normalised", ""):
            return None
        cx, cy = float(area["X"]), float(area["Y"])
        w, h = float(area.get("W", 0.0)), float(area.get("H", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if w <= 0 or h <= 0 or not (0 <= cx <= 1 and 0 <= cy <= 1):
        return None
    return (cx - w / 2, cy - h / 2, w, h)


def mp_rectangle(nbox: Sequence[float], digits: int = 6) -> str:
    """The Microsoft People Tagging ``Rectangle`` text ("left, top, width, height", normalised)."""
    return ", ".join(f"{round(v, digits):.{digits}f}" for v in nbox)


def from_mp_rectangle(text: object) -> Box | None:
    """The normalised top-left box of a Microsoft ``Rectangle`` text; None when it cannot be read."""
    try:
        parts = [float(p) for p in str(text).replace(";", ",").split(",")]
    except ValueError:
        return None
    if len(parts) != 4:
        return None
    left, top, w, h = parts
    if w <= 0 or h <= 0 or not (0 <= left <= 1 and 0 <= top <= 1):
        return None
    return (left, top, w, h)
