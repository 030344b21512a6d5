"""Safe image reading: identify, verify, orient, reduce and convert to RGB, with specific errors.

Every failure becomes one of the :class:`~faces.media.types.MediaError` subclasses with a message a person
understands. Pillow does the decoding; only the formats faces supports are ever opened (no Ghostscript, no
exotic plugins), and the pixel count is checked from the header before anything is decoded.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
import struct
import warnings
import zlib
from struct import error as struct_error
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

try:
    import cv2
except ImportError:  # a quicker resize only
    cv2 = None

from faces.media.types import (
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    FileAccessError,
    ImageInfo,
    LoadedImage,
    MediaError,
    MissingFileError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)

try:  # HEIC/HEIF from phones
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False)
    _HEIF = True
except ImportError:  # pragma: no cover - pillow-heif is a dependency; without it HEIC gives a clear error
    _HEIF = False

DEFAULT_MAX_PIXELS = 120_000_000  # same default as Settings.max_image_pixels

# Pillow format names that faces opens. A JPEG holding several pictures (many cameras) opens as "MPO".
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "PPM", "HEIF", "AVIF")
_FORMAT_NAMES = {"MPO": "JPEG"}
_open_formats: tuple[str, ...] = ()


def _formats() -> tuple[str, ...]:
    """The supported formats that this Pillow can open (all plugins loaded once)."""
    global _open_formats
    if not _open_formats:
        Image.init()
        _open_formats = tuple(f for f in SUPPORTED_FORMATS if f in Image.OPEN)
    return _open_formats

# Formats without a cheap reduced decode are fully decoded by probe_image up to this many pixels; above it the
# header is trusted and load_image (in a worker) finds any damage.
PROBE_FULL_DECODE_PIXELS = 4_000_000

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Our own limit is checked on every open (with the image's dimensions in the message). Pillow's warning is then
# redundant noise; its hard error (at twice its limit) stays as a second guard and is turned into ours.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Pillow warns about odd EXIF blocks (it then skips them); a photo with broken metadata is still a good photo.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")


def _raise_pillow_limit(max_pixels: int) -> None:
    """Make sure Pillow's own bomb guard never refuses an image that is within our limit."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _megapixels(n: float) -> str:
    return f"{n / 1e6:,.0f}" if n >= 10e6 else f"{n / 1e6:,.1f}"


# ---------------------------------------------------------------------------------------------------------------
# opening


@dataclass
class _Opened:
    image: Image.Image
    handle: io.BufferedReader
    format: str  # Pillow's name, MPO reported as JPEG
    size: int  # bytes
    width: int  # stored (before orientation)
    height: int
    orientation: int  # EXIF orientation still to apply to the decoded pixels (1 for HEIF: libheif applies it)
    file_orientation: int  # the tag as written in the file

    @property
    def upright_size(self) -> tuple[int, int]:
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height

    def close(self) -> None:
        try:
            self.image.close()
        finally:
            self.handle.close()


def _open_handle(path: Path) -> tuple[io.BufferedReader, int]:
    """Open ``path`` for reading; return the handle and the size in bytes. Raises a MediaError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise MissingFileError("the file is not there (moved or deleted?)") from None
    except PermissionError:
        raise FileAccessError("no permission to read this file (or the folder it is in)") from None
    except OSError as exc:
        raise FileAccessError(f"the file cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise NotAnImageError("not an image: this is a folder")
    if not stat.S_ISREG(st.st_mode):
        # opening a FIFO would block, a device could be endless
        raise NotAnImageError("not an image: this is not a regular file (a pipe, socket or device)")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by _Opened.close or on error below
    except FileNotFoundError:
        raise MissingFileError("the file is not there (moved or deleted?)") from None
    except PermissionError:
        raise FileAccessError("no permission to read this file") from None
    except OSError as exc:
        raise FileAccessError(f"the file cannot be read: {exc.strerror or exc}") from None
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        handle.close()
        raise EmptyFileError("the file is empty (0 bytes)")
    return handle, size


def _open(path: Path, max_pixels: int, handle: io.BufferedReader | None = None, size: int = 0) -> _Opened:
    """Identify the image at ``path`` from its header and check its pixel count. Nothing is decoded yet."""
    if handle is None:
        handle, size = _open_handle(path)
    _raise_pillow_limit(max_pixels)
    try:
        handle.seek(0)
        try:
            image = Image.open(handle, formats=_formats())
        except UnidentifiedImageError:
            raise _identify_failure(handle, size) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            handle.seek(0)
            raise _pillow_bomb(exc, max_pixels, handle.read(1 << 16)) from None
        except MediaError:
            raise
        except MemoryError:
            raise DecompressionBombError("the image header asks for more memory than there is") from None
        except Exception as exc:  # noqa: BLE001 - a plugin failing on odd headers: damaged file
            failure = _decode_failure(exc, "header")
            if isinstance(failure, CorruptImageError):
                handle.seek(0)
                short = _cut_short(handle.read(16), size)
                if short:
                    failure = TruncatedImageError(f"the image is truncated: the {short} file is shorter than its "
                                                  f"header says ({size} bytes)")
            raise failure from None
        width, height = image.size
        if width <= 0 or height <= 0:
            image.close()
            raise CorruptImageError(f"the image header is damaged: it declares a size of {width}x{height}")
        if width * height > max_pixels:
            image.close()
            raise DecompressionBombError(
                f"too many pixels: {width}x{height} is over the {_megapixels(max_pixels)} megapixel limit"
            )
        fmt = image.format or "unknown"
        if fmt == "TIFF":  # Pillow 13 reports the TIFF's upright size already; keep the stored one here
            stored = image.tag_v2.get(256), image.tag_v2.get(257)  # ImageWidth, ImageLength
            if all(isinstance(v, int) and v > 0 for v in stored):
                width, height = stored
        file_orientation = _orientation(image)
        # libheif already applies the HEIF transforms (irot/imir); pillow-heif keeps the EXIF value aside.
        if fmt == "HEIF":
            applied = 1
            file_orientation = _valid_orientation(image.info.get("original_orientation")) or file_orientation
        else:
            applied = file_orientation
        return _Opened(image=image, handle=handle, format=_FORMAT_NAMES.get(fmt, fmt), size=size,
                       width=width, height=height, orientation=applied, file_orientation=file_orientation)
    except BaseException:
        handle.close()
        raise


def _pillow_bomb(exc: Exception, max_pixels: int, head: bytes = b"") -> DecompressionBombError:
    size = _header_size(head)
    if size:
        return DecompressionBombError(f"too many pixels: {size[0]}x{size[1]} is over the "
                                      f"{_megapixels(max_pixels)} megapixel limit (a decompression bomb?)")
    match = re.search(r"\((\d+) pixels\)", str(exc))
    if match:
        return DecompressionBombError(
            f"too many pixels: the image declares {_megapixels(int(match[1]))} megapixels, over the "
            f"{_megapixels(max_pixels)} megapixel limit (a decompression bomb?)"
        )
    return DecompressionBombError(
        f"too many pixels: the image is over the {_megapixels(max_pixels)} megapixel limit (a decompression bomb?)"
    )


def _header_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first bytes of a PNG, GIF, BMP or JPEG (for messages only), else None."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith((b"GIF87a", b"GIF89a")):
            return struct.unpack("<HH", head[6:10])
        if head.startswith(b"BM"):
            width, height = struct.unpack("<ii", head[18:26])
            return width, abs(height)
        if head.startswith(b"\xff\xd8"):
            i = 2
            while i + 9 < len(head) and head[i] == 0xFF:
                marker = head[i + 1]
                length = struct.unpack(">H", head[i + 2:i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">HH", head[i + 5:i + 9])
                    return width, height
                i += 2 + length
    except struct_error:
        pass
    return None


_SIGNATURES = (  # formats we support: a file starting like this is one of them, but broken
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_OTHER_FILES = (  # (prefix, offset, what it is)
    (b"%PDF", 0, "a PDF document"),
    (b"%!PS", 0, "a PostScript document"),
    (b"8BPS", 0, "a Photoshop (PSD) file"),
    (b"PK\x03\x04", 0, "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", 0, "a gzip-compressed file"),
    (b"\x1aE\xdf\xa3", 0, "a video (Matroska/WebM)"),
    (b"OggS", 0, "an Ogg audio or video file"),
    (b"ID3", 0, "an MP3 audio file"),
    (b"\x7fELF", 0, "a program (ELF executable)"),
    (b"SQLite format 3\x00", 0, "an SQLite database"),
)


def _cut_short(head: bytes, size: int) -> str:
    """The format name when the file's own header says that it should be longer than ``size`` bytes, else ""."""
    try:
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "WebP" if struct.unpack("<I", head[4:8])[0] + 8 > size else ""
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            offset = struct.unpack("<I" if head[:2] == b"II" else ">I", head[4:8])[0]
            return "TIFF" if offset + 2 > size else ""  # its first directory would lie past the end
    except struct_error:
        pass
    return ""


def _identify_failure(handle: io.BufferedReader, size: int) -> MediaError:
    """Explain why Pillow could not identify the file, from its first bytes."""
    handle.seek(0)
    head = handle.read(4096)
    short = _cut_short(head, size)
    if short:
        return TruncatedImageError(f"the image is truncated: the {short} file is shorter than its header says "
                                   f"({size} bytes)")
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            if len(head) < 64:
                return TruncatedImageError(f"the image is truncated: the {name} file ends inside its header "
                                           f"({size} bytes)")
            return CorruptImageError(f"the {name} header is damaged and cannot be read")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return CorruptImageError("the WebP header is damaged and cannot be read")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            if not _HEIF:
                return UnsupportedFormatError("HEIC/HEIF images need the pillow-heif package, which is missing")
            return CorruptImageError("the HEIC/HEIF file is damaged or cut short and cannot be read")
        return UnsupportedFormatError("unsupported format: this is a video (MP4/QuickTime), not a photo")
    if head[:4] == b"RIFF":
        return UnsupportedFormatError(f"unsupported format: this is a RIFF {head[8:12].decode('latin-1').strip()} "
                                      "file (audio or video), not a photo")
    for prefix, offset, what in _OTHER_FILES:
        if head[offset:offset + len(prefix)] == prefix:
            return UnsupportedFormatError(f"unsupported format: this is {what}, not a photo")
    other = _other_image_format(handle)
    if other:
        return UnsupportedFormatError(f"unsupported image format: {other} (faces reads JPEG, PNG, WebP, GIF, TIFF, "
                                      "BMP, HEIC/HEIF and PGM/PPM)")
    text = _as_text(head)
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if "<svg" in lowered[:1000]:
            return UnsupportedFormatError("unsupported format: this is an SVG drawing (vector graphics), not a photo")
        if lowered.startswith(("<!doctype html", "<html")) or "<html" in lowered[:1000]:
            return NotAnImageError("not an image: the file is a web page (HTML text), perhaps a failed download")
        return NotAnImageError("not an image: the file starts with text")
    return NotAnImageError("not an image: the content is not in any known image format")


def _other_image_format(handle: io.BufferedReader) -> str:
    """The name of an image format that Pillow knows but faces does not read (PSD, ICO...), or ""."""
    handle.seek(0)
    try:
        with Image.open(handle) as other:  # header only: nothing is decoded, no external program runs
            return f"{other.format} ({other.format_description})" if other.format else ""
    except Exception:  # noqa: BLE001 - anything unidentifiable is simply not an image
        return ""


def _as_text(head: bytes) -> str | None:
    """``head`` as text when it looks like text (UTF-8 or Latin-1, printable), else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte order mark
        try:
            text = head[: len(head) // 2 * 2].decode("utf-16")
        except UnicodeDecodeError:
            return None
    elif b"\x00" in head:
        return None
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # a character cut by the 4096-byte window
                text = head[:exc.start].decode("utf-8")
            else:
                text = head.decode("latin-1")
    if not text:
        return None
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return text if printable / len(text) > 0.95 else None


def _decode_failure(exc: BaseException, part: str = "image data") -> MediaError:
    """Turn an exception raised while decoding into a specific MediaError. ``part``: what was being read."""
    if isinstance(exc, MediaError):
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _pillow_bomb(exc, Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS)
    if isinstance(exc, MemoryError):
        return MediaError("there was not enough memory to decode this image")
    detail = _plain(str(exc) or type(exc).__name__)
    lowered = detail.lower()
    if "decompressed data too large" in lowered:  # PNG text/ICC chunk bombs
        return DecompressionBombError("too much data: a compressed part of this PNG unpacks to too many bytes "
                                      "(a decompression bomb?)")
    if isinstance(exc, EOFError) or any(word in lowered for word in (
            "truncated", "end of file", "unexpected end", "premature end", "not enough data", "end of data")):
        extra = "" if "truncated" in lowered else f" ({detail})"
        return TruncatedImageError(f"the image is truncated: the file ends before its {part} is complete{extra}")
    if "checksum" in lowered or "crc" in lowered:
        return CorruptImageError(f"the image is damaged: a checksum in its {part} does not match ({detail})")
    if isinstance(exc, (OSError, SyntaxError, ValueError, IndexError, KeyError, TypeError, RuntimeError,
                        struct_error, zlib.error)):
        return CorruptImageError(f"the image is damaged: its {part} cannot be decoded ({detail})")
    return MediaError(f"the image cannot be read ({detail})")


def _plain(text: str) -> str:
    """Pillow's message without its internal advice, short."""
    text = text.split("; ")[0].strip().rstrip(".")
    return text[:200]


# ---------------------------------------------------------------------------------------------------------------
# EXIF


def _valid_orientation(value) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 0
    return value if 1 <= value <= 8 else 0


def _exif(image: Image.Image) -> Image.Exif | None:
    # The base implementation reads the header only; PngImageFile.getexif would decode the whole PNG.
    try:
        return Image.Image.getexif(image)
    except Exception:  # noqa: BLE001 - broken EXIF does not make a broken photo
        return None


def _orientation(image: Image.Image) -> int:
    exif = _exif(image)
    if exif is None:
        return 1
    return _valid_orientation(exif.get(ExifTags.Base.Orientation)) or 1


_DATE = re.compile(r"\s*(\d{4})[:\-/. ](\d{1,2})[:\-/. ](\d{1,2})(?:[ T]+(\d{1,2})[:.](\d{1,2})(?:[:.](\d{1,2}))?)?")


def parse_exif_date(value) -> datetime | None:
    """An EXIF date ("2019:07:14 16:03:22", a few common variants) as a naive datetime; None for garbage."""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip("\x00 "))
    if not match:
        return None
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = (int(match[i]) if match[i] else 0 for i in (4, 5, 6))
    if year < 1826:  # before the first photograph: an unset clock ("0000:00:00") or garbage
        return None
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def _taken_at(image: Image.Image) -> datetime | None:
    exif = _exif(image)
    if exif is None:
        return None
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001
        sub = {}
    for value in (sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.DateTimeDigitized),
                  exif.get(ExifTags.Base.DateTime)):
        parsed = parse_exif_date(value)
        if parsed is not None:
            return parsed
    return None


# ---------------------------------------------------------------------------------------------------------------
# decoding


def _decode(opened: _Opened, draft_size: tuple[int, int] | None = None, grey: bool = False) -> Image.Image:
    """Decode the pixels (at reduced DCT scale for JPEG when ``draft_size`` is given). Raises a MediaError.

    ``grey`` lets libjpeg skip the colour conversion (enough for checking that the file decodes).
    """
    image = opened.image
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone in this process switched Pillow's check off
        raise MediaError("cannot check for truncated images: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set")
    try:
        if draft_size is not None and opened.format == "JPEG":
            image.draft("L" if grey else "RGB", draft_size)
        image.load()
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a MediaError
        raise _decode_failure(exc) from None
    return image


def _verify_png(opened: _Opened, reopen: bool = False) -> None:
    """Read every PNG chunk and check its CRC (no inflating): finds truncation and damage cheaply.

    ``verify`` uses up the Pillow image; with ``reopen`` a fresh one replaces it for decoding.
    """
    try:
        opened.image.verify()
    except Exception as exc:  # noqa: BLE001
        raise _decode_failure(exc, "PNG data") from None
    if reopen:  # (closing the used-up image would close our file handle too)
        opened.handle.seek(0)
        try:
            opened.image = Image.open(opened.handle, formats=("PNG",))
        except Exception as exc:  # noqa: BLE001 - the file changed between the two reads
            raise _decode_failure(exc, "header") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB: alpha composited on white, 16-bit scaled, CMYK through its ICC."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if mode == "CMYK":
        icc = image.info.get("icc_profile")
        if icc:
            try:
                from PIL import ImageCms

                return ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                                 ImageCms.createProfile("sRGB"), outputMode="RGB")
            except Exception:  # noqa: BLE001 - a broken profile: fall back to the plain conversion
                pass
        return image.convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image)
        if mode == "F":
            top = float(values.max()) if values.size else 1.0
            values = values * (255.0 if top <= 1.0 else 1.0)
        elif mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values.astype(np.float32) / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise UnsupportedFormatError(f"unsupported colour mode {mode}: it cannot be converted to RGB") from None


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` (RGB) reduced to ``size``.

    Less than 2x smaller, which a JPEG decoded at a reduced DCT scale always is: OpenCV's bilinear, 4x faster than
    Pillow's antialiased one (20 ms on a 2500x1728 photo) and, on the photos of benchmarks/scan.py, the same faces
    found. Otherwise (a big PNG, say) Pillow's bilinear with antialiasing, which averages every pixel.
    """
    if cv2 is not None and image.mode == "RGB" and image.width < 2 * size[0] and image.height < 2 * size[1]:
        return Image.fromarray(cv2.resize(np.asarray(image), size, interpolation=cv2.INTER_LINEAR))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _reduced_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def _path(path) -> Path:
    return Path(os.fspath(path))


# ---------------------------------------------------------------------------------------------------------------
# public


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file's bytes. Raises a MediaError when the file cannot be read."""
    handle, _size = _open_handle(_path(path))
    with handle:
        return _hash_handle(handle)


def _hash_handle(handle: io.BufferedReader) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    try:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    except OSError as exc:
        raise FileAccessError(f"the file cannot be read: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _ends_with_eoi(handle: io.BufferedReader, size: int) -> bool:
    """Whether the JPEG file of ``handle`` ends with the end-of-image marker (FF D9)."""
    try:
        handle.seek(size - 2)
        return handle.read(2) == b"\xff\xd9"
    except OSError:
        return False


def probe_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Facts about the image at ``path`` (hash, bytes, format, upright size, orientation, date taken).

    The file is checked to be a readable image without decoding it at full resolution: a JPEG that ends with
    its end-of-image marker is whole (a file cut short cannot end with it: those two bytes never occur inside
    the compressed data), any other JPEG is decoded at 1/8 scale (every compressed byte is still read, so
    truncation shows); a PNG has its chunks and CRCs checked, other formats up to
    :data:`PROBE_FULL_DECODE_PIXELS` are decoded. Damage inside a whole file shows when a worker decodes it.

    Args:
        path: the image file.
        max_pixels: decompression-bomb limit (width x height from the header).
    Returns:
        An :class:`ImageInfo`.
    Raises:
        MediaError: a subclass saying what is wrong (empty, not an image, truncated, too many pixels, ...).
    """
    path = _path(path)
    handle, size = _open_handle(path)
    try:
        digest = _hash_handle(handle)
    except BaseException:
        handle.close()
        raise
    opened = _open(path, max_pixels, handle, size)
    try:
        width, height = opened.upright_size
        taken_at = _taken_at(opened.image)
        if opened.format == "JPEG":
            if not _ends_with_eoi(opened.handle, size):
                _decode(opened, (1, 1), grey=True)  # smallest DCT scale (1/8)
        elif opened.format == "PNG":
            _verify_png(opened)
        elif opened.width * opened.height <= PROBE_FULL_DECODE_PIXELS:
            _decode(opened)
        return ImageInfo(path=path, content_hash=digest, bytes=size, width=width, height=height,
                         format=opened.format, orientation=opened.file_orientation, taken_at=taken_at)
    finally:
        opened.close()


def load_image(path: str | os.PathLike, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               *, resize: bool = True) -> LoadedImage:
    """Decode the image at ``path`` into upright RGB pixels, reduced so that its longest side is at most ``max_side``.

    A JPEG larger than ``max_side`` is decoded at a reduced DCT scale (1/2, 1/4 or 1/8: never smaller than
    needed), then resized down to ``max_side`` (unless ``resize`` is false). Other formats are decoded in full
    and resized. The EXIF orientation is applied; every colour mode is converted to RGB.

    Args:
        path: the image file.
        max_side: longest side wanted, in pixels; None for full resolution.
        max_pixels: decompression-bomb limit (width x height from the header, before decoding).
        resize: resize down to exactly ``max_side`` after the reduced decode.
    Returns:
        A :class:`LoadedImage`; ``scale`` maps its pixels back to full-resolution upright coordinates.
    Raises:
        MediaError: a subclass saying what is wrong.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1 (or None), got {max_side}")
    path = _path(path)
    opened = _open(path, max_pixels)
    try:
        return _load_opened(opened, max_side, resize=resize)
    finally:
        opened.close()


def _load_opened(opened: _Opened, max_side: int | None, *, resize: bool = True) -> LoadedImage:
    full_width, full_height = opened.upright_size
    draft = None
    if max_side and max(opened.width, opened.height) > max_side:
        factor = max_side / max(opened.width, opened.height)
        draft = (max(1, math.ceil(opened.width * factor)), max(1, math.ceil(opened.height * factor)))
    if opened.format == "PNG":
        _verify_png(opened, reopen=True)
    image = _decode(opened, draft)
    orientation = opened.orientation
    if opened.format == "TIFF" and ExifTags.Base.Orientation not in getattr(image, "tag_v2", {}):
        orientation = 1  # this Pillow turned the TIFF upright while loading it (and dropped the tag)
    try:
        image = _to_rgb(image)
        if resize and max_side and max(image.size) > max_side:  # (before turning: fewer pixels to move)
            image = _resized(image, _reduced_size(*image.size, max_side))
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            image = image.transpose(method)
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _decode_failure(exc) from None
    pixels = np.array(image, dtype=np.uint8)  # a writable, C-contiguous copy
    if pixels.ndim != 3 or pixels.shape[2] != 3:  # pragma: no cover - _to_rgb guarantees RGB
        raise MediaError(f"decoding gave an unexpected pixel layout {pixels.shape}")
    scale = full_width / pixels.shape[1]
    return LoadedImage(pixels=pixels, scale=scale, full_width=full_width, full_height=full_height)

