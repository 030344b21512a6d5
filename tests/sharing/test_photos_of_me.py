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


def test_with_the_real_naming_actions_removal_is_final(store, settings):
    """Naming a face after a contact notifies them; once they removed themselves, no naming action works on
    that face any more and guessing leaves it alone."""
    from faces.naming import actions
    from faces.naming.refresh import refresh_guesses
    from faces.sharing import notifications

    with store.session() as s:
        owner, bob = make_user(s, "owner"), make_user(s, "bob")
        connect(s, owner, bob)
        image = make_image(s, owner)
        face = make_face(s, image)
        other = make_face(s, make_image(s, owner), x=300)
        # the same embedding on both faces: were the removed face a candidate, it would be guessed as bob
        [vector] = [e.vector for e in s.get(Face, other.id).embeddings]
        s.get(Face, face.id).embeddings[0].vector = vector
        control = make_face(s, make_image(s, owner), x=500)  # an ordinary unnamed look-alike
        s.get(Face, control.id).embeddings[0].vector = vector
    with store.session() as s:
        actions.set_name(s, settings, owner.id, owner.id, face.id, contact_user_id=bob.id)
    with store.session() as s:
        assert notifications.unread_count(s, bob.id) == 1
        assert [t.face_id for t in photos_of_me.tagged_faces(s, bob.id)] == [face.id]
        photos_of_me.remove_me(s, bob.id, face.id)
    with store.session() as s:
        assert notifications.unread_count(s, bob.id) == 0  # the notification about it went with it
        attempts = [
            lambda: actions.set_name(s, settings, owner.id, owner.id, face.id, "Bob"),
            lambda: actions.set_name(s, settings, owner.id, owner.id, face.id, contact_user_id=bob.id),
            lambda: actions.reset(s, settings, owner.id, owner.id, face.id),
            lambda: actions.mark_unknown(s, settings, owner.id, owner.id, face.id),
            lambda: actions.set_names(s, settings, owner.id, owner.id, [(face.id, "Bob")]),
        ]
        for attempt in attempts:
            with pytest.raises(actions.FaceRemovedError):
                attempt()
    with store.session() as s:  # name the look-alike face after bob; guessing must not touch the removed one
        actions.set_name(s, settings, owner.id, owner.id, other.id, "Bob")
        refresh_guesses(s, settings, owner.id, None)
    with store.session() as s:
        removed = s.get(Face, face.id)
        assert removed.state == FaceState.REMOVED and removed.name_id is None and removed.guess_name_id is None
        assert s.get(Face, control.id).state == FaceState.GUESSED  # the same look-alike, not removed, is guessed
