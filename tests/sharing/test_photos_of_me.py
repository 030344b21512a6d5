"""Photos of me across libraries, and removing oneself for good."""

import pytest

from faces import events
from faces.sharing import photos_of_me
from faces.sharing.errors import NotFound
from faces.store.models import Face, FaceState, Visibility

from .conftest import connect, make_face, make_image, make_name, make_user


def test_tagged_faces_across_libraries_and_removal(store):
    seen = []
    handler = lambda **payload: seen.append(payload)  # noqa: E731
    events.subscribe("names_changed", handler)
    try:
        with store.session() as s:
            ann, bob, me, eve = (make_user(s, n) for n in ("ann", "bob", "me", "eve"))
            connect(s, ann, me)
            connect(s, bob, me)
            visible = make_face(s, make_image(s, ann, Visibility.CONTACTS), name=make_name(s, ann, "Me", me))
            hidden = make_face(s, make_image(s, bob, Visibility.PRIVATE), name=make_name(s, bob, "Me!", me))
            other = make_face(s, make_image(s, ann), name=make_name(s, ann, "Eve", eve))
            guessed = make_face(s, make_image(s, ann), guess=s.get(Face, visible.id).name)
        with store.session() as s:
            items = {t.face_id: t for t in photos_of_me.tagged_faces(s, me.id)}
            assert set(items) == {visible.id, hidden.id}  # not eve's face, not a mere guess
            assert items[visible.id].may_view_image and items[visible.id].box == [10, 20, 100, 120]
            assert items[visible.id].owner_name == "Ann"
            assert not items[hidden.id].may_view_image
            assert items[hidden.id].image_id is None and items[hidden.id].box is None
            for face_id in (other.id, guessed.id, 999999):
                with pytest.raises(NotFound):
                    photos_of_me.remove_me(s, me.id, face_id)
            with pytest.raises(NotFound):
                photos_of_me.remove_me(s, eve.id, visible.id)  # only the tagged person removes
        with store.session() as s:
            photos_of_me.remove_me(s, me.id, hidden.id)  # works without seeing the image
        with store.session() as s:
            face = s.get(Face, hidden.id)
            assert face.state == FaceState.REMOVED and face.name_id is None and face.decided_by == me.id
            assert [t.face_id for t in photos_of_me.tagged_faces(s, me.id)] == [visible.id]
            with pytest.raises(NotFound):
                photos_of_me.remove_me(s, me.id, hidden.id)
        assert {"owner_id": bob.id, "image_ids": [face.image_id]} in seen
    finally:
        events._subscribers["names_changed"].remove(handler)
