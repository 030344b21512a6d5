"""Thumbnails of photos and faces, and the cache that keeps them (and forgets them completely)."""

from __future__ import annotations

import io
import stat

import numpy as np
import pytest
from PIL import Image

from faces.media import (
    MediaError,
    cached_face_thumbnail,
    cached_thumbnail,
    face_crop_box,
    face_thumbnail,
    face_thumbnail_cache_path,
    make_thumbnail,
    probe_image,
    remove_all_thumbnails,
    remove_face_thumbnails,
    remove_thumbnails,
    thumbnail_cache_path,
)
from tests.media.helpers import quadrant_means, quadrants, stored_for_orientation


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB"))


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def turned_photo(tmp_path):
    """A 1600x1000 upright picture stored on its side (orientation 8) as JPEG, with a face-like red square."""
    upright = quadrants(1600, 1000)
    upright[600:800, 1100:1300] = (200, 30, 30)  # the "face" at (1100, 600, 200, 200), in the white quadrant
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(stored_for_orientation(upright, 8)).save(path, quality=92, exif=exif.tobytes())
    return path


def test_thumbnail_is_small_and_upright(turned_photo):
    pixels = _decode(make_thumbnail(turned_photo, 320))
    assert pixels.shape == (200, 320, 3)
    expected = quadrants(2, 2).reshape(4, 3)
    np.testing.assert_allclose(quadrant_means(pixels)[:3], expected[:3], atol=40)


def test_thumbnail_never_enlarges(odd_good_files):
    folder, _ = odd_good_files
    assert _decode(make_thumbnail(folder / "photo.webp", 2000)).shape == (512, 512, 3)


def test_face_crop_box_is_a_square_inside_the_image():
    assert face_crop_box((100, 100, 50, 50), 1000, 800, margin=0.5) == (75, 75, 100, 100)
    assert face_crop_box((0, 0, 50, 40), 1000, 800, margin=0.5) == (0, 0, 100, 100)  # shifted, not squeezed
    assert face_crop_box((950, 760, 50, 40), 1000, 800, margin=0.5) == (900, 700, 100, 100)
    assert face_crop_box((10, 10, 500, 500), 300, 200) == (100, 0, 200, 200)  # image smaller than the square
    with pytest.raises(ValueError):
        face_crop_box((10, 10, 0, 5), 100, 100)


def test_face_thumbnail_centres_the_face(turned_photo):
    pixels = _decode(face_thumbnail(turned_photo, (1100, 600, 200, 200), 96, margin=0.5))
    assert pixels.shape == (96, 96, 3)
    centre = pixels[36:60, 36:60].reshape(-1, 3).mean(axis=0)
    assert centre == pytest.approx((200, 30, 30), abs=25)
    border = np.concatenate([pixels[:12].reshape(-1, 3), pixels[-12:].reshape(-1, 3)]).mean(axis=0)
    assert border == pytest.approx((255, 255, 255), abs=25)  # the margin shows the white around it


def test_cached_thumbnail_is_made_once_and_removed_completely(tmp_path, turned_photo, odd_good_files):
    data_dir = tmp_path / "data"
    digest = probe_image(turned_photo).content_hash
    first = cached_thumbnail(data_dir, turned_photo, digest, 160)
    target = thumbnail_cache_path(data_dir, digest, "photo", 160)
    assert target.read_bytes() == first
    assert target.is_relative_to(data_dir / "thumbs")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # thumbnails of private photos: the server user only
    assert stat.S_IMODE((data_dir / "thumbs").stat().st_mode) == 0o700

    turned_photo.unlink()  # from now on only the cache can answer
    assert cached_thumbnail(data_dir, turned_photo, digest, 160) == first
    with pytest.raises(MediaError):
        cached_thumbnail(data_dir, turned_photo, digest, 320)  # not cached, and the photo is gone

    folder, _ = odd_good_files
    other = folder / "photo.bmp"
    other_hash = probe_image(other).content_hash
    cached_thumbnail(data_dir, other, other_hash, 160)

    assert remove_thumbnails(data_dir, digest) == 1
    assert not target.exists() and not target.parent.exists()
    assert [p.name for p in _files(data_dir)] == ["photo-160.jpg"]  # only the other image's
    assert remove_thumbnails(data_dir, other_hash) == 1
    assert _files(data_dir) == []
    assert [p for p in (data_dir / "thumbs").iterdir()] == []  # no empty folders named after the hashes
    assert remove_thumbnails(data_dir, other_hash) == 0  # twice is fine


def test_face_thumbnails_cached_and_removed(tmp_path, turned_photo):
    data_dir = tmp_path / "data"
    crop = cached_face_thumbnail(data_dir, turned_photo, 17, (1100, 600, 200, 200), 96)
    assert face_thumbnail_cache_path(data_dir, 17, (1100, 600, 200, 200), 96).read_bytes() == crop
    cached_face_thumbnail(data_dir, turned_photo, 17, (1100, 600, 200, 200), 192)
    cached_face_thumbnail(data_dir, turned_photo, "2b1e6a0c-5d0e-4c38-9d1f-1b7c6f2d4e11", (0, 0, 300, 300), 96)
    assert len(_files(data_dir)) == 3
    assert remove_face_thumbnails(data_dir, [17, "2b1e6a0c-5d0e-4c38-9d1f-1b7c6f2d4e11", 99]) == 3
    assert _files(data_dir) == []


def test_remove_all_thumbnails(tmp_path, turned_photo):
    data_dir = tmp_path / "data"
    digest = probe_image(turned_photo).content_hash
    cached_thumbnail(data_dir, turned_photo, digest, 64)
    cached_face_thumbnail(data_dir, turned_photo, 1, (1100, 600, 200, 200), 64)
    assert remove_all_thumbnails(data_dir) == 2
    assert not (data_dir / "thumbs").exists()


@pytest.mark.parametrize("content_hash, kind", [
    ("../../etc", "photo"), ("ab" * 32, "../x"), ("AB" * 32, "photo"), ("ab" * 32, "photo/../../x"), ("", "photo"),
])
def test_cache_paths_cannot_leave_the_thumbnail_folder(tmp_path, content_hash, kind):
    with pytest.raises(ValueError):
        thumbnail_cache_path(tmp_path, content_hash, kind, 100)


def test_face_keys_cannot_leave_the_thumbnail_folder(tmp_path):
    for key in ("..", "../1", "a/b", ""):
        with pytest.raises(ValueError):
            face_thumbnail_cache_path(tmp_path, key, (0, 0, 1, 1), 10)
