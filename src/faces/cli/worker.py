"""``faces worker``: a Celery worker that runs detection tasks (executor ``celery``)."""

from __future__ import annotations

import socket
from typing import Optional

import typer

from faces.cli import context


def worker(
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c",
                                              help="Worker processes (default: the 'workers' setting, or one "
                                                   "per core)."),
    loglevel: str = typer.Option("info", "--loglevel", help="Celery log level: debug, info, warning, error."),
    name: Optional[str] = typer.Option(None, "--name", help="Node name (default: faces-<pid>@<host>)."),
) -> None:
    """Run detection tasks from the broker (settings broker_url, task_queue) until stopped with Ctrl+C.

    Images are read through the path_map setting (prefix on the scanning machine = prefix here) and the
    results written to the shared database (database_url). Start as many as you like, on any machine.
    """
    import os

    from faces.jobs.celery_app import configure_worker, make_celery

    settings = context.settings()
    if concurrency is not None and concurrency < 1:
        context.fail("--concurrency must be at least 1")
    store = context.store()  # migrates the database once, before the pool starts
    store.dispose()
    if not settings.database_url:
        typer.echo(f"note: this worker uses the SQLite file in {settings.data_dir}; workers on other machines "
                   "need a shared database (database_url)", err=True)
    configure_worker(settings)
    app = make_celery(settings)
    node = name or f"faces-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(["worker", f"--concurrency={concurrency or settings.worker_count}", f"--loglevel={loglevel}",
                     f"--queues={settings.task_queue}", f"--hostname={node}", "--without-gossip",
                     "--without-mingle", "--pool=prefork"])


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("worker")(worker)
