"""The refresh with the nearest-neighbour index, and its cache of faces seeing other processes' changes
(every backend in FACES_TEST_DATABASES)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa

from faces.naming import actions
from faces.naming.refresh import clear_cache, refresh_guesses
from faces.store.models import Face, FaceState, User, utcnow
from tests.naming.helpers import add_user, person_faces, snapshot


@pytest.fixture
def lib(store, settings):
    """Alice's library with the index forced on: person 0 in 6 photos, person 1 in 5, person 2 in 4."""
    settings = dataclasses.replace(settings, ann_index="ivf")
    with store.session() as s:
        alice = add_user(s, "alice")
        faces = [[f.id for f in person_faces(s, alice, p, n, f"p{p}-")] for p, n in ((0, 6), (1, 5), (2, 4))]
        refresh_guesses(s, settings, alice.id)
    clear_cache()
    return type("Lib", (), dict(store=store, settings=settings, owner=alice.id, faces=faces))


def _act(lib, action, *args):
    with lib.store.session() as s:
        action(s, lib.settings, lib.owner, lib.owner, *args)


def _state(lib):
    with lib.store.session() as s:
        return {k: v[:3] for k, v in snapshot(s, lib.owner).items()}


def test_guesses_through_the_index_are_the_exact_guesses(lib):
    exact = dataclasses.replace(lib.settings, ann_index="exact")
    a, b, c = lib.faces
    steps = [(actions.set_name, a[0], "Ann"), (actions.set_name, b[0], "Ben"), (actions.set_name, c[0], "Cy"),
             (actions.set_name, a[1], "Ben"), (actions.reset, a[1]), (actions.mark_unknown, b[1]),
             (actions.set_name, a[0], "")]
    for action, face, *args in steps:
        _act(lib, action, face, *args)
        incremental = _state(lib)
        with lib.store.session() as s:
            refresh_guesses(s, exact, lib.owner)
        assert _state(lib) == incremental, action.__name__
    assert incremental[a[2]][0] == FaceState.UNNAMED and incremental[c[1]][2] == "Cy"
    assert list((lib.settings.data_dir / "ann-index").glob("*.npz"))  # saved for the next process


def test_changes_committed_late_by_another_process_are_seen(lib):
    a, b, _ = lib.faces
    _act(lib, actions.set_name, a[0], "Ann")
    _act(lib, actions.set_name, b[0], "Ben")
    assert _state(lib)[a[1]][:3] == (FaceState.GUESSED, None, "Ann")
    # Another process ignores a[1] in a transaction that began a minute ago and commits only now: its
    # updated_at is older than the newest change this process has seen.
    with lib.store.engine.begin() as conn:
        conn.execute(sa.update(Face).where(Face.id == a[1]).values(state=FaceState.IGNORED,
                                                                   updated_at=utcnow() - timedelta(seconds=60)))
    _act(lib, actions.set_name, b[1], "Ben")  # refreshes elsewhere; must still see that a[1] left the candidates
    with lib.store.session() as s:
        face = s.get(Face, a[1])
        assert face.state == FaceState.IGNORED and face.guess_name_id is None


def test_a_rolled_back_naming_leaves_no_trace_in_the_next_refresh(lib):
    a, _, _ = lib.faces
    with lib.store.session() as s:
        actions.set_name(s, lib.settings, lib.owner, lib.owner, a[0], "Ann")
        s.rollback()
    _act(lib, actions.set_name, a[5], "Zed")
    state = _state(lib)
    assert state[a[0]][0] != FaceState.CONFIRMED
    assert {state[f][2] for f in a[1:5]} == {"Zed"}  # guessed from a[5], not from the rolled-back "Ann"


def test_faces_added_later_are_compared_and_guessed(lib):
    a, b, _ = lib.faces
    _act(lib, actions.set_name, a[0], "Ann")
    _act(lib, actions.set_name, b[0], "Ben")
    with lib.store.session() as s:  # a new photo of each, as detection adds them (embeddings appended)
        owner = s.get(User, lib.owner)
        new = [f.id for p in (0, 1) for f in person_faces(s, owner, p, 1, f"later{p}-")]
        refresh_guesses(s, lib.settings, lib.owner, new)
    state = _state(lib)
    assert (state[new[0]][2], state[new[1]][2]) == ("Ann", "Ben")
    _act(lib, actions.set_name, new[1], "Ben")  # a confirmed newcomer is an anchor like the others
    with lib.store.session() as s:
        assert s.get(Face, b[1]).guess_anchor_face_id in (b[0], new[1])
