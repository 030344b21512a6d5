"""The ``faces`` command line. Thin: parse, call the packages, print. Each group of commands lives in its
own module with a ``register(app)`` function; :mod:`faces.cli.commands` puts them together.

This package imports nothing heavy itself: the console script (``from faces.cli import main``) is also run
again, without calling ``main``, by every detection worker process that multiprocessing starts, and those
need none of the command line (Typer, SQLAlchemy...).
"""

from __future__ import annotations

import gc
import sys
from typing import Any


def main() -> None:
    """Console-script entry point."""
    finish = None
    if _command(sys.argv[1:]) == "scan":
        from faces.quick_exit import arm

        # A scan's caller waits for its end: it skips the interpreter's teardown (armed first, so that every
        # other exit handler runs before). Its only database connections are the command's store's.
        finish = arm(before=_close)
        # its detection workers fork from a server that imports cv2, onnxruntime... and makes the models of the
        # finders named by --finders (default: all) meanwhile
        from faces.jobs import worker_preload
        from faces.jobs.executor import start_fork_server

        start_fork_server(worker_preload(_finders_option(sys.argv[1:])))
    gc.disable()  # importing the commands makes many objects and hardly any garbage: no collection meanwhile
    try:
        from faces.cli.commands import app
    finally:
        gc.enable()
    # The modules imported so far live as long as the process: the garbage collector need not walk them again
    # on every full collection (a scan's database writes trigger many).
    gc.freeze()
    try:
        app()  # Typer ends with SystemExit, also on success
    except SystemExit as done:
        if finish is not None:
            finish(done.code)
        raise


def _close() -> None:
    """What the command opened and the interpreter's teardown would close: the database connections."""
    from faces.cli import context

    context.close()


def _command(args: list[str]) -> str | None:
    """The command named in command-line ``args`` (after the global options), None when there is none."""
    at = 0
    while at < len(args):
        if args[at] in ("--data-dir", "--user"):
            at += 2
        elif args[at].startswith("-"):
            at += 1
        else:
            return args[at]
    return None


def _finders_option(args: list[str]) -> list[str] | None:
    """The finder names of a ``--finders`` option in command-line ``args`` (the last one given), or None."""
    value = None
    for at, arg in enumerate(args):
        if arg == "--finders" and at + 1 < len(args):
            value = args[at + 1]
        elif arg.startswith("--finders="):
            value = arg.removeprefix("--finders=")
    return None if value is None else finder_list(value)


def finder_list(value: str) -> list[str]:
    """The finder names of a ``--finders`` value such as ``"dlib, OpenCV"``: ``["dlib", "opencv"]``."""
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - ``app``: the Typer application, on first use
    if name == "app":
        from faces.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
