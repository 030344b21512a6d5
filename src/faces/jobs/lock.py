"""One detection run per library at a time: an atomic lock row in the database, with a heartbeat and progress.

The lock is the ``run_locks`` row of the owner. Taking it is a single INSERT (the primary key makes a second
INSERT fail on every backend), or, when a row is already there, a single conditional UPDATE that only matches a
row whose holder is dead: its heartbeat is older than ``stale_after`` seconds, or it names a process of this very
host that no longer exists (so that a scan killed with SIGKILL is taken over at once by the next one on the same
machine). Both statements are atomic on SQLite, PostgreSQL and MariaDB (the UPDATE re-checks its WHERE clause on
the locked row), so two runs racing for a dead lock cannot both win.

While it runs, the holder refreshes ``heartbeat_at`` with its progress (``total``, ``done``) from a background
thread; a holder whose heartbeat UPDATE no longer matches (someone took over a lock it held too long without a
heartbeat) learns it through :attr:`RunLockHandle.lost`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from faces.store.db import Store
from faces.store.models import RunLock

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0  # how often a running holder refreshes its heartbeat
STALE_SECONDS = 60.0  # a heartbeat older than this means the holder is dead


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    # SQLite and MariaDB give back naive datetimes; we always write UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunProgress:
    """Where a detection run stands: ``done`` of ``total`` images, who runs it, since when, last heartbeat."""

    holder: str
    started_at: datetime
    heartbeat_at: datetime
    total: int
    done: int
    phase: str

    @property
    def seconds_running(self) -> float:
        """Seconds since the run started."""
        return max(0.0, (_now() - _aware(self.started_at)).total_seconds())

    def describe(self) -> str:
        """One line for people, e.g. ``3 of 10 images done, running for 12 s``."""
        return f"{self.done} of {self.total} images done, running for {self.seconds_running:.0f} s"

    def as_dict(self) -> dict:
        """The progress as plain JSON-ready values."""
        return {"holder": self.holder, "started_at": _aware(self.started_at).isoformat(),
                "heartbeat_at": _aware(self.heartbeat_at).isoformat(), "total": self.total, "done": self.done,
                "phase": self.phase}


class DetectionBusy(RuntimeError):
    """Another detection run holds this library's lock. ``progress`` tells how far it is."""

    def __init__(self, progress: RunProgress):
        super().__init__(f"detection is still busy: {progress.describe()}")
        self.progress = progress


class LockLost(RuntimeError):
    """This run's lock was taken over by another run (its heartbeat had stopped for too long)."""


def make_holder() -> str:
    """A holder id for this process: ``host:pid:random``."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_is_dead_here(holder: str) -> bool:
    """True when ``holder`` names a process of this host that no longer exists."""
    try:
        host, pid_text, _ = holder.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname()[:80] or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def read_progress(store: Store, owner_id: int) -> RunProgress | None:
    """The progress of the run holding ``owner_id``'s lock, or None when no lock row exists."""
    with store.session() as session:
        row = session.get(RunLock, owner_id)
        if row is None:
            return None
        return _progress(row)


def _progress(row: RunLock) -> RunProgress:
    return RunProgress(holder=row.holder, started_at=row.started_at, heartbeat_at=row.heartbeat_at,
                       total=row.total, done=row.done, phase=row.phase)


class RunLockHandle:
    """A held lock. Update progress with :meth:`set_progress`; :meth:`release` (or the ``with`` block) ends it."""

    def __init__(self, store: Store, owner_id: int, holder: str, heartbeat_seconds: float):
        self.store = store
        self.owner_id = owner_id
        self.holder = holder
        self.total = 0
        self.done = 0
        self.phase = "detecting"
        self.lost = False
        self._heartbeat_seconds = heartbeat_seconds
        self._stop = threading.Event()
        self._changed = threading.Lock()
        self._thread: threading.Thread | None = None
        self.extra_beat = None  # optional callable run in the heartbeat's transaction (session) -> None

    def start_heartbeat(self) -> None:
        """Refresh the heartbeat every ``heartbeat_seconds`` from a daemon thread until released."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat_loop, name="faces-heartbeat", daemon=True)
            self._thread.start()

    def set_progress(self, total: int | None = None, done: int | None = None, phase: str | None = None) -> None:
        """Remember the progress; the next heartbeat writes it."""
        with self._changed:
            if total is not None:
                self.total = total
            if done is not None:
                self.done = done
            if phase is not None:
                self.phase = phase

    def beat(self) -> bool:
        """Write the heartbeat and progress now. Returns False (and sets ``lost``) if the lock is no longer ours."""
        with self._changed:
            values = {"heartbeat_at": _now(), "total": self.total, "done": self.done, "phase": self.phase}
        try:
            with self.store.session() as session:
                result = session.execute(
                    update(RunLock).where(RunLock.owner_id == self.owner_id, RunLock.holder == self.holder)
                    .values(**values))
                if result.rowcount == 1 and self.extra_beat is not None:
                    self.extra_beat(session)
        except Exception:  # noqa: BLE001 - a database hiccup must not kill the run; the next beat retries
            log.warning("heartbeat of the detection lock failed", exc_info=True)
            return True
        if result.rowcount != 1:
            self.lost = True
            log.warning("the detection lock of library %s was taken over by another run", self.owner_id)
            return False
        return True

    def _beat_loop(self) -> None:
        while not self._stop.wait(self._heartbeat_seconds):
            if not self.beat():
                return

    def release(self) -> None:
        """Stop the heartbeat and delete the lock row (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            with self.store.session() as session:
                session.execute(delete(RunLock).where(RunLock.owner_id == self.owner_id,
                                                      RunLock.holder == self.holder))
        except Exception:  # noqa: BLE001 - a lock left behind goes stale and is taken over later
            log.warning("could not release the detection lock of library %s", self.owner_id, exc_info=True)

    def __enter__(self) -> RunLockHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(store: Store, owner_id: int, *, holder: str | None = None, stale_after: float = STALE_SECONDS,
            heartbeat_seconds: float = HEARTBEAT_SECONDS, phase: str = "detecting") -> RunLockHandle:
    """Take ``owner_id``'s detection lock, or take over a dead holder's.

    Args:
        store: the store.
        owner_id: the library.
        holder: id of the new holder (default: this process, see :func:`make_holder`).
        stale_after: seconds without heartbeat after which a holder counts as dead.
        heartbeat_seconds: interval of the heartbeat thread started by :meth:`RunLockHandle.start_heartbeat`.
        phase: what the run does, shown with its progress.
    Returns:
        The held lock (heartbeat not started yet).
    Raises:
        DetectionBusy: a live run holds the lock; carries its progress.
    """
    holder = holder or make_holder()
    now = _now()
    fresh = {"holder": holder, "started_at": now, "heartbeat_at": now, "total": 0, "done": 0, "phase": phase}
    for _attempt in range(5):
        try:
            with store.session() as session:
                session.execute(insert(RunLock).values(owner_id=owner_id, **fresh))
            return RunLockHandle(store, owner_id, holder, heartbeat_seconds)
        except IntegrityError:
            pass  # a row exists: is its holder alive?
        with store.session() as session:
            row = session.get(RunLock, owner_id)
            if row is None:
                continue  # released in between: try the INSERT again
            current = _progress(row)
        stale = (_now() - _aware(current.heartbeat_at)).total_seconds() > stale_after
        if not stale and not holder_is_dead_here(current.holder):
            raise DetectionBusy(current)
        # Take over only the row we judged dead: same holder, same heartbeat. Atomic on every backend.
        with store.session() as session:
            result = session.execute(
                update(RunLock)
                .where(RunLock.owner_id == owner_id, RunLock.holder == current.holder,
                       RunLock.heartbeat_at == current.heartbeat_at)
                .values(**fresh))
            taken = result.rowcount == 1
        if taken:
            log.info("took over the detection lock of library %s from a dead run (%s)", owner_id, current.holder)
            return RunLockHandle(store, owner_id, holder, heartbeat_seconds)
        # someone else changed the row first: look again
    with store.session() as session:
        row = session.get(RunLock, owner_id)
        if row is not None:
            raise DetectionBusy(_progress(row))
    raise RuntimeError("could not take the detection lock (the lock row keeps changing)")


def lock_exists(store: Store, owner_id: int) -> bool:
    """True when a lock row exists for ``owner_id`` (alive or not)."""
    with store.session() as session:
        return session.scalar(select(RunLock.owner_id).where(RunLock.owner_id == owner_id)) is not None
