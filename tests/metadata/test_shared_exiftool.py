"""The process's shared exiftool (faces.metadata.subscribers): warmed up by faces scan while it adds the files, only
when one of them may hold face regions and reading them is on; alive as long as the process, whichever thread
started it; and started again when it dies in the middle of a command."""

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


def test_a_killed_exiftool_ends_its_command_with_an_error_and_the_next_command_gets_a_new_one():
    """exiftool killed in the middle of a command (out of memory, say): the command fails at once instead of
    reading the dead pipe forever, and the next user of the shared exiftool gets a fresh one."""
    import os
    import signal
    import threading

    from faces.metadata.exiftool import ExifToolDied

    outcome: list[BaseException | str] = []

    def long_command() -> None:
        try:
            with subscribers.shared_exiftool() as tool:
                threading.Timer(0.3, os.kill, (tool.pid, signal.SIGKILL)).start()
                tool.run("-r", "-j", "-fast2", "/usr")  # reads thousands of files: still running when killed
            outcome.append("finished")
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            outcome.append(exc)

    worker = threading.Thread(target=long_command, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the command hangs on a dead exiftool"
    assert isinstance(outcome[0], ExifToolDied)
    with subscribers.shared_exiftool() as tool:
        assert tool.run("-ver").stdout.strip()[:2].isdigit()
