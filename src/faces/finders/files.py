"""Locating and verifying the model files that finders load from installed packages."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from faces.finders.base import ModelFile


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, or "" when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def package_dir(module: str) -> Path | None:
    """The folder of an importable package ``module`` without importing it, or None when absent."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(name: str, path: Path | None, expected_sha256: str | None = None) -> ModelFile:
    """Describe model file ``name`` at ``path``: present, its size, and whether its SHA-256 is the expected one."""
    if path is None or not path.is_file():
        return ModelFile(name=name, path=str(path or ""), ok=False, problem="file not found")
    sha = file_sha256(path)
    ok = expected_sha256 is None or sha == expected_sha256
    return ModelFile(name=name, path=str(path), size=path.stat().st_size, sha256=sha, ok=ok,
                     problem="" if ok else f"SHA-256 is {sha}, expected {expected_sha256}")
