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


def test_the_shared_exiftool_outlives_the_thread_that_started_it():
    """pyexiftool has Linux stop exiftool when the thread that started it ends; a web worker thread or the scan's
    warm-up thread ends, and the next user of the shared exiftool must still find it running."""
    import threading
    import time

    started: list[int] = []

    def first_user() -> None:
        with subscribers.shared_exiftool() as tool:
            tool.run("-ver")
            started.append(tool.pid)

    thread = threading.Thread(target=first_user)
    thread.start()
    thread.join(timeout=30)
    time.sleep(0.5)  # time for a signal to arrive
    answers: list[str] = []

    def second_user() -> None:
        with subscribers.shared_exiftool() as tool:
            answers.append(tool.run("-ver").stdout.strip())
            answers.append(tool.pid)

    later = threading.Thread(target=second_user, daemon=True)
    later.start()
    later.join(timeout=30)
    assert not later.is_alive(), "the shared exiftool hangs"
    assert answers and answers[0][:2].isdigit()
    assert answers[1] == started[0]  # the same process, not one started again
