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
    _migrate(settings)
    if not settings.database_url:
        typer.echo(f"note: this worker uses the SQLite file in {settings.data_dir}; workers on other machines "
                   "need a shared database (database_url)", err=True)
    configure_worker(settings)
    app = make_celery(settings)
    node = name or f"faces-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(["worker", f"--concurrency={concurrency or settings.worker_count}", f"--loglevel={loglevel}",
                     f"--queues={settings.task_queue}", f"--hostname={node}", "--without-gossip",
                     "--without-mingle", "--pool=prefork"])


def _migrate(settings) -> None:  # noqa: ANN001 - faces.config.Settings
    """Bring the database schema up to date once, before the pool starts (workers starting together on a new
    database race to create it: the losers wait and look again)."""
    import random
    import time

    from faces.store.db import open_store

    for attempt in range(5):
        try:
            open_store(settings).dispose()
            return
        except Exception as exc:  # noqa: BLE001 - any connection problem becomes one clear line
            if attempt == 4:
                from sqlalchemy.engine import make_url

                shown = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
                context.fail(f"cannot open the database {shown!r}: {exc}")
            time.sleep(1 + random.random() * 2)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("worker")(worker)
