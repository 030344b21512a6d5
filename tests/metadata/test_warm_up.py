"""faces scan gets exiftool ready while it adds the files (faces.metadata.subscribers.warm_up): only when one of the
files may hold face regions and reading them is on."""

from __future__ import annotations

import pytest

from faces.metadata import subscribers
from tests.metadata.conftest import GROUP_PHOTO

WITH_REGIONS = "wikimedia_commons_people/bildes/Abstract_Wikipedia_Team_-_Group_photo,_2022-05-12.jpg"  # MWG faces


@pytest.fixture(autouse=True)
def _no_shared_exiftool():
    subscribers.close_shared()
    yield
    subscribers.close_shared()


def _running() -> bool:
    tool = subscribers._shared["tool"]
    return tool is not None and tool.pid is not None


def test_a_file_with_regions_starts_exiftool(photo, settings):
    thread = subscribers.warm_up([photo(GROUP_PHOTO), photo(WITH_REGIONS)], settings)
    thread.join(timeout=30)
    assert _running()


def test_files_without_regions_leave_exiftool_stopped(photo, settings):
    folder = photo(GROUP_PHOTO).parent
    thread = subscribers.warm_up([folder], settings)
    thread.join(timeout=30)
    assert not _running()


def test_nothing_happens_when_regions_are_not_read(photo, settings):
    settings.metadata.read_regions = False
    assert subscribers.warm_up([photo(WITH_REGIONS)], settings) is None
    assert not _running()
