"""Store-level portability: the change log writes itself, export/import round trips, hostile files refused.
Runs on every backend in FACES_TEST_DATABASES."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from sqlalchemy import func, select

from faces.naming import actions
from faces.naming.refresh import refresh_guesses
from faces.portability import exchange
from faces.portability.apply import attach_pending
from faces.sharing import deletion
from faces.store.db import Store
from faces.store.models import (
    ChangeLogEntry, Face, FaceState, FinderStatus, Image, ImageFinder, Name, PendingImport, Permission,
)
from tests.naming.helpers import PEOPLE, add_face, add_image, add_user, person_faces
from tests.recognition.synthetic import photos_of


def _log(session, owner_id):
    return [(e.entity, e.entity_uuid, e.op, e.data) for e in session.scalars(
        select(ChangeLogEntry).where(ChangeLogEntry.owner_id == owner_id).order_by(ChangeLogEntry.seq))]


def _library(store, settings):
    """alice: three photos of person 0 (two confirmed 'Ann'), one of person 1 ignored, a no-face mark."""
    with store.session() as s:
        alice = add_user(s, "alice")
        faces = person_faces(s, alice, 0, 3, "ann")
        other = person_faces(s, alice, 1, 1, "bob")
        empty = add_image(s, alice, "empty")
        s.add(ImageFinder(image_id=empty.id, finder="dlib", status=FinderStatus.NO_FACE, model_version="m"))
        for f in faces + other:
            s.add(ImageFinder(image_id=f.image_id, finder="dlib", status=FinderStatus.DONE, model_version="m"))
        s.add(Permission(owner_id=alice.id, kind="view", subject_type="contacts", subject_id=0, allow=False))
        ids = [f.id for f in faces], other[0].id, alice.id
    with store.session() as s:
        actions.set_name(s, settings, ids[2], ids[2], ids[0][0], "Ann")
        actions.set_name(s, settings, ids[2], ids[2], ids[0][1], "Ann")
        actions.ignore(s, settings, ids[2], ids[2], ids[1])
    return ids


def test_change_log_writes_itself(store, settings):
    (a1, a2, a3), b1, owner = _library(store, settings)
    with store.session() as s:
        log = _log(s, owner)
        by = {(e, k): (op, d) for e, k, op, d in log}
        ann = s.scalar(select(Name).where(Name.name == "Ann"))
        face = s.get(Face, a1)
        assert by[("name", ann.uuid)][1]["name"] == "Ann"
        record = by[("face", face.uuid)][1]
        assert record["state"] == "confirmed" and record["name"] == ann.uuid and record["name_text"] == "Ann"
        assert set(record["embeddings"]) == {"dlib"}
        assert by[("face", s.get(Face, b1).uuid)][1]["state"] == "ignored"
        assert any(e == "image_mark" and d["status"] == "no_face" for e, _, _, d in log)
        assert any(e == "permission" and d["allow"] is False for e, _, _, d in log)
        # the third face is guessed 'Ann': a guess is not a decision, it travels as unnamed
        third = s.get(Face, a3)
        assert third.state == FaceState.GUESSED
        assert by[("face", third.uuid)][1]["state"] == "unnamed"
        before = s.scalar(select(func.count()).select_from(ChangeLogEntry))
    with store.session() as s:
        refresh_guesses(s, settings, owner, None)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ChangeLogEntry)) == before  # guesses write nothing
        image_id = s.get(Face, b1).image_id
        gone = s.get(Face, b1).uuid
    with store.session() as s:
        deletion.delete_image(s, owner, image_id, settings)
    with store.session() as s:
        assert ("face", gone, "delete", None) in _log(s, owner)
    with store.session() as s:
        deletion.delete_library_faces(s, owner, settings)
    with store.session() as s:
        log = _log(s, owner)
        assert [(e, op) for e, _, op, _ in log] == [("library", "delete")]  # one entry, not a flood
        assert s.scalar(select(func.max(ChangeLogEntry.seq))) > 0


def test_log_sequence_never_goes_back(store, settings):
    (_a1, _a2, _a3), _b1, owner = _library(store, settings)
    with store.session() as s:
        top = s.scalar(select(func.max(ChangeLogEntry.seq)))
    with store.session() as s:
        deletion.delete_library_faces(s, owner, settings)
    with store.session() as s:
        assert s.scalar(select(func.max(ChangeLogEntry.seq))) > top


def _doc(store, owner):
    with store.session() as s:
        doc = exchange.export_library(s, owner, "a" * 32)
    doc.pop("exported_at")
    return doc


def test_export_import_round_trip(store, settings):
    _faces, _b1, owner = _library(store, settings)
    before = _doc(store, owner)
    assert len(before["faces"]) == 4 and len(before["names"]) == 1 and len(before["marks"]) == 5
    buf = io.BytesIO()
    exchange.write_export(before, buf)
    with store.session() as s:
        deletion.delete_library_faces(s, owner, settings)
    assert _doc(store, owner)["faces"] == {}
    document = exchange.read_export(buf.getvalue())
    with store.session() as s:
        result = exchange.import_library(s, settings, owner, document)
    assert result.applied.faces == 4 and not result.unchanged
    assert _doc(store, owner) == before
    with store.session() as s:
        face = s.scalar(select(Face).where(Face.uuid == next(
            u for u, f in before["faces"].items() if f["state"] == "confirmed")))
        assert face.state == FaceState.CONFIRMED and face.name.name == "Ann"
        count = s.scalar(select(func.count()).select_from(ChangeLogEntry))
    with store.session() as s:  # import twice: no change at all
        again = exchange.import_library(s, settings, owner, document)
    assert again.unchanged
    assert _doc(store, owner) == before
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ChangeLogEntry)) == count


def test_import_keeps_newer_local_decision(store, settings):
    (a1, _a2, _a3), _b1, owner = _library(store, settings)
    document = exchange.validate_document(_doc(store, owner))
    with store.session() as s:
        actions.set_name(s, settings, owner, owner, a1, "Annie")  # decided after the export
    with store.session() as s:
        exchange.import_library(s, settings, owner, document)
    with store.session() as s:
        assert s.get(Face, a1).name.name == "Annie"


def test_import_parks_faces_of_missing_images(store, settings, tmp_path):
    (_a1, _a2, _a3), _b1, owner = _library(store, settings)
    document = exchange.validate_document(_doc(store, owner))
    with store.session() as s:
        bea = add_user(s, "bea")
        bea_id = bea.id
        # bea has one of alice's photos already: its face attaches at once
        known = sorted(document["images"])[0]
        s.add(Image(owner_id=bea_id, content_hash=known, path="/p/known.jpg", width=640, height=480))
    # uuids are unique per server: importing another owner's faces here would clash, so bea imports a copy
    # with fresh uuids, as a file from another server would have
    import uuid as _uuid

    fresh = {_uuid.uuid4().hex: f for f in document["faces"].values()}
    names = {_uuid.uuid4().hex: n for n in document["names"].values()}
    for f in fresh.values():
        f["name"] = None if f["name"] is None else next(iter(names))
        f["rejected"] = []
    copy = dict(document, faces=fresh, names=names, permissions={})
    with store.session() as s:
        result = exchange.import_library(s, settings, bea_id, copy)
    assert result.images_known == 1 and result.images_missing == 4
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingImport).where(PendingImport.owner_id == bea_id)) == 4
        assert s.scalar(select(func.count()).select_from(Face).where(Face.owner_id == bea_id)) == 1
        missing = [h for h in document["images"] if h != known]
        new = [Image(owner_id=bea_id, content_hash=h, path=f"/p/{h}.jpg", width=640, height=480) for h in missing]
        s.add_all(new)
        s.flush()
        attach_pending(s, settings, bea_id, [i.id for i in new])
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingImport).where(PendingImport.owner_id == bea_id)) == 0
        assert s.scalar(select(func.count()).select_from(Face).where(Face.owner_id == bea_id)) == 4
        states = sorted(s.scalars(select(Face.state).where(Face.owner_id == bea_id)))
        assert states.count(FaceState.CONFIRMED) == 2 and FaceState.IGNORED in states
        marks = s.scalars(select(ImageFinder.status).join(Image).where(Image.owner_id == bea_id)).all()
        assert sorted(m.value for m in marks) == ["done", "done", "done", "done", "no_face"]


def test_two_detections_of_one_image_end_as_one_face(store, settings):
    with store.session() as s:
        alice = add_user(s, "alice")
        image = add_image(s, alice, "x")
        mine = add_face(s, image, photos_of(PEOPLE[0], 1, 0.1, seed=1)[0], finder="opencv", x=12)
        owner, mine_uuid = alice.id, mine.uuid
    theirs_uuid = "0" * 32  # smaller than any random uuid: both servers keep it
    record = {"image": f"hash-{owner}-x", "box": [10, 10, 50, 50], "score": 0.9, "landmarks": None,
              "source": "detected", "state": "unnamed", "name": None, "name_text": None, "rejected": [],
              "decided_at": None, "embeddings": {"dlib": {"model_version": "d", "score": 0.9,
                                                          "vector": "AACAPwAAgD8="}}}
    doc = exchange.validate_document({"format": "faces-export", "version": 1, "images": [], "names": {},
                                      "faces": {theirs_uuid: record}, "marks": [], "permissions": {}})
    with store.session() as s:
        exchange.import_library(s, settings, owner, doc)
    with store.session() as s:
        faces = s.scalars(select(Face).where(Face.owner_id == owner)).all()
        assert len(faces) == 1 and faces[0].uuid == theirs_uuid
        assert sorted(e.finder for e in faces[0].embeddings) == ["dlib", "opencv"]
        log = _log(s, owner)
        assert ("face", mine_uuid, "delete", None) in log  # the other uuid is retired everywhere


def _gz(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode())


GOOD = {"format": "faces-export", "version": 1, "images": [], "names": {}, "faces": {}, "marks": [],
        "permissions": {}}


@pytest.mark.parametrize("data, message", [
    (b"not gzip at all", "not gzip"),
    (gzip.compress(b"{broken"), "not valid JSON"),
    (b"\x1f\x8b" + b"\x00" * 40, "cannot be decompressed"),
    (_gz({"format": "something else"}), "not a faces export file"),
    (_gz(dict(GOOD, version=2)), "version 2"),
    (_gz(dict(GOOD, faces={"../../etc": {}})), "is not a uuid"),
    (_gz(dict(GOOD, names={"a" * 32: {"name": "x\u0000y"}})), "control characters"),
    (_gz(dict(GOOD, faces={"b" * 32: {"image": "h" * 64, "box": [0, 0, -5, 5], "state": "unnamed"}})),
     "positive width"),
    (_gz(dict(GOOD, faces={"b" * 32: {"image": "h" * 64, "box": [0, 0, 5, 5], "state": "guessed"}})), "state"),
    (_gz(dict(GOOD, faces={"b" * 32: {"image": "h" * 64, "box": [0, 0, 5, 5], "state": "unnamed",
                                      "embeddings": {"dlib": {"vector": "%%%"}}}})), "base64"),
    (_gz(dict(GOOD, faces={"b" * 32: {"image": "h" * 64, "box": [0, 0, 5, 5], "state": "unnamed",
                                      "evil": 1}})), "evil"),
    (_gz(dict(GOOD, marks=[{"image": "h" * 64, "finder": "dlib", "status": "done", "error": "e" * 5000}])),
     "marks[0].error"),
])
def test_hostile_files_are_refused(store, settings, data, message):
    with pytest.raises(exchange.ImportRefused, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace(".", r"\.")):
        exchange.read_export(data)


def test_refused_import_changes_nothing(store, settings):
    (_a1, _a2, _a3), _b1, owner = _library(store, settings)
    before = _doc(store, owner)
    doc = exchange.validate_document(before)
    bad = dict(doc, faces=dict(doc["faces"]))
    # a record that only fails when applied (its name clashes with nothing, but its image hash row is locked
    # by a unique constraint): simulate a failure in the middle of the transaction
    with pytest.raises(RuntimeError):
        with store.session() as s:
            exchange.import_library(s, settings, owner, bad)
            s.execute(select(Face)).all()
            raise RuntimeError("stop half way")
    assert _doc(store, owner) == before


def test_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(exchange, "MAX_JSON_BYTES", 1000)
    with pytest.raises(exchange.ImportRefused, match="unpacks to more"):
        exchange.read_export(gzip.compress(b" " * 5000))
