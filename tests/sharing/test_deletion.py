"""Deleting an image, an owner's faces and names, everybody's: nothing left behind, nobody else touched."""

import json

import pytest
from sqlalchemy import func, select

from faces import events
from faces.sharing import deletion, notifications
from faces.sharing.errors import NotFound
from faces.store.models import (
    ChangeLogEntry, Embedding, Face, FaceState, Image, ImageFinder, Name, Notification, RejectedName, Run, UndoEntry,
)

from .conftest import connect, make_face, make_image, make_name, make_user


def count(s, model, *where):
    return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def libraries(store):
    with store.session() as s:
        ann, bob = make_user(s, "ann"), make_user(s, "bob")
        connect(s, ann, bob)
        carl, dora = make_name(s, ann, "Carl"), make_name(s, ann, "Dora")
        bob_name = make_name(s, ann, "Bob", bob)
        one, two = make_image(s, ann), make_image(s, ann)
        carl_only_here = make_face(s, one, name=carl)
        make_face(s, one, guess=dora, x=200)
        make_face(s, one, name=bob_name, x=400)
        make_face(s, two, name=dora)
        guessed_carl = make_face(s, two, guess=carl, x=200)
        s.add(RejectedName(face_id=carl_only_here.id, name_id=dora.id))
        s.add(Run(owner_id=ann.id, images=2, faces=5, seconds=1.0))
        s.add(UndoEntry(owner_id=ann.id, action="merge", payload={"names": ["Carl"]}))
        s.add(ChangeLogEntry(owner_id=ann.id, entity="name", entity_uuid=carl.uuid, op="upsert",
                             data={"name": "Carl"}))
        theirs = make_face(s, make_image(s, bob), name=make_name(s, bob, "Carl"))
        faces = s.scalars(select(Face).where(Face.image_id == one.id)).all()
        notifications.notify_tagged(s, ann.id, faces[2].id, bob.id, ann.id)
    return dict(ann=ann, bob=bob, one=one, two=two, carl=carl, dora=dora, guessed_carl=guessed_carl,
                theirs=theirs)


def _thumbnail_files(settings, faces, image):
    """Cached crops and photo thumbnails where faces.media keeps them (as a web request would have left them)."""
    from faces.media import face_thumbnail_cache_path, thumbnail_cache_path

    paths = [face_thumbnail_cache_path(settings.data_dir, f.id, tuple(f.box), 96) for f in faces]
    paths.append(thumbnail_cache_path(settings.data_dir, image.content_hash, "photo", 320))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jpeg")
    return paths


def test_delete_image_removes_its_faces_and_orphan_names(store, settings, libraries):
    L = libraries
    with store.session() as s:
        files = _thumbnail_files(settings, s.scalars(select(Face).where(Face.image_id == L["one"].id)).all(),
                                 L["one"])
        kept = _thumbnail_files(settings, [s.get(Face, L["guessed_carl"].id)], L["two"])
    deleted = []
    handler = lambda **p: deleted.append(p)  # noqa: E731
    events.subscribe(deletion.FACES_DELETED, handler)
    try:
        with store.session() as s:
            with pytest.raises(NotFound):
                deletion.delete_image(s, L["bob"].id, L["one"].id)
        with store.session() as s:
            report = deletion.delete_image(s, L["ann"].id, L["one"].id, settings)
    finally:
        events._subscribers[deletion.FACES_DELETED].remove(handler)
    assert (report.images, report.faces, report.names) == (1, 3, 2)  # Carl and Bob are used nowhere else
    with store.session() as s:
        assert s.get(Image, L["one"].id) is None
        assert count(s, Face, Face.image_id == L["one"].id) == 0
        assert count(s, ImageFinder, ImageFinder.image_id == L["one"].id) == 0
        assert count(s, RejectedName) == 0
        assert count(s, Notification) == 0  # bob's tag notification pointed at a deleted face
        names = set(s.scalars(select(Name.name).where(Name.owner_id == L["ann"].id)))
        assert names == {"Dora"}  # still used by a face of the other image
        face = s.get(Face, L["guessed_carl"].id)  # its guess named a deleted name
        assert face.state == FaceState.UNNAMED and face.guess_name_id is None
        assert count(s, Embedding) == count(s, Face) == 3  # ann's two left, and bob's
        assert s.get(Face, L["theirs"].id).name.name == "Carl"  # bob's own Carl is untouched
    assert deleted and deleted[0]["owner_id"] == L["ann"].id and deleted[0]["image_ids"] == [L["one"].id]
    assert len(deleted[0]["face_ids"]) == 3
    assert not any(p.exists() for p in files) and all(p.exists() for p in kept)


def test_delete_library_faces_leaves_nothing_of_the_owner(store, settings, libraries):
    L = libraries
    with store.session() as s:
        files = _thumbnail_files(settings, s.scalars(select(Face).where(Face.owner_id == L["ann"].id)).all(),
                                 L["one"])[:-1]
    changed = []
    handler = lambda **p: changed.append(p)  # noqa: E731
    events.subscribe("names_changed", handler)
    try:
        with store.session() as s:
            report = deletion.delete_library_faces(s, L["ann"].id, settings)
    finally:
        events._subscribers["names_changed"].remove(handler)
    assert (report.faces, report.names) == (5, 3)
    ann = L["ann"].id
    with store.session() as s:
        for model, where in ((Face, Face.owner_id == ann), (Name, Name.owner_id == ann), (Run, Run.owner_id == ann),
                             (UndoEntry, UndoEntry.owner_id == ann)):
            assert count(s, model, where) == 0, model
        # the change log keeps at most the one "library deleted" mark that clones need, without any name
        log = s.scalars(select(ChangeLogEntry).where(ChangeLogEntry.owner_id == ann)).all()
        assert all(e.entity == "library" and e.op == "delete" for e in log), [(e.entity, e.op) for e in log]
        assert "Carl" not in json.dumps([e.data for e in log]) and "Dora" not in json.dumps([e.data for e in log])
        assert count(s, ImageFinder, ImageFinder.image_id.in_([L["one"].id, L["two"].id])) == 0
        assert count(s, Image, Image.owner_id == ann) == 2  # the photos themselves stay
        assert count(s, RejectedName) == 0 and count(s, Notification) == 0
        assert count(s, Embedding) == 1 and s.get(Face, L["theirs"].id) is not None  # bob's library untouched
    assert changed == [{"owner_id": ann, "image_ids": sorted([L["one"].id, L["two"].id])}]
    assert files and not any(p.exists() for p in files)


def test_admin_deletes_everybody(store, libraries):
    with store.session() as s:
        report = deletion.delete_all_faces(s)
    assert (report.faces, report.names) == (6, 4)
    with store.session() as s:
        assert count(s, Face) == count(s, Name) == count(s, Embedding) == 0


def test_deleting_an_uploaded_image_removes_its_file_but_never_a_file_of_the_owner(store, settings, tmp_path):
    with store.session() as s:
        ann = make_user(s, "ann")
        uploaded, own = make_image(s, ann), make_image(s, ann)
        upload = settings.data_dir / "uploads" / str(ann.id) / "photo.jpg"
        mine = tmp_path / "my photos" / "photo.jpg"
        for path, image in ((upload, uploaded), (mine, own)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"jpeg")
            image.path = str(path)
    with store.session() as s:
        deletion.delete_image(s, ann.id, uploaded.id, settings)
        deletion.delete_image(s, ann.id, own.id, settings)
    assert not upload.exists()
    assert mine.exists()


def test_no_deletion_while_detection_runs(store, libraries):
    from datetime import datetime, timedelta, timezone

    from faces.sharing.errors import InvalidRequest
    from faces.store.models import RunLock

    with store.session() as s:
        s.add(RunLock(owner_id=libraries["ann"].id, holder="host:1:x"))
    with store.session() as s:
        with pytest.raises(InvalidRequest, match="detection is running"):
            deletion.delete_library_faces(s, libraries["ann"].id)
        with pytest.raises(InvalidRequest, match="detection is running"):
            deletion.delete_all_faces(s)
        assert deletion.delete_library_faces(s, libraries["bob"].id).faces == 1  # another library is free
    with store.session() as s:  # a lock whose holder died long ago does not block
        s.get(RunLock, libraries["ann"].id).heartbeat_at = datetime.now(timezone.utc) - timedelta(hours=1)
    with store.session() as s:
        assert deletion.delete_library_faces(s, libraries["ann"].id).faces == 5
