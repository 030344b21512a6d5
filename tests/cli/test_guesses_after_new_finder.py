"""A finder enabled later adds embeddings to faces that already have guesses: those guesses are recomputed
with the new finder too, without waiting for the next naming action."""

from __future__ import annotations

import shutil


def test_guesses_use_a_finder_enabled_later(cli, tmp_path, data_root):
    examples = data_root / "face_recognition_examples"
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in ("examples/obama.jpg", "examples/obama2.jpg", "tests/test_images/obama3.jpg",
                   "examples/knn_examples/test/obama1.jpg"):
        shutil.copy(examples / source, photos / source.replace("/", "_"))

    cli.json("scan", "--json", "--finders", "dlib", photos)
    faces = sorted(cli.json("faces", "--json"), key=lambda f: f["image"])
    assert len(faces) == 4 and all(f["finders"] == ["dlib"] for f in faces)
    cli("name", faces[0]["id"], "Barack Obama")
    guessed = [f for f in cli.json("faces", "--json") if f["guess"]]
    assert len(guessed) == 3 and all(f["guess"]["finders"] == ["dlib"] for f in guessed)

    cli.json("scan", "--json", "--finders", "dlib,opencv", photos)

    after = [f for f in cli.json("faces", "--json") if f["id"] != faces[0]["id"]]
    assert len(after) == 3
    for face in after:
        assert face["finders"] == ["dlib", "opencv"]
        assert face["guess"]["name"] == "Barack Obama"
        assert sorted(face["guess"]["finders"]) == ["dlib", "opencv"]
