"""Helpers for detection tests: labelled boxes of ../shared/data and box overlap."""

from __future__ import annotations

import csv
from pathlib import Path

from faces.jobs.matching import iou  # noqa: F401 - re-exported for the detection tests


def labelled_boxes(data_root: Path) -> dict[Path, list[tuple[int, int, int, int]]]:
    """The hand-labelled face boxes of ``dlib_faces_gt/dev`` (file -> list of ``(x, y, w, h)``)."""
    folder = data_root / "dlib_faces_gt" / "dev"
    result: dict[Path, list[tuple[int, int, int, int]]] = {}
    with (folder / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            path = folder / row[_first(row, "file", "image", "filename", "path")]
            box = tuple(int(float(row[k])) for k in ("x", "y", "w", "h"))
            result.setdefault(path, []).append(box)
    return result


def matched_labels(found, labels, threshold: float = 0.3) -> int:
    """How many labelled boxes are matched one-to-one by a found box with IoU >= ``threshold``."""
    used: set[int] = set()
    count = 0
    for label in labels:
        best, best_iou = None, threshold
        for i, box in enumerate(found):
            if i in used:
                continue
            overlap = iou(box, label)
            if overlap >= best_iou:
                best, best_iou = i, overlap
        if best is not None:
            used.add(best)
            count += 1
    return count


def _first(row: dict, *names: str) -> str:
    for name in names:
        if name in row:
            return name
    raise KeyError(f"none of {names} in {list(row)}")
