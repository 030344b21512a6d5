"""Event subscribers: write names into files after naming (``names_changed``), read face regions from files on
intake (``images_added``). Listed in ``faces.events.SUBSCRIBER_MODULES``.

A subscriber needs the settings and the database. It takes them from the event payload when the emitter passes
them (``store=``, ``settings=``), else the engine of the committing session (``events.current_bind()``) and
the process's settings (``faces.sharing.admin_settings.base_settings()``); the admin's stored values are
applied on top. Without exiftool both subscribers do nothing (the self check says why); nothing else breaks.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from faces import events
from faces.metadata.errors import ExifToolUnavailable, MetadataError, OptedOut
from faces.metadata.exiftool import ExifTool, find_exiftool

log = logging.getLogger(__name__)

_lock = threading.Lock()
_shared: dict[str, Any] = {"tool": None, "pid": None}
_warned: set[str] = set()
_stores: dict[str, Any] = {}


@contextmanager
def shared_exiftool() -> Iterator[ExifTool]:
    """The process's one stay-open exiftool, for one caller at a time (started on first use, restarted after
    a fork or a crash). Raises ExifToolUnavailable."""
    with _lock:
        tool = _shared["tool"]
        if tool is None or _shared["pid"] != os.getpid():
            tool = _start_on_keeper_thread()
            _shared.update(tool=tool, pid=os.getpid())
        try:
            yield tool
        except MetadataError:
            raise  # a problem of one file or of the settings, not of the process
        except Exception:
            # the process may be in a bad state: start a fresh one next time
            try:
                tool.close()
            finally:
                _shared.update(tool=None, pid=None)
            raise


_keeper: dict[str, Any] = {"requests": None, "pid": None}


def _start_on_keeper_thread() -> ExifTool:
    """A started ExifTool, started by a thread that lives as long as the process.

    pyexiftool asks Linux to stop exiftool when the *thread* that started it ends (``PR_SET_PDEATHSIG``), and the
    threads that use the shared exiftool do end: a web server's worker threads, the scan's warm-up thread; the
    command it was running would fail (see ``faces.metadata.exiftool.ExifToolDied``).
    """
    if _keeper["pid"] != os.getpid():
        requests: queue.Queue = queue.Queue()

        def keep() -> None:
            while True:
                answer = requests.get()
                try:
                    answer.put(ExifTool().start())
                except BaseException as exc:  # noqa: BLE001 - handed to the thread that asked
                    answer.put(exc)

        threading.Thread(target=keep, name="faces-exiftool-keeper", daemon=True).start()
        _keeper.update(requests=requests, pid=os.getpid())
    answer: queue.Queue = queue.Queue()
    _keeper["requests"].put(answer)
    started = answer.get()
    if isinstance(started, BaseException):
        raise started
    return started


def close_shared() -> None:
    """Stop the shared exiftool (tests, shutdown)."""
    with _lock:
        tool = _shared["tool"]
        if tool is not None and _shared["pid"] == os.getpid():
            tool.close()
        _shared.update(tool=None, pid=None)


WARM_UP_FILES = 200  # files looked at by warm_up() for region markers


def warm_up(paths: list[Path], settings: Any) -> threading.Thread | None:
    """Start the shared exiftool on a background thread when one of the first files under ``paths`` may hold
    face regions (and ``metadata.read_regions`` is on), and have it read that file once: starting exiftool and
    loading its XMP modules takes 0.2 s, which taking the regions in after the files are added
    (:func:`on_images_added`) then does not wait for. Looks at :data:`WARM_UP_FILES` files at most; the thread,
    or None when there is nothing to do."""
    if not settings.metadata.read_regions or not find_exiftool():
        return None

    def run() -> None:
        from faces.metadata.reader import may_hold_regions, read_many

        for path in _first_files(paths, WARM_UP_FILES):
            if may_hold_regions(path):
                try:
                    with shared_exiftool() as tool:
                        read_many(tool, [(path, None, None)])
                except Exception:  # noqa: BLE001 - the import itself reports what goes wrong
                    log.debug("warming exiftool up failed", exc_info=True)
                return

    thread = threading.Thread(target=run, name="faces-exiftool-warm-up", daemon=True)
    thread.start()
    return thread


def _first_files(paths: list[Path], limit: int) -> Iterator[Path]:
    """Up to ``limit`` regular files: those of ``paths`` first, then files found under the folders."""
    count = 0
    for path in paths:
        found = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        for file in found:
            if count == limit:
                return
            count += 1
            yield file


class _BoundStore:
    """A store-like object on an engine: ``session()`` gives a session in a transaction."""

    def __init__(self, bind: Any):
        self.bind = bind

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.bind, expire_on_commit=False) as session, session.begin():
            yield session


def _base_settings(payload: dict[str, Any]) -> Any:
    if payload.get("settings") is not None:
        return payload["settings"]
    try:
        from faces.sharing.admin_settings import base_settings

        return base_settings()
    except ImportError:
        from faces.config import load_settings

        return load_settings()


def _store(payload: dict[str, Any], settings: Any) -> Any:
    if payload.get("store") is not None:
        return payload["store"]
    bind = events.current_bind()
    if bind is not None:
        return _BoundStore(bind)
    url = settings.resolved_database_url
    if url not in _stores:
        from faces.store.db import open_store

        _stores[url] = open_store(settings)
    return _stores[url]


def _effective(store: Any, base: Any) -> Any:
    try:
        from faces.sharing.admin_settings import effective_settings
    except ImportError:
        return base
    with store.session() as session:
        return effective_settings(session, base)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def on_names_changed(owner_id: int, image_ids: list[int], **payload: Any) -> None:
    """Write the confirmed names of ``image_ids`` into their files, when the admin and the owner allow it."""
    if not image_ids:
        return
    base = _base_settings(payload)
    if not base.metadata.write_names and payload.get("settings") is not None:
        return  # cheap exit before touching the database (the admin may still turn it on there)
    store = _store(payload, base)
    settings = _effective(store, base)
    if not settings.metadata.write_names:
        return
    if not find_exiftool():
        _warn_once("write", "names are not written into image files: exiftool is not installed")
        return
    from faces.metadata.writer import write_names

    try:
        with shared_exiftool() as tool:
            report = write_names(store, settings, owner_id, image_ids, exiftool=tool)
    except OptedOut:
        return
    except ExifToolUnavailable as exc:
        _warn_once("write", f"names are not written into image files: {exc.message}")
        return
    if report.failed:
        log.warning("names written into %d files of library %s, %d unchanged, %d failed (%s)", report.written,
                    owner_id, report.unchanged, len(report.failed),
                    ", ".join(sorted({f.code for f in report.failed})))
    else:
        log.info("names written into %d files of library %s, %d unchanged", report.written, owner_id,
                 report.unchanged)


def on_images_added(owner_id: int, image_ids: list[int], **payload: Any) -> None:
    """Take in the face regions already in the new images' files (setting ``metadata.read_regions``)."""
    if not image_ids:
        return
    base = _base_settings(payload)
    store = _store(payload, base)
    settings = _effective(store, base)
    if not settings.metadata.read_regions:
        return
    if not find_exiftool():
        _warn_once("read", "face regions in image files are not read: exiftool is not installed")
        return
    from faces.metadata.reader import import_regions

    try:
        report = import_regions(store, settings, owner_id, image_ids, exiftool=shared_exiftool)
    except ExifToolUnavailable as exc:
        _warn_once("read", f"face regions in image files are not read: {exc.message}")
        return
    if report.regions:
        log.info("face regions read from files of library %s: %d faces added, %d named, %d kept", owner_id,
                 report.created, report.named, report.kept)


atexit.register(close_shared)  # stop exiftool and remove its config file when the process ends
events.subscribe("names_changed", on_names_changed)
events.subscribe("images_added", on_images_added)
