"""The ``faces`` command line. Thin: parse, call the packages, print. Each group of commands lives in its
own module with a ``register(app)`` function."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Optional

import typer

from faces.cli import context

app = typer.Typer(help="faces: find the faces in your photos, learn their names, guess the rest.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _global(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="FACES_DATA_DIR",
                                            help="Where faces keeps its database, thumbnails and log."),
    user: Optional[str] = typer.Option(None, "--user", envvar="FACES_USER",
                                       help="The library (owner account) to work on; default: admin."),
) -> None:
    context.configure(data_dir=data_dir, username=user)


def _register_all() -> None:
    from faces.cli import library, metadata, names, portability, server, worker

    for module in (library, names, server, metadata, portability, worker):
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    # The modules imported so far live as long as the process: the garbage collector need not walk them again
    # on every full collection (a scan's database writes trigger many).
    gc.freeze()
    app()
