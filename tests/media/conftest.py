"""Fixtures for the media tests: the real photo the corpora are made from, and the generated corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.badfiles import make_bad_files, make_odd_good_files


@pytest.fixture(scope="session")
def photo(data_root) -> Image.Image:
    """``public_domain_faces/astronaut.png`` (512x512, one face) as RGB."""
    with Image.open(data_root / "public_domain_faces" / "astronaut.png") as image:
        return image.convert("RGB")


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("bad")
    return folder, make_bad_files(folder)


@pytest.fixture(scope="session")
def odd_good_files(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("good")
    return folder, make_odd_good_files(folder)

