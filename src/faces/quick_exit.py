"""Ending a process without the interpreter's teardown.

When Python ends a process it waits for the threads, runs the exit handlers, and then tears down every module
and object: 0.03 to 0.05 s in a process that imported SQLAlchemy, cv2 or onnxruntime, and of no use by then
(the files are closed, the database work is committed). Whoever reads the process's standard streams to their
end waits for it: a script running ``faces scan --json``, which also waits for the detection workers' fork
server, which holds the same streams. Those two processes :func:`arm` this module: they end with ``os._exit``
after every other exit handler has run.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable


def arm(before: Callable[[], None] | None = None) -> Callable[[object], None]:
    """Register the quick end. Call this before anything else registers an exit handler: it then runs last.

    Returns ``finish(code)``, to be called with the code of the ``SystemExit`` that ends the program (an int,
    None for 0, anything else for 1, as Python does). Only a finished program ends early: after ``before()``
    (e.g. closing the database connections) and flushing the standard streams, with that code. A program ended
    by an uncaught exception ends the usual way.
    """
    status: list[int] = []

    def finish(code: object) -> None:
        status[:] = [code if isinstance(code, int) else 0 if code is None else 1]

    def leave() -> None:
        if not status:
            return
        try:
            if before is not None:
                before()
        except Exception as exc:  # noqa: BLE001 - said, and the process still ends with its own code
            sys.stderr.write(f"faces: while closing: {type(exc).__name__}: {exc}\n")
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed, or a reader that went away
                pass
        os._exit(status[0])

    atexit.register(leave)
    return finish
