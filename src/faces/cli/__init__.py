"""The ``faces`` command line. Thin: parse, call the packages, print. Each group of commands lives in its
own module with a ``register(app)`` function; :mod:`faces.cli.commands` puts them together.

This package imports nothing heavy itself: the console script (``from faces.cli import main``) is also run
again, without calling ``main``, by every detection worker process that multiprocessing starts, and those
need none of the command line (Typer, SQLAlchemy...).
"""

from __future__ import annotations

import gc
from typing import Any


def main() -> None:
    """Console-script entry point."""
    gc.disable()  # importing the commands makes many objects and hardly any garbage: no collection meanwhile
    try:
        from faces.cli.commands import app
    finally:
        gc.enable()
    # The modules imported so far live as long as the process: the garbage collector need not walk them again
    # on every full collection (a scan's database writes trigger many).
    gc.freeze()
    app()


def __getattr__(name: str) -> Any:  # noqa: ANN401 - ``app``: the Typer application, on first use
    if name == "app":
        from faces.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
