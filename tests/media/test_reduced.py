"""Reduced decoding: JPEGs at DCT scale, never smaller than needed, and boxes that map back to full resolution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from faces.media import LoadedImage, load_image
from tests.media.helpers import mean_abs_diff


def _marker_image(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A mid-grey picture with one white rectangle at ``box`` (x, y, w, h)."""
    pixels = np.full((height, width, 3), 60, dtype=np.uint8)
    x, y, w, h = box
    pixels[y:y + h, x:x + w] = 255
    return pixels


def _found_box(loaded: LoadedImage) -> tuple[int, int, int, int]:
    """The white rectangle found on the decoded pixels, mapped to full resolution."""
    bright = np.argwhere(loaded.pixels.mean(axis=2) > 157)
    (y0, x0), (y1, x1) = bright.min(axis=0), bright.max(axis=0) + 1
    return loaded.to_full(x0, y0, x1 - x0, y1 - y0)


@pytest.mark.parametrize("max_side, dct_size", [
    (2000, (1800, 1200)),  # larger than the photo: full decode
    (1700, (1800, 1200)),  # 1/2 would be too small: full decode, then resize
    (900, (900, 600)),  # exactly 1/2
    (500, (900, 600)),  # 1/4 would give 450 < 500: 1/2
    (300, (450, 300)),  # 1/4 (450 >= 300); 1/8 would give 225
    (100, (225, 150)),  # 1/8 is the smallest DCT scale
])
def test_dct_scale_is_never_smaller_than_needed(tmp_path, max_side, dct_size):
    path = tmp_path / "big.jpg"
    Image.fromarray(_marker_image(1800, 1200, (900, 300, 360, 240))).save(path, quality=95)
    reduced = load_image(path, max_side=max_side, resize=False)
    assert reduced.pixels.shape[1::-1] == dct_size
    assert reduced.scale == pytest.approx(1800 / dct_size[0])

    resized = load_image(path, max_side=max_side)
    assert max(resized.pixels.shape[:2]) == min(max_side, 1800)
    assert (resized.full_width, resized.full_height) == (1800, 1200)
    assert resized.scale == pytest.approx(1800 / resized.pixels.shape[1])
    assert _found_box(resized) == pytest.approx((900, 300, 360, 240), abs=2 * resized.scale + 1)


def test_reduced_decode_looks_like_the_full_one(data_root):
    """A 14 MP photo at max_side 1600 (DCT 1/2, then resized) matches the full decode resized the same way."""
    path = data_root / "deepface_unit" / "img40.jpg"  # 3061x4600
    reduced = load_image(path, max_side=1600)
    assert reduced.pixels.shape == (1600, 1065, 3)
    assert (reduced.full_width, reduced.full_height) == (3061, 4600)
    assert reduced.scale == pytest.approx(3061 / 1065)
    with Image.open(path) as full:
        reference = np.asarray(full.convert("RGB").resize((1065, 1600), Image.Resampling.LANCZOS))
    assert mean_abs_diff(reduced.pixels, reference) < 3


def test_non_jpeg_is_resized_too(odd_good_files):
    folder, _ = odd_good_files
    loaded = load_image(folder / "photo.bmp", max_side=128)
    assert loaded.pixels.shape == (128, 128, 3)
    assert loaded.scale == 4.0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(100, 1000), aspect=st.floats(0.5, 2.0),
    rel=st.tuples(st.floats(0, 0.7), st.floats(0, 0.7), st.floats(0.12, 0.3), st.floats(0.12, 0.3)),
    max_side=st.integers(100, 1100), fmt=st.sampled_from(["JPEG", "PNG"]),
)
def test_a_box_maps_back_to_where_it_was(tmp_path, width, aspect, rel, max_side, fmt):
    """Whatever the size, reduction and format, a rectangle found on the reduced pixels maps back onto itself."""
    height = max(100, round(width * aspect))
    box = (int(rel[0] * width), int(rel[1] * height), int(rel[2] * width), int(rel[3] * height))
    path = tmp_path / f"marker.{fmt.lower()}"
    Image.fromarray(_marker_image(width, height, box)).save(path, fmt, quality=95, compress_level=1)
    loaded = load_image(path, max_side=max_side)
    assert max(loaded.pixels.shape[:2]) == min(max_side, max(width, height))
    assert _found_box(loaded) == pytest.approx(box, abs=2 * loaded.scale + 1)


@given(
    full=st.tuples(st.integers(1, 8000), st.integers(1, 8000)),
    reduction=st.floats(1.0, 12.0),
    box=st.tuples(st.floats(-50, 3000), st.floats(-50, 3000), st.floats(0, 3000), st.floats(0, 3000)),
)
def test_to_full_stays_inside_and_scales(full, reduction, box):
    full_w, full_h = full
    small_w, small_h = max(1, round(full_w / reduction)), max(1, round(full_h / reduction))
    loaded = LoadedImage(pixels=np.zeros((small_h, small_w, 3), np.uint8), scale=full_w / small_w,
                         full_width=full_w, full_height=full_h)
    x, y, w, h = loaded.to_full(*box)
    assert all(isinstance(v, int) for v in (x, y, w, h))
    assert 0 <= x and 0 <= y and w >= 0 and h >= 0
    assert x + w <= full_w and y + h <= full_h
    bx, by, bw, bh = box
    sx, sy = full_w / small_w, full_h / small_h
    inside = bx >= 0 and by >= 0 and (bx + bw) * sx <= full_w and (by + bh) * sy <= full_h
    if inside:  # not clipped: the box is just multiplied by the scale of each axis, rounded
        assert abs(x - bx * sx) <= 0.5 and abs(y - by * sy) <= 0.5
        assert abs(w - bw * sx) <= 1 and abs(h - bh * sy) <= 1
    # the whole reduced picture maps onto the whole full-resolution picture
    assert loaded.to_full(0, 0, small_w, small_h) == (0, 0, full_w, full_h)
    assert loaded.to_full_point(small_w, small_h) == pytest.approx((full_w, full_h))


def test_to_full_is_identity_at_scale_one():
    loaded = LoadedImage(pixels=np.zeros((10, 20, 3), np.uint8), scale=1.0, full_width=20, full_height=10)
    assert loaded.to_full(3, 4, 5, 6) == (3, 4, 5, 6)
    assert loaded.to_full(15, 8, 10, 10) == (15, 8, 5, 2)  # clipped to the image
