"""Both finders together, through the pipeline into a store (every backend): one scan with dlib and opencv finds
at least as many labelled faces as the better one alone, frames each face once, and gives the faces both saw two
embeddings; enabling the second finder later gives the same.

The single-finder results come from calling each finder directly on the same photos (once per session).
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from faces.config import load_settings
from faces.finders.registry import create_finder
from faces.jobs.matching import same_face
from faces.jobs.pipeline import add_images, pending_work, run_detection
from faces.media import load_image
from faces.store.models import Face, FinderStatus, Image, ImageFinder
from faces.store.users import get_or_create_user
from tests.finders.helpers import iou, labelled_boxes, matched_labels

FINDERS = ["dlib", "opencv"]
EXTRA = ["dlib_faces_gt/dev/dogs.jpg"]


@pytest.fixture(scope="session")
def photos(data_root) -> list[str]:
    """The four labelled group photos of dlib_faces_gt/dev (18 faces), and dogs (no human face)."""
    return sorted(str(p.relative_to(data_root)) for p in labelled_boxes(data_root)) + EXTRA


@pytest.fixture(scope="session")
def alone(tmp_path_factory, data_root, photos) -> dict[str, dict[str, list[tuple[int, int, int, int]]]]:
    """``alone[finder][photo]``: the boxes each finder finds on its own, called directly."""
    settings = load_settings(tmp_path_factory.mktemp("combined"), environ={})
    result = {}
    for name in FINDERS:
        finder = create_finder(name, settings)
        result[name] = {p: [f.box for f in finder.detect(load_image(data_root / p, finder.max_side))] for p in photos}
    return result


@pytest.fixture
def owner_id(store) -> int:
    with store.session() as session:
        return get_or_create_user(session, "alice").id


def _library(store, owner_id, data_root) -> dict[str, list[tuple[tuple[int, int, int, int], dict[str, bytes]]]]:
    """``{photo: [(box, {finder: vector}), ...]}`` of what the store holds for ``owner_id``."""
    result: dict[str, list] = {}
    with store.session() as session:
        images = session.scalars(select(Image).where(Image.owner_id == owner_id))
        paths = {image.id: str(data_root.joinpath(image.path).relative_to(data_root)) for image in images}
        for path in paths.values():
            result[path] = []
        faces = session.scalars(select(Face).where(Face.owner_id == owner_id).options(selectinload(Face.embeddings)))
        for face in faces:
            result[paths[face.image_id]].append(
                ((face.x, face.y, face.w, face.h), {e.finder: bytes(e.vector) for e in face.embeddings}))
    return result


def _statuses(store, owner_id) -> dict[tuple[int, str], FinderStatus]:
    with store.session() as session:
        rows = session.execute(select(ImageFinder.image_id, ImageFinder.finder, ImageFinder.status)
                               .join(Image, Image.id == ImageFinder.image_id).where(Image.owner_id == owner_id))
        return {(image_id, finder): status for image_id, finder, status in rows}


def _check_library(library, alone, data_root) -> None:
    labels = {str(p.relative_to(data_root)): boxes for p, boxes in labelled_boxes(data_root).items()}

    def labelled_found(found: dict[str, list]) -> int:
        return sum(matched_labels(found.get(p, []), boxes) for p, boxes in labels.items())

    combined = labelled_found({p: [box for box, _ in faces] for p, faces in library.items()})
    best_alone = max(labelled_found(alone[name]) for name in FINDERS)
    assert combined >= best_alone, f"{combined} labelled faces found together, {best_alone} by the better finder alone"

    seen_by_both = 0
    for photo, faces in library.items():
        boxes = [box for box, _ in faces]
        duplicates = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if iou(a, b) > 0.5]
        assert not duplicates, f"{photo}: the same face framed twice {duplicates}"
        for name in FINDERS:  # every face a finder found is stored once, with that finder's embedding
            vectors = [vectors[name] for _, vectors in faces if name in vectors]
            assert len(vectors) == len(alone[name][photo]), (photo, name)
            assert all(np.frombuffer(v, np.float32).shape == (128,) for v in vectors)
        for box, vectors in faces:  # a face both finders framed carries both embeddings
            seen_by = {name for name in FINDERS if any(same_face(box, b) for b in alone[name][photo])}
            if seen_by == set(FINDERS):
                assert set(vectors) == set(FINDERS), (photo, box, sorted(vectors))
                seen_by_both += 1
    assert seen_by_both >= 18, "the labelled faces are seen by both finders"
    assert library["dlib_faces_gt/dev/dogs.jpg"] == []


def test_one_scan_with_both_finders(store, settings, owner_id, data_root, photos, alone):
    added = add_images(store, settings, owner_id, [data_root / p for p in photos], finders=FINDERS)
    assert len(added.added) == len(photos) and not added.errors
    summary = run_detection(store, settings, owner_id, finders=FINDERS, workers=2)
    assert summary.images == len(photos) and summary.errors == 0

    library = _library(store, owner_id, data_root)
    _check_library(library, alone, data_root)
    statuses = _statuses(store, owner_id)
    assert len(statuses) == len(photos) * len(FINDERS)
    with store.session() as session:
        dogs = session.scalar(select(Image.id).where(Image.path.like("%dogs.jpg")))
    assert {s for (image, _), s in statuses.items() if image == dogs} == {FinderStatus.NO_FACE}
    assert {s for (image, _), s in statuses.items() if image != dogs} == {FinderStatus.DONE}


def test_enabling_the_second_finder_later(store, settings, owner_id, data_root, photos, alone):
    add_images(store, settings, owner_id, [data_root / p for p in photos], finders=["dlib"])
    run_detection(store, settings, owner_id, finders=["dlib"], workers=1)
    first = _library(store, owner_id, data_root)
    assert all(set(vectors) == {"dlib"} for faces in first.values() for _, vectors in faces)

    # opencv enabled afterwards: it alone has work left, on every image
    work = pending_work(store, owner_id, FINDERS)
    assert len(work) == len(photos) and all(todo == ["opencv"] for _, _, todo in work)
    run_detection(store, settings, owner_id, finders=FINDERS, workers=1)
    assert pending_work(store, owner_id, FINDERS) == []

    library = _library(store, owner_id, data_root)
    _check_library(library, alone, data_root)
    for photo, faces in first.items():  # dlib's faces and embeddings are kept as they were
        kept = {box: vectors["dlib"] for box, vectors in library[photo] if "dlib" in vectors}
        assert kept == {box: vectors["dlib"] for box, vectors in faces}
