"""The ``faces`` Typer application: the global options, and every group of commands registered on it."""

from __future__ import annotations

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
