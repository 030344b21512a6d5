"""Detection in the background of the web server, so that requests stay fast.

One thread per library at most. ``start(owner_id)`` returns at once; when a run of this server is already going,
the request is remembered and the run goes once more when it ends (so images uploaded meanwhile are seen).
A run of another process (``faces scan``, a worker) is seen through the database lock (``faces.jobs.lock``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from faces.config import Settings
from faces.store.db import Store

log = logging.getLogger(__name__)


@dataclass
class StartResult:
    """What happened to a start request: started now, queued behind this server's own run, or busy elsewhere."""

    started: bool
    busy: bool
    message: str


class DetectionRunner:
    """Runs ``faces.jobs.pipeline.run_detection`` for one library at a time per library, in daemon threads."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}
        self._again: set[int] = set()
        self._errors: dict[int, str] = {}
        self._closing = threading.Event()
        self._finders: tuple[float, list[str]] | None = None

    def running_here(self, owner_id: int) -> bool:
        """Is a run of this server going for ``owner_id``?"""
        with self._lock:
            thread = self._threads.get(owner_id)
            return thread is not None and thread.is_alive()

    def last_error(self, owner_id: int) -> str | None:
        """The message of the last run of ``owner_id`` that failed, if the last run failed."""
        return self._errors.get(owner_id)

    def start(self, owner_id: int, *, again_if_running: bool = True, only_if_pending: bool = False) -> StartResult:
        """Start detection for ``owner_id`` in the background unless this server is already running it.

        With ``again_if_running`` (new images were added), a running run is followed by one more. With
        ``only_if_pending`` (the owner opened the page), the thread first looks whether any image waits for a
        finder, and does not start a run (nor record one) when none does.
        """
        if self._closing.is_set():
            return StartResult(False, False, "The server is shutting down.")
        with self._lock:
            thread = self._threads.get(owner_id)
            if thread is not None and thread.is_alive():
                if again_if_running:
                    self._again.add(owner_id)
                return StartResult(False, True, "Detection is still busy with this library.")
            thread = threading.Thread(target=self._run, args=(owner_id, only_if_pending),
                                      name=f"faces-detect-{owner_id}", daemon=True)
            self._threads[owner_id] = thread
            thread.start()
        return StartResult(True, False, "Detection started.")

    def _effective_settings(self) -> Settings:
        """The settings with the admin's changes from the page applied."""
        try:
            from faces.sharing.admin_settings import effective_settings
        except ImportError:
            return self.settings
        with self.store.session() as session:
            return effective_settings(session, self.settings)

    def finder_names(self) -> list[str]:
        """The finders that are enabled and pass their self check (looked up once per 10 minutes)."""
        from faces.jobs.pipeline import finder_names

        now = time.monotonic()
        if self._finders is None or now - self._finders[0] > 600:
            self._finders = (now, finder_names(self._effective_settings()))
        return self._finders[1]

    def _run(self, owner_id: int, only_if_pending: bool = False) -> None:
        try:
            from faces.jobs.lock import DetectionBusy
            from faces.jobs.pipeline import pending_work, run_detection
        except ImportError as exc:
            self._errors[owner_id] = f"Detection is not available on this server ({exc})."
            return
        if only_if_pending:
            try:
                idle = not pending_work(self.store, owner_id, self.finder_names())
            except Exception:  # noqa: BLE001 - if we cannot tell, run: the run itself knows
                log.warning("could not look for pending images of library %s", owner_id, exc_info=True)
                idle = False
            if idle:
                with self._lock:
                    if owner_id not in self._again:
                        self._threads.pop(owner_id, None)
                        return
        while not self._closing.is_set():
            with self._lock:
                self._again.discard(owner_id)
            try:
                run_detection(self.store, self._effective_settings(), owner_id)
                self._errors.pop(owner_id, None)
            except DetectionBusy:
                # another process (faces scan, a worker) holds the lock; its progress shows through the lock row
                self._errors.pop(owner_id, None)
            except Exception as exc:  # noqa: BLE001 - the run's failure is shown on the page, the server goes on
                log.exception("detection of library %s failed", owner_id)
                self._errors[owner_id] = f"Detection stopped with an error: {exc}"
            with self._lock:
                if owner_id not in self._again:
                    self._threads.pop(owner_id, None)
                    return

    def wait(self, owner_id: int, timeout: float | None = None) -> bool:
        """Wait for this server's run of ``owner_id`` to end; True when none is going any more."""
        with self._lock:
            thread = self._threads.get(owner_id)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def shutdown(self) -> None:
        """Stop starting runs (daemon threads end with the process; the lock's heartbeat stops with them)."""
        self._closing.set()
