"""Helpers for detection tests: labelled boxes of ../shared/data and box overlap."""

from __future__ import annotations

import csv
from collections import defaultdict
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


def identity_sample(data_root: Path, per_person: int = 3, people_per_folder: int = 4) -> dict[str, list[str]]:
    """A few photos (``per_person``) of a few people from each source folder of identities.csv: name -> paths."""
    by_folder: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with (data_root / "identities.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_folder[row["source_folder"]][row["identity"]].append(row["path_from_data_root"])
    sample = {}
    for people in by_folder.values():
        chosen = [name for name in sorted(people) if len(people[name]) >= 2][:people_per_folder]
        for name in chosen:
            sample[name] = sorted(people[name])[:per_person]
    return sample
