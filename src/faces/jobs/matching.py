"""Matching the boxes of two finders, so that one face seen by both is one face with two embeddings.

Two boxes are the same face when their IoU is at least ``MATCH_IOU`` and the centre of each lies inside the
other. Measured on 186 faces that dlib's HOG detector found in 42 photos of ../shared/data (dlib_faces_gt/dev,
wikimedia_commons_people, group photos, faceapi_bbt scenes) against YuNet's boxes on the same images: the
YuNet box of the same face had IoU 0.47 to 0.82 (HOG boxes are tight squares, YuNet's 0.7-1.1x as wide and
1.0-1.4x as tall) and always contained the HOG box's centre and vice versa; the nearest box of a *different*
face never reached IoU 0.12 and never contained the centre. 0.3 sits in the middle of that gap; the centre
test keeps a small face in front of or behind a big one apart.
"""

from __future__ import annotations

from collections.abc import Sequence

MATCH_IOU = 0.3

Box = Sequence[float]  # (x, y, w, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0.0 when they do not overlap)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def centre_inside(a: Box, b: Box) -> bool:
    """True when the centre of box ``a`` lies inside box ``b``."""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


def same_face(a: Box, b: Box, threshold: float = MATCH_IOU) -> bool:
    """True when boxes ``a`` and ``b`` (from two finders) frame the same face."""
    return iou(a, b) >= threshold and centre_inside(a, b) and centre_inside(b, a)


def match_boxes(new: Sequence[Box], existing: Sequence[Box], threshold: float = MATCH_IOU) -> dict[int, int]:
    """Pair new boxes with existing ones, one-to-one, best overlaps first.

    Args:
        new: boxes one finder just found.
        existing: boxes of the faces the image already has that this finder has not embedded yet.
        threshold: the smallest IoU that counts (see :func:`same_face`).
    Returns:
        ``{index in new: index in existing}`` for every matched pair; unmatched new boxes are new faces.
    """
    pairs = []
    for i, a in enumerate(new):
        for j, b in enumerate(existing):
            if same_face(a, b, threshold):
                pairs.append((iou(a, b), i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    result: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in pairs:
        if i in result or j in used:
            continue
        result[i] = j
        used.add(j)
    return result
