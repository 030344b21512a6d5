"""The pipeline's store side on every backend: adding files, and writing one image's results atomically
(matching a second finder's boxes, never writing a finder twice, recording crashes and decode errors)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sqlalchemy import func, select

from faces.jobs.detect import DetectResult, FinderOutcome, FoundFace
from faces.jobs.pipeline import RunSummary, _failed_result, _write_result, add_images, pending_work
from faces.store.models import Embedding, Face, FinderStatus, Image, ImageFinder
from faces.store.users import get_or_create_user


@pytest.fixture
def owner_id(store) -> int:
    with store.session() as session:
        return get_or_create_user(session, "alice").id


@pytest.fixture
def image_id(store, settings, owner_id, data_root) -> int:
    added = add_images(store, settings, owner_id, [data_root / "dlib_faces_gt" / "dev" / "2008_001322.jpg"],
                       finders=["dlib", "opencv"])
    return added.added[0]


def found(box, seed=0) -> FoundFace:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return FoundFace(box=box, score=0.9, landmarks=[[1.0, 2.0]] * 5, vector=vector.tobytes())


def faces_of(store, image_id):
    with store.session() as session:
        rows = session.scalars(select(Face).where(Face.image_id == image_id).order_by(Face.id)).all()
        return [(f.box, sorted(e.finder for e in f.embeddings)) for f in rows]


def test_add_images_dedupes_and_marks_finders_pending(store, settings, owner_id, tmp_path, data_root):
    source = data_root / "dlib_faces_gt" / "dev" / "2008_001322.jpg"
    shutil.copyfile(source, tmp_path / "same.jpg")
    (tmp_path / "notes.jpg").write_text("not a photo")
    result = add_images(store, settings, owner_id, [source, tmp_path], finders=["dlib", "opencv"])
    assert len(result.added) == 2 and result.duplicates == 1
    assert [(e.path.endswith("notes.jpg"), e.code) for e in result.errors] == [(True, "not_an_image")]
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 2
        statuses = session.execute(select(ImageFinder.finder, ImageFinder.status)).all()
    assert sorted(statuses) == [("dlib", FinderStatus.PENDING), ("opencv", FinderStatus.PENDING)]
    # the unreadable file is recorded but never sent to a finder
    assert [w[2] for w in pending_work(store, owner_id, ["dlib", "opencv"])] == [["dlib", "opencv"]]
    with pytest.raises(FileNotFoundError):
        add_images(store, settings, owner_id, [tmp_path / "missing"], finders=["dlib"])


def test_two_finders_one_face_two_embeddings(store, owner_id, image_id):
    summary = RunSummary()
    dlib = DetectResult(image_id=image_id, finders={"dlib": FinderOutcome(
        status="done", faces=[found((100, 100, 80, 80)), found((300, 100, 60, 60))], model_version="d1")})
    _write_result(store, owner_id, dlib, ["dlib", "opencv"], "x.jpg", summary)
    opencv = DetectResult(image_id=image_id, finders={"opencv": FinderOutcome(
        status="done", faces=[found((95, 85, 72, 104)), found((10, 300, 50, 60))], model_version="o1")})
    _write_result(store, owner_id, opencv, ["dlib", "opencv"], "x.jpg", summary)
    assert faces_of(store, image_id) == [([100, 100, 80, 80], ["dlib", "opencv"]),  # box of the first finder kept
                                         ([300, 100, 60, 60], ["dlib"]),
                                         ([10, 300, 50, 60], ["opencv"])]
    assert (summary.images, summary.faces, summary.embeddings) == (2, 3, 4)
    # a result for a finder already done (e.g. from a run that lost its lock) is never written twice
    _write_result(store, owner_id, opencv, ["dlib", "opencv"], "x.jpg", summary)
    assert len(faces_of(store, image_id)) == 3
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Embedding)) == 4


def test_crash_and_decode_errors_are_recorded_on_the_image(store, owner_id, image_id):
    summary = RunSummary()
    _write_result(store, owner_id, _failed_result(image_id, ["dlib"], "the worker process stopped (signal SIGSEGV)"),
                  ["dlib", "opencv"], "x.jpg", summary)
    with store.session() as session:
        rows = {r.finder: r for r in session.scalars(select(ImageFinder))}
    assert rows["dlib"].status == FinderStatus.ERROR and "SIGSEGV" in rows["dlib"].error
    assert rows["opencv"].status == FinderStatus.PENDING  # still to do
    broken = DetectResult(image_id=image_id, media_code="truncated", media_error="the file is cut short")
    _write_result(store, owner_id, broken, ["dlib", "opencv"], "x.jpg", summary)
    with store.session() as session:
        image = session.get(Image, image_id)
        assert (image.error_code, image.error) == ("truncated", "the file is cut short")
        assert session.get(ImageFinder, (image_id, "opencv")).status == FinderStatus.ERROR
    assert summary.errors == 2 and pending_work(store, owner_id, ["dlib", "opencv"]) == []


def test_a_file_repaired_at_the_same_path_takes_over_its_error_row(store, settings, owner_id, tmp_path, data_root):
    good = (data_root / "dlib_faces_gt" / "dev" / "2008_001322.jpg").read_bytes()
    path = tmp_path / "photo.jpg"
    path.write_bytes(good[: len(good) // 2])
    first = add_images(store, settings, owner_id, [path], finders=["dlib"])
    assert [e.code for e in first.errors] == ["truncated"]
    path.write_bytes(good)
    second = add_images(store, settings, owner_id, [path], finders=["dlib"])
    assert second.added == first.added and not second.errors
    with store.session() as session:
        image = session.get(Image, first.added[0])
        assert image.error_code is None and (image.width, image.height) == (500, 375)
    assert pending_work(store, owner_id, ["dlib"]) == [(first.added[0], str(path), ["dlib"])]
