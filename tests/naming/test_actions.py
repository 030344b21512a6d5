"""The naming actions on a real database (every backend in FACES_TEST_DATABASES), with synthetic embeddings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from faces import events
from faces.naming import actions
from faces.naming.refresh import refresh_guesses
from faces.store.models import Face, FaceState, Name, RejectedName
from tests.naming.helpers import PEOPLE, add_face, add_image, add_user, person_faces, snapshot
from tests.recognition.synthetic import photos_of


@pytest.fixture
def lib(store, settings):
    """Alice's library: person 0 in 5 photos, person 1 in 4, a stranger (person 9) in 1; Bob has one face."""
    with store.session() as s:
        alice, bob = add_user(s, "alice"), add_user(s, "bob")
        ann = [f.id for f in person_faces(s, alice, 0, 5, "ann")]
        ben = [f.id for f in person_faces(s, alice, 1, 4, "ben")]
        stranger = person_faces(s, alice, 9, 1, "stranger")[0].id
        bobs = person_faces(s, bob, 0, 1, "bob")[0].id
        refresh_guesses(s, settings, alice.id)
    return type("Lib", (), dict(store=store, settings=settings, owner=alice.id, other=bob.id, ann=ann, ben=ben,
                                stranger=stranger, bobs=bobs))


def act(lib, action, *args, **kwargs):
    with lib.store.session() as s:
        return action(s, lib.settings, lib.owner, lib.owner, *args, **kwargs)


def state(lib):
    with lib.store.session() as s:
        return snapshot(s, lib.owner)


def test_named_faces_make_guesses_for_the_same_person_only(lib):
    act(lib, actions.set_name, lib.ann[0], "Ann")
    act(lib, actions.set_name, lib.ann[1], "Ann")
    now = state(lib)
    assert now[lib.ann[0]] == (FaceState.CONFIRMED, "Ann", None, None)
    for fid in lib.ann[2:]:
        assert now[fid][0] == FaceState.GUESSED and now[fid][2] == "Ann"
    for fid in [*lib.ben, lib.stranger]:
        assert now[fid][0] == FaceState.UNNAMED and now[fid][2] is None
    with lib.store.session() as s:
        face = s.get(Face, lib.ann[2])
        assert face.guess_finders == "dlib" and 0 < face.guess_distance < 1
        assert face.guess_anchor_face_id in lib.ann[:2] and face.guessed_at is not None


def test_confirm_reject_unknown_ignore(lib):
    act(lib, actions.set_name, lib.ann[0], "Ann")
    act(lib, actions.confirm, lib.ann[1])
    assert state(lib)[lib.ann[1]][:2] == (FaceState.CONFIRMED, "Ann")
    act(lib, actions.reject, lib.ann[2])
    assert state(lib)[lib.ann[2]] [:3] == (FaceState.UNNAMED, None, None)
    act(lib, actions.mark_unknown, lib.ann[3])
    act(lib, actions.ignore, lib.ann[4])
    with lib.store.session() as s:  # a full recompute changes none of these decisions
        refresh_guesses(s, lib.settings, lib.owner)
    now = state(lib)
    assert now[lib.ann[2]][:3] == (FaceState.UNNAMED, None, None)
    assert now[lib.ann[3]][:3] == (FaceState.UNKNOWN, None, None)
    assert now[lib.ann[4]][:3] == (FaceState.IGNORED, None, None)
    with lib.store.session() as s:
        assert s.scalars(select(RejectedName.face_id)).all() == [lib.ann[2]]
    with pytest.raises(actions.NamingError, match="no guessed name"):
        act(lib, actions.confirm, lib.ann[2])
    with pytest.raises(actions.NamingError, match="no guessed name"):
        act(lib, actions.reject, lib.stranger)


def test_reset_restores_and_unused_names_disappear(lib):
    before = state(lib)
    act(lib, actions.set_name, lib.ben[0], "Ben")
    assert state(lib)[lib.ben[1]][2] == "Ben"
    act(lib, actions.reset, lib.ben[0])
    assert state(lib) == before
    with lib.store.session() as s:
        assert s.scalars(select(Name.name)).all() == []


def test_ids_of_another_library_are_refused(lib):
    with pytest.raises(actions.FaceNotFound, match=f"no face {lib.bobs}"):
        act(lib, actions.set_name, lib.bobs, "Bob")
    with pytest.raises(actions.FaceNotFound):
        act(lib, actions.set_name, 999_999, "Nobody")
    with lib.store.session() as s:
        actions.set_name(s, lib.settings, lib.other, lib.other, lib.bobs, "Bob")
        bob_name = s.scalar(select(Name.id).where(Name.name == "Bob"))
    with pytest.raises(actions.NameNotFound):
        act(lib, actions.set_name, lib.ann[0], name_id=bob_name)
    with pytest.raises(actions.NameNotFound):
        act(lib, actions.merge, "Ann", "Bob")
    with pytest.raises(actions.NamingError, match="at most 200"):
        act(lib, actions.set_name, lib.ann[0], "x" * 201)


def test_removed_faces_cannot_be_named(lib):
    with lib.store.session() as s:
        s.get(Face, lib.ann[0]).state = FaceState.REMOVED
    for action in (actions.set_name, actions.mark_unknown, actions.reset):
        with pytest.raises(actions.FaceRemovedError, match="removed themselves"):
            act(lib, action, lib.ann[0], *(["Ann"] if action is actions.set_name else []))
    act(lib, actions.set_name, lib.ann[1], "Ann")
    assert state(lib)[lib.ann[0]] == (FaceState.REMOVED, None, None, None)  # never guessed either


def test_one_person_once_per_photo_and_photo_names_excluded(lib):
    act(lib, actions.set_name, lib.ann[0], "Ann")
    with lib.store.session() as s:
        alice = lib.owner
        group = add_image(s, type("U", (), {"id": alice}), "group")
        two = photos_of(PEOPLE[0], 2, 0.3, seed=77)
        twins = [add_face(s, group, v, x=10 + 100 * i).id for i, v in enumerate(two)]
        refresh_guesses(s, lib.settings, alice, twins)
    now = state(lib)
    assert sorted(now[f][2] or "" for f in twins) == ["", "Ann"]
    # naming one of them Ann removes the guess from the other
    guessed = next(f for f in twins if now[f][2] == "Ann")
    other = next(f for f in twins if f != guessed)
    act(lib, actions.set_name, other, "Ann")
    assert state(lib)[guessed][:3] == (FaceState.UNNAMED, None, None)


def test_guess_withdrawn_when_its_anchor_changes(lib):
    act(lib, actions.set_name, lib.ann[0], "Ann")
    assert state(lib)[lib.ann[1]][2] == "Ann"
    act(lib, actions.set_name, lib.ann[0], "Someone else")
    now = state(lib)
    assert all(now[f][2] != "Ann" for f in lib.ann[1:])
    act(lib, actions.set_name, lib.ann[0], "")
    assert all(state(lib)[f][2] is None for f in lib.ann[1:])


def test_rename_merge_and_undo(lib):
    act(lib, actions.set_name, lib.ann[0], "Ann")
    act(lib, actions.set_name, lib.ann[1], "Annie")
    act(lib, actions.reject, lib.ann[2]) if state(lib)[lib.ann[2]][2] else None
    with pytest.raises(actions.NamingError, match="merge"):
        act(lib, actions.rename, "Annie", "Ann")
    act(lib, actions.rename, "Annie", "Anne")
    before = state(lib)
    with lib.store.session() as s:
        rejected_before = set(s.execute(select(RejectedName.face_id, RejectedName.name_id)).all())
        anne_uuid = s.scalar(select(Name.uuid).where(Name.name == "Anne"))
    act(lib, actions.merge, "Ann", "Anne")
    merged = state(lib)
    assert merged[lib.ann[1]][:2] == (FaceState.CONFIRMED, "Ann")
    assert all(v[1] != "Anne" and v[2] != "Anne" for v in merged.values())
    with lib.store.session() as s:
        assert s.scalar(select(Name).where(Name.name == "Anne")) is None
    with lib.store.session() as s:
        message = actions.undo(s, lib.settings, lib.owner, lib.owner)
    assert "Anne" in message
    after = state(lib)
    assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in before.items()}
    with lib.store.session() as s:
        assert s.scalar(select(Name.uuid).where(Name.name == "Anne")) == anne_uuid
        restored = set(s.execute(select(RejectedName.face_id, Name.name).join(
            Name, Name.id == RejectedName.name_id)).all())
        names = dict(s.execute(select(Name.id, Name.name)).all())
    assert restored == {(f, names.get(n)) for f, n in rejected_before}
    with pytest.raises(actions.NothingToUndo):
        act(lib, actions.undo)


def test_groups_can_be_named_and_undone(lib):
    now = state(lib)
    ben_groups = {now[f][3] for f in lib.ben}
    assert len(ben_groups) == 1 and None not in ben_groups
    assert now[lib.stranger][3] is None
    assert not ben_groups & {now[f][3] for f in lib.ann}
    group = ben_groups.pop()
    act(lib, actions.name_group, group, "Ben")
    assert all(state(lib)[f][:2] == (FaceState.CONFIRMED, "Ben") for f in lib.ben)
    act(lib, actions.undo)
    assert state(lib) == now
    act(lib, actions.split_group, [lib.ben[0]])
    split = state(lib)
    assert split[lib.ben[0]][3] not in (None, group) and split[lib.ben[1]][3] == group
    with pytest.raises(actions.NamingError, match="no group"):
        act(lib, actions.name_group, 12345, "X")


def test_events_after_commit(lib, store):
    seen = []

    def on_names(**kw):
        seen.append(("names_changed", kw))

    def on_tag(**kw):
        seen.append(("face_tagged", kw))

    events.subscribe("names_changed", on_names)
    events.subscribe("face_tagged", on_tag)
    try:
        with pytest.raises(RuntimeError):
            with store.session() as s:
                actions.set_name(s, lib.settings, lib.owner, lib.owner, lib.ann[0], "Ann")
                raise RuntimeError("rolled back")
        assert seen == []
        act(lib, actions.set_name, lib.ann[0], contact_user_id=lib.other)
        with store.session() as s:
            image_id = s.get(Face, lib.ann[0]).image_id
            linked = s.scalar(select(Name).where(Name.contact_user_id == lib.other))
            assert linked.name == "Bob"
        assert ("names_changed", {"owner_id": lib.owner, "image_ids": [image_id]}) in seen
        assert ("face_tagged", {"owner_id": lib.owner, "face_id": lib.ann[0], "contact_user_id": lib.other,
                                "actor_id": lib.owner}) in seen
        seen.clear()
        act(lib, actions.reject, lib.ann[1])  # no confirmed name changed
        assert [kind for kind, _ in seen] == []
    finally:
        events._subscribers["names_changed"].remove(on_names)
        events._subscribers["face_tagged"].remove(on_tag)


def test_incremental_refresh_agrees_with_a_full_recompute(lib):
    steps = [(actions.set_name, lib.ann[0], "Ann"), (actions.set_name, lib.ben[0], "Ben"),
             (actions.reject, lib.ann[1]), (actions.set_name, lib.ann[2], "Ben"),
             (actions.mark_unknown, lib.ben[1]), (actions.reset, lib.ann[2]), (actions.set_name, lib.ann[0], "")]
    for action, face, *args in steps:
        if action is actions.reject and state(lib)[face][2] is None:
            continue
        act(lib, action, face, *args)
        incremental = {k: v[:3] for k, v in state(lib).items()}
        with lib.store.session() as s:
            refresh_guesses(s, lib.settings, lib.owner)
        assert {k: v[:3] for k, v in state(lib).items()} == incremental, action.__name__


def test_faces_loaded_in_the_session_see_the_new_guesses(lib):
    with lib.store.session() as s:
        loaded = s.get(Face, lib.ann[1])
        assert loaded.guess_name_id is None
        actions.set_name(s, lib.settings, lib.owner, lib.owner, lib.ann[0], "Ann")
        assert loaded.state == FaceState.GUESSED
        assert s.get(Name, loaded.guess_name_id).name == "Ann"
