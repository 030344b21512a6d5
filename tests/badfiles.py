"""Generated test corpora: files that must fail with a specific error, and odd files that must work.

``make_bad_files(folder)`` writes the bad ones and returns ``{file name: expected MediaError code}``;
``make_odd_good_files(folder)`` writes unusual but valid photos (made from a real photo) and returns
``{file name: what it is}``. Both are used by the media tests and by the scan tests of the pipeline.

Unreadable permissions: ``chmod 000`` does not stop root (tests run as root here). As root, ``unreadable.jpg``
is a symbolic link to a write-only kernel setting (``/proc/sys/vm/compact_memory``), which root genuinely cannot
open for reading (EACCES); as any other user it is a photo with ``chmod 000``. When neither works, the file is
left out and :data:`LEFT_OUT` says why.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE_PHOTO = ROOT.parent / "shared" / "data" / "public_domain_faces" / "astronaut.png"

# file name -> reason, for bad files that this machine cannot produce
LEFT_OUT: dict[str, str] = {}

_ROOT_UNREADABLE = ("/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches")


def source_photo(path: Path = SOURCE_PHOTO) -> Image.Image:
    """The real photo the corpora are made from (RGB)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def _jpeg_bytes(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header declaring ``width`` x ``height`` 8-bit grey pixels, with one row of data.

    Decoding it in full would need width x height bytes: the shape of a decompression bomb.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" + b"\x00" * width, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with the size in its frame header (SOF0/SOF2) replaced by ``width`` x ``height``."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            raise ValueError("not a JPEG marker sequence")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        i += 2 + length
    raise ValueError("no frame header found")


def _root_unreadable_target() -> str | None:
    for target in _ROOT_UNREADABLE:
        try:
            with open(target, "rb"):
                pass
        except PermissionError:
            return target
        except OSError:
            continue
    return None


def _make_unreadable(path: Path, content: bytes) -> bool:
    """Make ``path`` a file that this process cannot read. False when that is impossible here."""
    if path.is_symlink() or path.exists():
        path.unlink()
    if os.geteuid() != 0:
        path.write_bytes(content)
        path.chmod(0)
        try:
            with path.open("rb"):
                pass
        except PermissionError:
            return True
        path.unlink()
        LEFT_OUT[path.name] = "chmod 000 did not stop this user from reading the file"
        return False
    target = _root_unreadable_target()
    if target is None:
        LEFT_OUT[path.name] = ("running as root, where chmod 000 does not stop reading, and no write-only "
                               "kernel setting is available to link to")
        return False
    path.symlink_to(target)
    return True


def make_bad_files(folder: str | os.PathLike) -> dict[str, str]:
    """Write files that faces must refuse, each with its own reason, into ``folder``.

    Returns:
        ``{file name: expected MediaError code}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photo = source_photo()
    jpeg = _jpeg_bytes(photo)
    expected: dict[str, str] = {}

    def write(name: str, data: bytes, code: str) -> None:
        (folder / name).write_bytes(data)
        expected[name] = code

    write("empty.jpg", b"", "empty")
    write("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated")
    write("text.jpg", b"These are my holiday notes, not a photo.\nDay 1: the beach.\n" * 20, "not_an_image")
    write("page.png", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
                      b"<body><h1>Not Found</h1></body></html>\n", "not_an_image")
    write("random.png", np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes(), "not_an_image")
    write("bomb.png", png_declaring(40_000, 40_000), "too_many_pixels")
    write("huge.jpg", jpeg_declaring(jpeg, 60_000, 50_000), "too_many_pixels")
    write("document.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "unsupported_format")
    png = io.BytesIO()
    photo.save(png, "PNG")
    damaged = bytearray(png.getvalue())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte inside the image data: its CRC no longer matches
    write("damaged.png", bytes(damaged), "corrupt")
    if _make_unreadable(folder / "unreadable.jpg", jpeg):
        expected["unreadable.jpg"] = "no_access"
    return expected


def make_odd_good_files(folder: str | os.PathLike) -> dict[str, str]:
    """Write valid photos in unusual formats and modes, all made from one real photo with one face.

    Returns:
        ``{file name: what it is}``. Every one must decode to the upright photo (within compression loss).
    """
    from faces.media.reading import _HEIF  # HEIC needs pillow-heif's encoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photo = source_photo()
    made: dict[str, str] = {}

    def save(name: str, image: Image.Image, what: str, **options) -> None:
        image.save(folder / name, **options)
        made[name] = what

    save("cmyk.jpg", photo.convert("CMYK"), "CMYK JPEG (Adobe, inverted)", quality=92)
    grey16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    save("grey16.png", Image.fromarray(grey16), "16-bit grey PNG")  # uint16 array: mode I;16
    paletted = photo.convert("P", palette=Image.Palette.ADAPTIVE)
    second = Image.new("RGB", photo.size, (0, 128, 0))
    frames = [paletted, second.convert("P")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=200, loop=0)
    made["animated.gif"] = "animated GIF (the first frame is the photo)"
    rgba = photo.convert("RGBA")
    alpha = np.full(photo.size[::-1], 255, dtype=np.uint8)
    alpha[:, : photo.width // 8] = 0  # a transparent strip on the left
    rgba.putalpha(Image.fromarray(alpha, "L"))
    save("rgba.png", rgba, "RGBA PNG with a transparent strip")
    save("palette.png", paletted, "palette PNG")
    save("grey.pgm", photo.convert("L"), "grey PGM")
    save("photo.tif", photo, "TIFF (LZW)", compression="tiff_lzw")
    save("photo.bmp", photo, "BMP")
    save("photo.webp", photo, "WebP", quality=90)
    save("progressive.jpg", photo, "progressive JPEG", quality=90, progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the viewer rotates it 90 degrees clockwise
    save("rotated.jpg", photo.transpose(Image.Transpose.ROTATE_90), "JPEG stored on its side, EXIF orientation 6",
         quality=90, exif=exif.tobytes())
    if _HEIF:
        save("photo.heic", photo, "HEIC (as phones write)", quality=90, enc_params={"preset": "ultrafast"})
    return made
