"""Finding image files under the paths a person gives."""

from __future__ import annotations

import os

import pytest

from faces.media import find_image_files


def _tree(root):
    files = [
        "a.jpg", "b.JPEG", "c.Png", "d.webp", "e.gif", "f.tif", "g.TIFF", "h.bmp", "i.heic", "j.HEIF", "k.pgm",
        "l.ppm", "notes.txt", "movie.mp4", "raw.CR2", ".hidden.jpg",
        "sub/deeper/m.jpg", "sub/n.png", ".git/o.jpg", ".cache/p.jpg", "@eaDir/a.jpg/SYNOPHOTO_THUMB_M.jpg",
        "data/thumbs/ab/abcd/photo-320.jpg",
    ]
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return files


def test_folders_are_walked_for_image_extensions(tmp_path):
    _tree(tmp_path)
    found = find_image_files([tmp_path])
    names = [str(p.relative_to(tmp_path)) for p in found]
    assert names == sorted(names)
    assert set(names) == {
        "a.jpg", "b.JPEG", "c.Png", "d.webp", "e.gif", "f.tif", "g.TIFF", "h.bmp", "i.heic", "j.HEIF", "k.pgm",
        "l.ppm", "sub/deeper/m.jpg", "sub/n.png", "data/thumbs/ab/abcd/photo-320.jpg",
    }
    assert all(p.is_absolute() for p in found)


def test_explicit_files_are_always_included(tmp_path):
    _tree(tmp_path)
    found = find_image_files([tmp_path / "notes.txt", tmp_path / ".hidden.jpg", tmp_path / "sub"])
    assert [p.name for p in found] == [".hidden.jpg", "notes.txt", "m.jpg", "n.png"]


def test_duplicates_and_relative_paths(tmp_path, monkeypatch):
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    found = find_image_files(["sub", "sub/n.png", str(tmp_path / "sub" / "n.png"), "./sub/../sub/deeper"])
    assert found == [tmp_path / "sub" / "deeper" / "m.jpg", tmp_path / "sub" / "n.png"]


def test_excluded_folder_is_not_walked(tmp_path):
    _tree(tmp_path)
    found = find_image_files([tmp_path], exclude=[tmp_path / "data"])
    assert not any("thumbs" in str(p) for p in found)


def test_symlinked_folder_loop_is_not_followed(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.jpg").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "photos" / "loop")
    os.symlink(tmp_path / "photos" / "x.jpg", tmp_path / "photos" / "link.jpg")
    found = find_image_files([tmp_path / "photos"])
    assert [p.name for p in found] == ["link.jpg", "x.jpg"]


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_image_files([tmp_path / "nowhere"])


def test_real_photo_folder(data_root):
    found = find_image_files([data_root / "att_faces" / "s1", data_root / "public_domain_faces"])
    assert len([p for p in found if p.suffix == ".pgm"]) == 10
    assert data_root / "public_domain_faces" / "astronaut.png" in found
    assert not any(p.name == "PROVENANCE.jsonl" for p in found)
