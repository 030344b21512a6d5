"""Every supported format and colour mode decodes to the right RGB pixels."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from faces.media import SUPPORTED_FORMATS, load_image, probe_image
from faces.media.reading import _HEIF
from tests.media.helpers import mean_abs_diff

# name in make_odd_good_files -> (format probe_image reports, how close to the photo: max mean abs diff)
ODD_FILES = {
    "cmyk.jpg": ("JPEG", 4),
    "grey16.png": ("PNG", 1),
    "animated.gif": ("GIF", 6),
    "rgba.png": ("PNG", 0.5),
    "palette.png": ("PNG", 6),
    "grey.pgm": ("PPM", 0.5),
    "photo.tif": ("TIFF", 0.5),
    "photo.bmp": ("BMP", 0.5),
    "photo.webp": ("WEBP", 4),
    "progressive.jpg": ("JPEG", 4),
    "rotated.jpg": ("JPEG", 4),
    "photo.heic": ("HEIF", 4),
}
GREY = {"grey16.png", "grey.pgm"}


def test_corpus_has_every_odd_file(odd_good_files):
    _, made = odd_good_files
    expected = set(ODD_FILES) if _HEIF else set(ODD_FILES) - {"photo.heic"}
    assert set(made) == expected


@pytest.mark.parametrize("name", sorted(ODD_FILES))
def test_odd_file_decodes_to_the_photo(odd_good_files, photo, name):
    folder, made = odd_good_files
    if name not in made:
        pytest.skip("pillow-heif is not installed")
    fmt, tolerance = ODD_FILES[name]
    info = probe_image(folder / name)
    assert (info.format, info.width, info.height) == (fmt, 512, 512)
    assert info.bytes == (folder / name).stat().st_size

    loaded = load_image(folder / name)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.flags.c_contiguous
    assert loaded.pixels.shape == (512, 512, 3)
    reference = np.asarray(photo.convert("L").convert("RGB") if name in GREY else photo)
    if name == "rgba.png":  # the transparent strip on the left is composited on white
        strip = loaded.pixels[:, : 512 // 8]
        assert strip.min() == 255
        assert mean_abs_diff(loaded.pixels[:, 512 // 8:], reference[:, 512 // 8:]) <= tolerance
    else:
        assert mean_abs_diff(loaded.pixels, reference) <= tolerance


def test_animated_gif_gives_its_first_frame(odd_good_files):
    folder, _ = odd_good_files
    pixels = load_image(folder / "animated.gif").pixels
    # the second frame is plain green (0, 128, 0); the first is the photo
    assert np.abs(pixels.astype(int) - (0, 128, 0)).mean() > 50


def test_cmyk_jpeg_is_adobe_inverted(odd_good_files, photo):
    """Pillow writes CMYK JPEGs the Adobe way (inverted values); read naively, the photo would be a negative."""
    folder, _ = odd_good_files
    with Image.open(folder / "cmyk.jpg") as raw:
        assert raw.mode == "CMYK" and "adobe" in raw.info
    negative = 255 - np.asarray(photo)
    assert mean_abs_diff(load_image(folder / "cmyk.jpg").pixels, negative) > 100


def _png16(width: int, height: int, samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 0, 1, 128, 255 in 8 bits
    path = tmp_path / "g16.png"
    path.write_bytes(_png16(4, 1, values, colour_type=0))
    pixels = load_image(path).pixels
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_16_bit_rgb_png(tmp_path):
    values = np.array([[[65535, 0, 0], [0, 32896, 0], [0, 0, 65535]]], dtype=np.uint16).reshape(1, 9)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png16(3, 1, values, colour_type=2))
    assert load_image(path).pixels[0].tolist() == [[255, 0, 0], [0, 128, 0], [0, 0, 255]]


def test_grey_with_alpha_and_transparent_palette(tmp_path, photo):
    la = photo.convert("LA")
    la.putalpha(0)
    la.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").pixels.min() == 255  # fully transparent: white
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.putpixel((0, 0), 1)
    palette.save(tmp_path / "p.png", transparency=0)
    pixels = load_image(tmp_path / "p.png").pixels
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[3, 3].tolist() == [255, 255, 255]  # transparent black becomes white


def test_real_photos_of_several_kinds(data_root):
    """A grey PGM of the AT&T set, an RGBA PNG and a large JPEG from the shared photos."""
    pgm = load_image(data_root / "att_faces" / "s1" / "1.pgm")
    assert pgm.pixels.shape == (112, 92, 3)
    rgba = data_root / "face_recognition_examples"
    pngs = sorted(rgba.rglob("*.png"))
    assert pngs, "the shared photos should hold an RGBA PNG"
    assert load_image(pngs[0]).pixels.shape[2] == 3
    info = probe_image(data_root / "deepface_unit" / "img40.jpg")
    assert (info.format, info.width, info.height) == ("JPEG", 3061, 4600)


def test_multi_picture_jpeg_gives_its_first_picture(tmp_path):
    """Cameras write MPO (several JPEGs in one file); it is a JPEG to people and decodes at reduced scale."""
    first, second = Image.new("RGB", (1200, 800), (200, 0, 0)), Image.new("RGB", (1200, 800), (0, 0, 200))
    first.save(tmp_path / "stereo.jpg", "MPO", save_all=True, append_images=[second])
    assert probe_image(tmp_path / "stereo.jpg").format == "JPEG"
    loaded = load_image(tmp_path / "stereo.jpg", max_side=300, resize=False)
    assert loaded.pixels.shape == (200, 300, 3)
    assert loaded.pixels.reshape(-1, 3).mean(axis=0) == pytest.approx((200, 0, 0), abs=8)


def test_supported_formats_are_the_documented_ones():
    assert set(SUPPORTED_FORMATS) >= {"JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "PPM", "HEIF"}
