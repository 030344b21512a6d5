"""Finding the image files under the paths that a person names."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".pgm", ".ppm",
})

# Folders of thumbnails that NAS systems and archivers put next to photos: never photos of their own.
SKIPPED_FOLDERS = frozenset({"@eaDir", "__MACOSX", "#recycle", "#snapshot"})


def is_image_name(name: str) -> bool:
    """True when ``name`` has one of the known image extensions (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def find_image_files(paths: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """The image files named by ``paths``, sorted and without duplicates.

    A file given explicitly is always included, whatever its name (so that a text file named ``.jpg`` gets
    its error). A folder is walked recursively for files with a known image extension (case-insensitive),
    skipping hidden files and folders (names starting with a dot), NAS thumbnail folders (``@eaDir``...) and
    the folders in ``exclude`` (e.g. the data directory with its thumbnails). Symbolic links to folders are
    not followed (no loops); links to files are listed.

    Args:
        paths: files and folders.
        exclude: folders not to walk into.
    Returns:
        Absolute paths (symbolic links kept as given, not resolved).
    Raises:
        FileNotFoundError: a path does not exist.
    """
    excluded = {_absolute(p) for p in exclude}
    found: set[Path] = set()
    for given in paths:
        path = _absolute(given)
        if path.is_dir():
            found.update(_walk(path, excluded))
        elif path.exists() or path.is_symlink():
            found.add(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {given}")
    return sorted(found, key=lambda p: str(p))


def _walk(folder: Path, excluded: set[Path]) -> Iterable[Path]:
    if folder in excluded:
        return
    for root, dirs, files in os.walk(folder, onerror=None):
        root_path = Path(root)
        dirs[:] = [d for d in dirs
                   if not d.startswith(".") and d not in SKIPPED_FOLDERS and root_path / d not in excluded]
        for name in files:
            if not name.startswith(".") and is_image_name(name):
                yield root_path / name


def _absolute(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
