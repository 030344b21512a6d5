"""The IVF index: exact distances over the lists it looks at, kept in step with a channel's faces, saved and
reloaded; and the guesses made through it."""

from __future__ import annotations

import numpy as np
import pytest

from faces.recognition import index as index_module
from faces.recognition.ann import AnnPolicy, ChannelIndexes
from faces.recognition.guess import guess_names
from faces.recognition.index import IvfIndex
from faces.recognition.vectors import prepare, radius_pairs
from tests.recognition.synthetic import channel, people, photos_of

PEOPLE = people(40, seed=3)


def _faces(per_person: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Faces of 40 people, and the person of each."""
    vectors = np.concatenate([photos_of(PEOPLE[p], per_person, 0.3, seed=seed + p) for p in range(len(PEOPLE))])
    return vectors, np.repeat(np.arange(len(PEOPLE)), per_person)


def _pairs(result) -> set[tuple[int, int]]:
    return set(zip(result[0].tolist(), result[1].tolist()))


@pytest.mark.parametrize("metric, radius", [("euclidean", 0.6), ("cosine", 0.2)])
def test_all_lists_give_the_exact_search_and_fewer_give_part_of_it(metric, radius):
    vectors, _ = _faces()
    known = prepare(vectors, metric)
    queries = prepare(np.concatenate([photos_of(p, 1, 0.3, seed=99) for p in PEOPLE[:20]] + [people(5, seed=8)]),
                      metric)
    index = IvfIndex.build(np.arange(len(vectors)) + 1000, known)
    assert index.list_total == round(np.sqrt(len(vectors)))
    exact = radius_pairs(queries, known, radius)
    everything = index.radius_pairs(queries, known, radius, probes=index.list_total)
    assert _pairs(everything) == _pairs(exact) and len(exact[0]) > 100
    some = index.radius_pairs(queries, known, radius, probes=2)
    assert _pairs(some) <= _pairs(exact) and len(some[0]) > 0.8 * len(exact[0])
    # every distance is the exact one, sorted by query then distance like the exact search
    expected = dict(zip(zip(exact[0].tolist(), exact[1].tolist()), exact[2].tolist()))
    assert np.allclose(some[2], [expected[p] for p in zip(some[0].tolist(), some[1].tolist())], atol=1e-5)
    assert np.all(np.diff(some[0]) >= 0)


def test_rows_outside_the_mask_are_never_returned():
    vectors, _ = _faces()
    known = prepare(vectors, "euclidean")
    index = IvfIndex.build(np.arange(len(vectors)), known)
    allowed = np.arange(len(vectors)) % 3 == 0
    q, k, _ = index.radius_pairs(known.take(np.arange(0, 1000, 7)), known, 0.6, allowed, probes=4)
    assert len(k) and allowed[k].all()


def test_sync_follows_added_and_deleted_faces():
    vectors, _ = _faces()
    ids = np.arange(len(vectors)) * 2 + 10
    index = IvfIndex.build(ids[:800], prepare(vectors[:800], "euclidean"))
    # faces 0..99 deleted, 800..999 added: the rows of the new matrix follow its face ids
    keep = np.arange(100, len(vectors))
    known = prepare(vectors[keep], "euclidean")
    assert index.sync(ids[keep], known) == (200, 100)
    assert np.array_equal(index.keys, ids[keep])
    q, k, d = index.radius_pairs(known.take(np.arange(len(keep))), known, 0.05, probes=index.list_total)
    assert set(zip(q.tolist(), k.tolist())) >= {(i, i) for i in range(len(keep))}  # every face finds itself
    assert index.sync(ids[keep], known) == (0, 0)


def test_saved_index_loads_the_same(tmp_path):
    vectors, _ = _faces(per_person=5)
    known = prepare(vectors, "cosine")
    index = IvfIndex.build(np.arange(len(vectors)), known)
    index.save(tmp_path / "a.npz")
    loaded = IvfIndex.load(tmp_path / "a.npz")
    assert loaded.metric == "cosine" and loaded.built_size == len(vectors)
    assert np.array_equal(loaded.keys, index.keys) and np.array_equal(loaded.lists, index.lists)
    assert np.array_equal(loaded.centroids, index.centroids)
    (tmp_path / "b.npz").write_bytes(b"not an index")
    assert IvfIndex.load(tmp_path / "b.npz") is None and IvfIndex.load(tmp_path / "missing.npz") is None


def test_guesses_through_the_index_are_the_exact_guesses():
    vectors, persons = _faces()
    named = np.arange(len(vectors)) % 5 != 0  # four faces in five are named; the fifth are guessed
    known_ids = np.arange(len(vectors)) + 1
    query = np.concatenate([vectors[~named], people(30, seed=11)])  # plus 30 strangers
    face_ids = np.arange(len(query)) + 10_000
    exact = channel(vectors[named], known_ids[named], persons[named] + 1, query)
    expected = guess_names(face_ids, face_ids, {"dlib": exact})
    assert len(expected) == int((~named).sum())
    index = IvfIndex.build(known_ids[named], exact.known)
    for probes in (index.list_total, 4):
        with_index = channel(vectors[named], known_ids[named], persons[named] + 1, query)
        with_index.search = lambda q, r, probes=probes: index.radius_pairs(q, with_index.known, r, probes=probes)
        got = guess_names(face_ids, face_ids, {"dlib": with_index})
        assert {f: g.name_id for f, g in got.items()} == {f: g.name_id for f, g in expected.items()}


def test_policy_decides_when_the_index_is_used():
    assert not AnnPolicy("exact").wants(10**7)
    assert not AnnPolicy("auto", min_faces=1000).wants(999) and AnnPolicy("auto", min_faces=1000).wants(1000)
    assert AnnPolicy("ivf").wants(3) and not AnnPolicy("ivf").wants(0)
    with pytest.raises(ValueError, match="ann_index"):
        AnnPolicy("pgvector")


def test_index_is_saved_once_and_synced_in_the_next_process(tmp_path, monkeypatch):
    vectors, _ = _faces(per_person=10)
    ids = np.arange(len(vectors)) + 1
    policy = AnnPolicy("ivf", directory=tmp_path / "ann")
    first = ChannelIndexes().get(("db", 1, "dlib", "v1"), ids[:300], prepare(vectors[:300], "euclidean"), policy)
    assert first is not None and len(list((tmp_path / "ann").glob("*.npz"))) == 1

    def no_build(*args, **kwargs):
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(index_module.IvfIndex, "build", no_build)
    known = prepare(vectors, "euclidean")  # 100 faces more since
    again = ChannelIndexes().get(("db", 1, "dlib", "v1"), ids, known, policy)
    q, k, _ = again.radius_pairs(known.take(np.arange(300, len(vectors))), 0.05)
    assert set(zip(q.tolist(), k.tolist())) >= {(i - 300, i) for i in range(300, len(vectors))}
    assert ChannelIndexes().get(("db", 1, "dlib", "v1"), ids, known, AnnPolicy("exact")) is None


def test_settings_name_the_index_choices(tmp_path):
    from faces.config import ConfigError, load_settings

    settings = load_settings(tmp_path, environ={"FACES_ANN_INDEX": "ivf", "FACES_ANN_PROBES": "4"})
    assert (settings.ann_index, settings.ann_probes, settings.ann_min_faces) == ("ivf", 4, 50_000)
    with pytest.raises(ConfigError, match="ann_index"):
        load_settings(tmp_path, environ={"FACES_ANN_INDEX": "pgvector"})
    with pytest.raises(ConfigError, match="ann_probes"):
        load_settings(tmp_path, environ={"FACES_ANN_PROBES": "0"})
