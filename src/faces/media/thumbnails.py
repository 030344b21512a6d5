"""Thumbnails of photos and faces, and their small on-disk cache under ``<data_dir>/thumbs/``.

Layout (all JPEG, readable by the server's user only)::

    thumbs/<hash[:2]>/<hash>/<kind>-<size>.jpg     photo thumbnails, one folder per image content hash
    thumbs/faces/<face key>/<x>_<y>_<w>_<h>-<size>.jpg   face crops, one folder per face

Deleting an image removes its folder (:func:`remove_thumbnails`); deleting faces removes theirs
(:func:`remove_face_thumbnails`); nothing else is kept about them.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from faces.media.reading import DEFAULT_MAX_PIXELS, _load_opened, _open, _path, load_image

JPEG_QUALITY = 85
FACE_MARGIN = 0.4  # space around the face box on each side, as a share of the box's longest side

_HASH = re.compile(r"[0-9a-f]{16,128}")
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_FACE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def make_thumbnail(path: str | os.PathLike, max_side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A JPEG of the upright photo whose longest side is at most ``max_side`` (never enlarged).

    JPEGs are decoded at reduced DCT scale, so a thumbnail of a 12 MP photo costs a fraction of a full decode.
    Raises a MediaError when the file cannot be read.
    """
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    loaded = load_image(path, max_side=max_side, max_pixels=max_pixels)
    return _jpeg(Image.fromarray(loaded.pixels, "RGB"))


def face_crop_box(box: tuple[int, int, int, int], width: int, height: int,
                  margin: float = FACE_MARGIN) -> tuple[int, int, int, int]:
    """The square ``(x, y, side, side)`` around face ``box`` with ``margin``, kept inside a width x height image.

    The square is centred on the face and shifted (not squeezed) where it would leave the image; it is
    only made smaller than wanted when the image itself is smaller.
    """
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"a face box needs a positive width and height, got {box}")
    side = max(w, h) * (1 + 2 * margin)
    side = max(1, min(round(side), width, height))
    cx, cy = x + w / 2, y + h / 2
    left = min(max(0, round(cx - side / 2)), width - side)
    top = min(max(0, round(cy - side / 2)), height - side)
    return left, top, side, side


def face_thumbnail(path: str | os.PathLike, box: tuple[int, int, int, int], size: int,
                   margin: float = FACE_MARGIN, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A ``size`` x ``size`` JPEG of the face at ``box`` (``[x, y, w, h]`` in full-resolution upright pixels).

    The photo is decoded only as large as the crop needs (reduced DCT scale for JPEGs).
    Raises a MediaError when the file cannot be read, ValueError for an empty box.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    opened = _open(_path(path), max_pixels)
    try:
        full_w, full_h = opened.upright_size
        left, top, side, _ = face_crop_box(tuple(int(v) for v in box), full_w, full_h, margin)
        # decode so that the crop still has at least `size` pixels
        max_side = math.ceil(max(full_w, full_h) * size / side)
        loaded = _load_opened(opened, max_side if max_side < max(full_w, full_h) else None)
    finally:
        opened.close()
    s = loaded.scale
    image = Image.fromarray(loaded.pixels, "RGB")
    crop = image.crop((round(left / s), round(top / s), round((left + side) / s), round((top + side) / s)))
    crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    return _jpeg(crop)


# ---------------------------------------------------------------------------------------------------------------
# cache


def _data_dir(data_dir) -> Path:
    """``data_dir`` as a Path; a Settings object (anything with ``.data_dir``) is accepted too."""
    return Path(getattr(data_dir, "data_dir", data_dir))


def _check_hash(content_hash: str) -> str:
    if not isinstance(content_hash, str) or not _HASH.fullmatch(content_hash):
        raise ValueError("content_hash must be a lower-case hex digest")
    return content_hash


def thumbnail_cache_path(data_dir, content_hash: str, kind: str, size: int) -> Path:
    """Where the ``kind`` thumbnail (e.g. ``"photo"``) of ``size`` pixels of an image is cached.

    ``content_hash`` and ``kind`` are checked (hex digest; lower-case letters, digits, ``-`` and ``_``) so
    that no value can point outside ``<data_dir>/thumbs/``.
    """
    _check_hash(content_hash)
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError("kind must be lower-case letters, digits, '-' or '_'")
    if int(size) < 1:
        raise ValueError("size must be at least 1")
    return _data_dir(data_dir) / "thumbs" / content_hash[:2] / content_hash / f"{kind}-{int(size)}.jpg"


def face_thumbnail_cache_path(data_dir, face_key: int | str, box: tuple[int, int, int, int], size: int) -> Path:
    """Where the crop of face ``face_key`` (its id or uuid) at ``box`` and ``size`` pixels is cached.

    The box is part of the name, so a face whose box changed (re-detection) gets a new crop.
    """
    key = str(face_key)
    if not _FACE_KEY.fullmatch(key):
        raise ValueError("face_key must be letters, digits, '-' or '_'")
    x, y, w, h = (int(v) for v in box)
    if int(size) < 1:
        raise ValueError("size must be at least 1")
    return _data_dir(data_dir) / "thumbs" / "faces" / key / f"{x}_{y}_{w}_{h}-{int(size)}.jpg"


def _write_atomic(data_dir, target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that readers see either nothing or the whole file."""
    (_data_dir(data_dir) / "thumbs").mkdir(mode=0o700, parents=True, exist_ok=True)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jpg", dir=target.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _read_cached(target: Path) -> bytes | None:
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None


def cached_thumbnail(data_dir, path: str | os.PathLike, content_hash: str, max_side: int,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The photo thumbnail (JPEG, longest side ``max_side``) of the image with ``content_hash`` at ``path``.

    Made with :func:`make_thumbnail` on first use and kept in the cache. Raises a MediaError when the
    file cannot be read (nothing is cached then).
    """
    target = thumbnail_cache_path(data_dir, content_hash, "photo", max_side)
    data = _read_cached(target)
    if data is None:
        data = make_thumbnail(path, max_side, max_pixels=max_pixels)
        _write_atomic(data_dir, target, data)
    return data


def cached_face_thumbnail(data_dir, path: str | os.PathLike, face_key: int | str,
                          box: tuple[int, int, int, int], size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The square crop (JPEG, ``size`` pixels) of face ``face_key`` at ``box`` in the image at ``path``, cached."""
    target = face_thumbnail_cache_path(data_dir, face_key, box, size)
    data = _read_cached(target)
    if data is None:
        data = face_thumbnail(path, box, size, max_pixels=max_pixels)
        _write_atomic(data_dir, target, data)
    return data


def _remove_tree(folder: Path) -> int:
    """Delete ``folder`` and everything in it; return the number of files removed (0 when absent)."""
    if not folder.is_dir():
        return 0
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:  # removed meanwhile by another request
        pass
    return count


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (another image shares the prefix) or already gone
        pass


def remove_thumbnails(data_dir, content_hash: str) -> int:
    """Delete every cached thumbnail of the image with ``content_hash``; returns how many files went.

    Call it after the image row is gone, so that no request makes a new one meanwhile.
    """
    folder = thumbnail_cache_path(data_dir, content_hash, "photo", 1).parent
    count = _remove_tree(folder)
    _remove_if_empty(folder.parent)
    return count


def remove_face_thumbnails(data_dir, face_keys: Iterable[int | str]) -> int:
    """Delete the cached crops of the faces ``face_keys`` (ids or uuids); returns how many files went."""
    count = 0
    for key in face_keys:
        folder = face_thumbnail_cache_path(data_dir, key, (0, 0, 1, 1), 1).parent
        count += _remove_tree(folder)
    return count


def remove_all_thumbnails(data_dir) -> int:
    """Delete the whole thumbnail cache (``<data_dir>/thumbs``); returns how many files went."""
    return _remove_tree(_data_dir(data_dir) / "thumbs")
