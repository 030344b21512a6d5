"""The guessing rules, on synthetic embeddings (people = random directions, photos = noisy copies)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faces.recognition.guess import GuessRules, guess_names
from faces.recognition.vectors import distance_matrix, prepare, radius_pairs
from tests.recognition.synthetic import channel, people, photos_of

PEOPLE = people(6)


def _library(spread: float = 0.3):
    """Three named people (names 1, 2, 3) with three confirmed faces each (face ids 100..108)."""
    known = np.concatenate([photos_of(PEOPLE[i], 3, spread, seed=i) for i in range(3)])
    return known, np.arange(100, 109), np.repeat([1, 2, 3], 3)


def test_distances_match_numpy_for_both_metrics():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 16)), rng.standard_normal((7, 16))
    eu = distance_matrix(prepare(a, "euclidean"), prepare(b, "euclidean"))
    assert np.allclose(eu, np.linalg.norm(a[:, None] - b[None], axis=2), atol=1e-4)
    cos = distance_matrix(prepare(a, "cosine"), prepare(b, "cosine"))
    expected = 1 - (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    assert np.allclose(cos, expected, atol=1e-5)
    q, k, d = radius_pairs(prepare(a, "euclidean"), prepare(b, "euclidean"), float(np.median(eu)))
    assert len(q) == int((eu <= np.median(eu)).sum())
    assert np.allclose(d, eu[q, k], atol=1e-5)


def test_known_people_get_their_name_and_strangers_none():
    known, faces, names = _library()
    query = np.concatenate([photos_of(PEOPLE[i], 2, 0.3, seed=10 + i) for i in range(6)])
    guesses = guess_names(np.arange(1, 13), np.arange(1, 13), {"dlib": channel(known, faces, names, query)})
    assert {fid: g.name_id for fid, g in guesses.items()} == {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}
    for fid, guess in guesses.items():
        assert guess.channels == ("dlib",)
        assert 0 < guess.score < 1.0  # within tolerance
        assert guess.anchor_face_id in faces[names == guess.name_id]


def test_no_guess_beyond_tolerance():
    known, faces, names = _library()
    query = photos_of(PEOPLE[0], 1, 0.3, seed=20)
    d = distance_matrix(prepare(query, "euclidean"), prepare(known, "euclidean")).min()
    ch = channel(known, faces, names, query, tolerance=float(d) * 0.95)
    assert guess_names([1], [1], {"dlib": ch}) == {}
    ch = channel(known, faces, names, query, tolerance=float(d) * 1.5)
    assert guess_names([1], [1], {"dlib": ch}, GuessRules(margin=0.0))[1].name_id == 1


def test_margin_refuses_a_face_between_two_people():
    # one face each of persons 1, 2, 3; the query is exactly halfway between persons 1 and 2
    known, faces, names = PEOPLE[:3], [100, 101, 102], [1, 2, 3]
    query = ((known[0] + known[1]) / 2)[None, :]
    d = distance_matrix(prepare(query, "euclidean"), prepare(known, "euclidean"))[0]
    assert np.isclose(d[0], d[1], atol=1e-5) and d[2] > d[0] + 0.2
    ch = channel(known, faces, names, query, tolerance=float(d[0]) * 1.2)
    assert guess_names([1], [1], {"dlib": ch}, GuessRules(margin=0.1)) == {}
    # without a margin the nearer of the two wins
    assert guess_names([1], [1], {"dlib": ch}, GuessRules(margin=0.0))[1].name_id in (1, 2)


def test_rejected_and_photo_names_are_excluded():
    known, faces, names = _library()
    query = photos_of(PEOPLE[0], 2, 0.3, seed=30)
    ch = channel(known, faces, names, query)
    assert guess_names([1, 2], [50, 51], {"dlib": ch}, rejected={1: {1}})[2].name_id == 1
    assert 1 not in guess_names([1, 2], [50, 51], {"dlib": ch}, rejected={1: {1}})
    assert guess_names([1, 2], [50, 51], {"dlib": ch}, photo_names={50: {1}}).keys() == {2}


def test_one_person_once_per_photo_closest_face_wins():
    known, faces, names = _library()
    near = photos_of(PEOPLE[0], 1, 0.1, seed=40)
    far = photos_of(PEOPLE[0], 1, 0.45, seed=41)
    ch = channel(known, faces, names, np.concatenate([far, near]))
    guesses = guess_names([1, 2], [7, 7], {"dlib": ch})
    assert list(guesses) == [2]
    # in two different photos both keep it
    assert set(guess_names([1, 2], [7, 8], {"dlib": ch})) == {1, 2}


def _two_channels(query_a, query_b, rows_b=None):
    known, faces, names = _library()
    return {
        "dlib": channel(known, faces, names, query_a),
        "opencv": channel(known, faces, names, query_b, tolerance=0.6, metric="cosine", query_rows=rows_b),
    }


@pytest.mark.parametrize("mode", ["agree", "any", "mean"])
def test_finders_that_agree_give_a_guess(mode):
    q = photos_of(PEOPLE[1], 1, 0.3, seed=50)
    guess = guess_names([1], [1], _two_channels(q, q), GuessRules(combine=mode))[1]
    assert guess.name_id == 2
    assert guess.channels == ("dlib", "opencv")


def test_finders_that_disagree_give_no_guess():
    a = photos_of(PEOPLE[0], 1, 0.3, seed=60)
    b = photos_of(PEOPLE[1], 1, 0.3, seed=61)
    for mode in ("agree", "any", "mean"):
        assert guess_names([1], [1], _two_channels(a, b), GuessRules(combine=mode)) == {}


def test_agree_needs_every_finder_but_any_takes_one():
    a = photos_of(PEOPLE[0], 1, 0.3, seed=70)
    stranger = photos_of(PEOPLE[5], 1, 0.3, seed=71)
    channels = _two_channels(a, stranger)
    assert guess_names([1], [1], channels, GuessRules(combine="agree")) == {}
    assert guess_names([1], [1], channels, GuessRules(combine="any"))[1].name_id == 1
    # a face seen by one finder only is judged by that finder alone
    only_one = _two_channels(a, np.empty((0, 128), np.float32), rows_b=np.empty(0, np.int64))
    assert guess_names([1], [1], only_one, GuessRules(combine="agree"))[1].name_id == 1


def test_rules_are_checked():
    with pytest.raises(ValueError):
        GuessRules(combine="vote")
    with pytest.raises(ValueError):
        prepare(np.zeros((1, 4)), "manhattan")


# --- properties -------------------------------------------------------------------------------------------------

faces_in_photos = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=14)


@settings(max_examples=40, deadline=None)
@given(faces_in_photos, st.integers(0, 1000))
def test_one_person_at_most_once_per_photo(items, seed):
    """Whatever the faces and photos, no photo gets the same guessed name twice."""
    known, faces, names = _library()
    query = np.concatenate([photos_of(PEOPLE[p], 1, 0.35, seed=seed + i) for i, (p, _) in enumerate(items)])
    images = [img for _, img in items]
    guesses = guess_names(np.arange(1, len(items) + 1), images, {"dlib": channel(known, faces, names, query)})
    seen = set()
    for fid, guess in guesses.items():
        key = (images[fid - 1], guess.name_id)
        assert key not in seen
        seen.add(key)


@settings(max_examples=40, deadline=None)
@given(faces_in_photos, st.integers(0, 1000), st.data())
def test_rejected_names_never_come_back(items, seed, data):
    """A name rejected for a face is never its guess, whatever else is in the library."""
    known, faces, names = _library()
    query = np.concatenate([photos_of(PEOPLE[p], 1, 0.35, seed=seed + i) for i, (p, _) in enumerate(items)])
    ids = list(range(1, len(items) + 1))
    rejected = {fid: set(data.draw(st.sets(st.integers(1, 3)))) for fid in ids}
    guesses = guess_names(ids, [img for _, img in items], {"dlib": channel(known, faces, names, query)},
                          rejected=rejected)
    for fid, guess in guesses.items():
        assert guess.name_id not in rejected[fid]
