"""What every command needs: the settings, the store, the owner, and a way to fail with a plain message."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from faces.config import ConfigError, Settings, load_settings
from faces.logs import setup_logging
from faces.store.db import Store, open_store

console = Console(stderr=True)
_state: dict[str, Any] = {"data_dir": None, "username": None, "settings": None, "store": None}


def configure(data_dir: Path | None, username: str | None) -> None:
    """Remember the global options; settings and store are built on first use."""
    _state.update(data_dir=data_dir, username=username, settings=None, store=None)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings() -> Settings:
    """The settings of this invocation (data dir option, environment, faces.toml)."""
    if _state["settings"] is None:
        try:
            _state["settings"] = load_settings(_state["data_dir"])
        except ConfigError as exc:
            fail(str(exc))
        setup_logging(_state["settings"].ensure_data_dir(), _state["settings"].log_level)
    return _state["settings"]


def store() -> Store:
    """The migrated store of this invocation."""
    if _state["store"] is None:
        try:
            _state["store"] = open_store(settings())
        except Exception as exc:  # noqa: BLE001 - any connection problem becomes one clear line
            fail(f"cannot open the database {settings().resolved_database_url!r}: {exc}")
        from faces.sharing.admin_settings import apply_stored_log_level

        apply_stored_log_level(_state["store"])
    return _state["store"]


def close() -> None:
    """Close the store's connections, when this invocation opened it (SQLite then folds its log into the file)."""
    if _state["store"] is not None:
        _state["store"].dispose()
        _state["store"] = None


def username() -> str | None:
    """The ``--user`` option (None: the default admin library)."""
    return _state["username"]


def effective_settings() -> Settings:
    """The settings with the admin's values from the web page (stored in the database) applied on top."""
    from faces.sharing.admin_settings import effective_settings as overlay

    with store().session() as session:
        return overlay(session, settings())


def owner_id(user: str | None = None) -> int:
    """The id of the library to work on: ``user``, else the global ``--user``, else the default admin account."""
    from faces.store.users import UnknownUserError, resolve_owner

    try:
        with store().session() as session:
            return resolve_owner(session, user or username()).id
    except UnknownUserError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (the stable, scriptable output of ``--json``)."""
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
