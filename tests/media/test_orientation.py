"""EXIF orientation: all eight values, in every format that carries the tag, at full and reduced size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, features

from faces.media import load_image, probe_image
from faces.media.reading import _HEIF
from tests.media.helpers import quadrant_means, quadrants, stored_for_orientation

ORIENTATIONS = range(1, 9)
# TIFF and HEIF decoders turn the pixels themselves (Pillow 13, libheif): faces must not turn them twice.
FORMATS = ["JPEG", "PNG", "WEBP", "TIFF"] + (["AVIF"] if features.check("avif") else []) + (["HEIF"] if _HEIF else [])
EXPECTED = quadrants(2, 2).reshape(4, 3).astype(float)  # TL red, TR green, BL blue, BR white


def _write(path, stored: np.ndarray, orientation: int, fmt: str) -> None:
    image = Image.fromarray(stored, "RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    if fmt == "TIFF":
        image.save(path, "TIFF", tiffinfo={0x0112: orientation})  # the tag lives in the TIFF directory itself
    elif fmt == "PNG":
        image.save(path, "PNG", exif=exif.tobytes())
    else:
        image.save(path, fmt, exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_pixels_land_upright(tmp_path, fmt, orientation):
    upright = quadrants(96, 64)  # landscape, so that a wrong swap of width and height shows
    path = tmp_path / f"o{orientation}.{fmt.lower()}"
    _write(path, stored_for_orientation(upright, orientation), orientation, fmt)

    info = probe_image(path)
    assert (info.width, info.height) == (96, 64)
    assert info.orientation == orientation

    loaded = load_image(path)
    assert loaded.pixels.shape == (64, 96, 3)
    assert (loaded.full_width, loaded.full_height, loaded.scale) == (96, 64, 1.0)
    np.testing.assert_allclose(quadrant_means(loaded.pixels), EXPECTED, atol=40)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_reduced_jpeg_is_upright_and_maps_back(tmp_path, orientation):
    """A big JPEG decoded at reduced DCT scale is turned the same way, and a box maps back upright."""
    upright = quadrants(1600, 1000)
    upright[600:700, 1200:1400] = (0, 0, 0)  # a black box in the white quadrant, at (1200, 600, 200, 100)
    path = tmp_path / f"big{orientation}.jpg"
    _write(path, stored_for_orientation(upright, orientation), orientation, "JPEG")

    loaded = load_image(path, max_side=400)
    assert loaded.pixels.shape == (250, 400, 3)
    assert (loaded.full_width, loaded.full_height) == (1600, 1000)
    np.testing.assert_allclose(quadrant_means(loaded.pixels), EXPECTED, atol=40)
    dark = np.argwhere(loaded.pixels.max(axis=2) < 100)
    y0, x0 = dark.min(axis=0)
    y1, x1 = dark.max(axis=0) + 1
    box = loaded.to_full(x0, y0, x1 - x0, y1 - y0)
    assert np.allclose(box, (1200, 600, 200, 100), atol=2 * loaded.scale)


def test_real_rotated_photo(data_root):
    """``image_T1.jpeg`` is stored 640x480 with orientation 6: it is a portrait photo."""
    path = data_root / "insightface_samples" / "inspireface_test_res" / "bulk" / "image_T1.jpeg"
    with Image.open(path) as raw:
        stored_size = raw.size
        stored = np.asarray(raw.convert("RGB"))
    assert stored_size == (640, 480)
    info = probe_image(path)
    assert (info.orientation, info.width, info.height) == (6, 480, 640)
    loaded = load_image(path)
    assert loaded.pixels.shape == (640, 480, 3)
    # orientation 6: the stored first row is the upright right-hand column, read top to bottom
    assert np.abs(loaded.pixels[:, -1].astype(int) - stored[0].astype(int)).mean() < 3


def test_garbage_orientation_is_ignored(tmp_path):
    upright = quadrants(40, 20)
    for value in (0, 9, 255):
        path = tmp_path / f"bad{value}.jpg"
        exif = Image.Exif()
        exif[0x0112] = value
        Image.fromarray(upright).save(path, exif=exif.tobytes(), quality=95)
        info = probe_image(path)
        assert (info.orientation, info.width, info.height) == (1, 40, 20)
        assert load_image(path).pixels.shape == (20, 40, 3)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_does_not_break_the_photo(tmp_path):
    path = tmp_path / "broken_exif.jpg"
    Image.fromarray(quadrants(40, 20)).save(path, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    info = probe_image(path)
    assert (info.width, info.height, info.orientation, info.taken_at) == (40, 20, 1, None)
    assert load_image(path).pixels.shape == (20, 40, 3)

