"""Grouping unnamed faces: Chinese Whispers over strict links, stable ids, one face per photo."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from faces.recognition.groups import NO_GROUP, chinese_whispers, relabel_like, similarity_edges
from faces.recognition.vectors import prepare
from tests.recognition.synthetic import people, photos_of

PEOPLE = people(8, seed=3)


def _faces(counts, spread=0.3, seed=0):
    vectors = np.concatenate([photos_of(PEOPLE[p], c, spread, seed=seed + p) for p, c in enumerate(counts)])
    truth = np.repeat(np.arange(len(counts)), counts)
    return vectors, truth


def _cluster(vectors, images, labels=None, sources=None, next_label=1, threshold=0.5):
    ch = {"dlib": (prepare(vectors, "euclidean"), np.arange(len(vectors)), threshold)}
    edges = similarity_edges(len(vectors), ch, sources)
    return chinese_whispers(len(vectors), edges, images, labels, next_label)


def test_look_alikes_are_grouped_and_people_kept_apart():
    vectors, truth = _faces([5, 4, 3, 1])
    groups = _cluster(vectors, np.arange(len(vectors)))
    for person in range(3):
        members = groups[truth == person]
        assert (members != NO_GROUP).all() and len(set(members.tolist())) == 1
    assert len({int(groups[truth == p][0]) for p in range(3)}) == 3
    assert groups[truth == 3][0] == NO_GROUP  # a face alone is in no group


def test_two_faces_of_one_photo_never_share_a_group():
    vectors, truth = _faces([4])
    images = np.array([1, 1, 2, 3])
    groups = _cluster(vectors, images)
    assert groups[0] == NO_GROUP or groups[1] == NO_GROUP or groups[0] != groups[1]
    assert (groups[2:] != NO_GROUP).all()


def test_existing_groups_keep_their_ids_when_photos_are_added():
    vectors, truth = _faces([4, 4])
    first = _cluster(vectors[:6], np.arange(6), next_label=10)
    assert set(first[:4].tolist()) == {10} or set(first[:4].tolist()) == {11}
    labels = np.concatenate([first, [NO_GROUP, NO_GROUP]])
    second = _cluster(vectors, np.arange(8), labels=labels, sources=np.array([6, 7]), next_label=12)
    assert (second[:6] == first).all()  # nobody jumped
    assert second[6] == second[7] == first[4]  # the new faces joined their person's group


def test_relabel_keeps_old_ids_where_groups_overlap():
    old = np.array([5, 5, 5, 9, 9, NO_GROUP])
    new = np.array([1, 1, 2, 2, 2, 3])
    assert relabel_like(new, old, 20).tolist() == [5, 5, 9, 9, 9, 20]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=20), st.integers(0, 100))
def test_never_two_faces_of_one_photo_in_a_group(images, seed):
    vectors, _ = _faces([len(images)], spread=0.3, seed=seed)
    groups = _cluster(vectors, np.asarray(images))
    pairs = [(g, img) for g, img in zip(groups.tolist(), images) if g != NO_GROUP]
    assert len(pairs) == len(set(pairs))
