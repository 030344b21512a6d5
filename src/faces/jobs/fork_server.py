"""Imported by the detection workers' fork server (see :func:`faces.jobs.worker_preload`): it ends without the
interpreter's teardown (:mod:`faces.quick_exit`). The fork server holds the standard streams of ``faces scan``,
and a caller reading them to their end would wait for that teardown.

Imported anywhere else (a test run, a tool listing modules), it does nothing: a process ended through it ends
with status 0, which would hide that process's own exit status.
"""

import sys
from multiprocessing import forkserver

from faces.quick_exit import arm


def _importing_in_fork_server() -> bool:
    """Whether this import runs inside ``multiprocessing.forkserver.main`` (its preloading)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


if _importing_in_fork_server():
    # The fork server ends when its parent is gone, with nothing of its own to close. (The exit handlers that
    # multiprocessing and logging registered before this have nothing to do here, and are skipped.)
    arm()(0)
