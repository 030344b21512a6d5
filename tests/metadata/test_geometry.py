"""Boxes between the upright image and the stored pixels, for the eight EXIF orientations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps

from faces.metadata import geometry
from tests.media.helpers import stored_for_orientation

ORIENTATIONS = range(1, 9)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_marked_pixel_lands_where_pillow_shows_it(orientation, tmp_path):
    # a stored 7x4 picture with one white pixel, shown upright by Pillow under each orientation
    stored = Image.new("L", (7, 4), 0)
    stored.putpixel((1, 0), 255)
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "o.png", exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(tmp_path / "o.png"))
    ys, xs = np.nonzero(np.asarray(upright))
    assert upright.size == geometry.upright_size(7, 4, orientation)
    # the pixel's centre, mapped with our table, is the centre of the pixel Pillow shows
    assert geometry.stored_to_upright_point(1.5, 0.5, 7, 4, orientation) == (xs[0] + 0.5, ys[0] + 0.5)


@given(orientation=st.integers(1, 8), w=st.integers(2, 3000), h=st.integers(2, 3000), data=st.data())
def test_upright_box_goes_to_the_stored_pixels_and_back(orientation, w, h, data):
    x = data.draw(st.integers(0, w - 1))
    y = data.draw(st.integers(0, h - 1))
    bw = data.draw(st.integers(1, w - x))
    bh = data.draw(st.integers(1, h - y))
    stored = geometry.upright_to_stored_box((x, y, bw, bh), w, h, orientation)
    sw, sh = geometry.stored_size(w, h, orientation)
    assert 0 <= stored[0] and stored[0] + stored[2] <= sw + 1e-9
    assert 0 <= stored[1] and stored[1] + stored[3] <= sh + 1e-9
    back = geometry.stored_to_upright_box(stored, sw, sh, orientation)
    assert geometry.to_int_box(back, w, h) == (x, y, bw, bh)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_stored_crop_is_the_upright_crop_turned_back(orientation):
    # a picture with distinct pixel values, so that equal crops really are the same place
    rng = np.random.default_rng(orientation)
    upright = rng.integers(0, 255, size=(30, 50, 3), dtype=np.uint8)
    stored = stored_for_orientation(upright, orientation)
    box = (7, 4, 13, 9)  # upright
    sx, sy, sw, sh = geometry.to_int_box(geometry.upright_to_stored_box(box, 50, 30, orientation),
                                         stored.shape[1], stored.shape[0])
    crop_up = upright[4:13, 7:20]
    assert np.array_equal(stored[sy:sy + sh, sx:sx + sw], stored_for_orientation(crop_up, orientation))


def test_mwg_and_microsoft_forms():
    nbox = (0.1, 0.2, 0.3, 0.4)
    area = geometry.mwg_area(nbox)
    assert area == {"X": 0.25, "Y": 0.4, "W": 0.3, "H": 0.4, "Unit": "normalized"}
    assert geometry.from_mwg_area(area) == pytest.approx(nbox)
    assert geometry.mp_rectangle(nbox) == "0.100000, 0.200000, 0.300000, 0.400000"
    assert geometry.from_mp_rectangle("0.1, 0.2, 0.3, 0.4") == pytest.approx(nbox)
    assert geometry.from_mp_rectangle("not, a, rectangle") is None
    assert geometry.from_mwg_area({"X": 0.5, "Y": 0.5, "W": 0, "H": 0.1}) is None
    with pytest.raises(geometry.OrientationError):
        geometry.stored_size(10, 10, 9)
