"""Running detection tasks on local worker processes (the in-process executor).

Each worker process starts with ``forkserver`` (``spawn`` where there is no forkserver), runs an initializer
once (the detection worker loads its models there) and then handles one task at a time sent over its own pipe.
Because the parent knows which task each worker holds, a worker that dies on a task (a segfault in a native
library, the kernel's OOM killer) costs exactly that task: it is reported as failed, the worker is replaced,
and the other tasks go on. A task running longer than ``task_timeout`` is treated the same way.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

log = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """A worker process could not start (its initializer failed); the message says why."""


@dataclass
class TaskOutcome:
    """The end of one task: ``ok`` with ``result``, or not ``ok`` with ``error`` (a sentence) and ``crashed``."""

    key: Any
    ok: bool
    result: Any = None
    error: str = ""
    crashed: bool = False  # the worker process died (or was stopped after the timeout)


def resolve(ref: str) -> Callable:
    """The callable named ``"package.module:function"``."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(conn: Connection, init_ref: str | None, init_args: tuple, func_ref: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        if init_ref:
            resolve(init_ref)(*init_args)
        func = resolve(func_ref)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the run
        conn.send(("start_error", None, f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None, None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message is None:
            return
        key, payload = message
        try:
            reply = ("ok", key, func(payload))
        except MemoryError:
            reply = ("error", key, "ran out of memory")
        except BaseException as exc:  # noqa: BLE001 - one bad task must not end the worker
            log.debug("task failed: %s", traceback.format_exc())
            reply = ("error", key, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def default_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """``forkserver`` where available (fast, no inherited threads or sockets), else ``spawn``.

    ``preload`` names modules the fork server imports once, with the main module, before it forks any worker:
    workers then start in milliseconds, share those modules' memory with each other, and skip re-running the
    main script (for ``faces``, the whole command line). The fork server is one per process and keeps the
    preload list of the first pool that started it.
    """
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if preload:
        ctx.set_forkserver_preload(["__main__", *preload])
    return ctx


def start_fork_server(preload: Sequence[str]) -> None:
    """Start the fork server now, importing ``preload`` in the background, where the platform has one.

    The first worker started later forks at once instead of waiting for those imports (cv2, onnxruntime...:
    0.2 s). Nothing happens where there is no fork server or one is already running.
    """
    ctx = default_context(preload)
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class _Worker:
    def __init__(self, ctx, init_ref, init_args, func_ref, number: int):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, init_ref, init_args, func_ref),
                                   name=f"faces-worker-{number}", daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[Any, Any] | None = None
        self.started_task_at = 0.0
        self.ready = False

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.conn.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _exit_reason(process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """``size`` worker processes running ``func_ref`` on tasks, after ``init_ref(*init_args)`` once each.

    ``func_ref`` and ``init_ref`` are ``"module:function"`` strings (the workers import them).
    Use :meth:`run` to process tasks; :meth:`close` (or the ``with`` block) stops the workers.
    """

    def __init__(self, size: int, func_ref: str, init_ref: str | None = None, init_args: tuple = (),
                 *, task_timeout: float | None = None, context=None, preload: Sequence[str] = ()):
        self.size = max(1, size)
        self.func_ref = func_ref
        self.init_ref = init_ref
        self.init_args = init_args
        self.task_timeout = task_timeout
        self.ctx = context or default_context(preload)
        self.workers: list[_Worker] = []
        self._started = 0
        self._starting: threading.Thread | None = None  # see start()
        self._start_error: BaseException | None = None

    def _spawn(self) -> _Worker:
        self._started += 1
        worker = _Worker(self.ctx, self.init_ref, self.init_args, self.func_ref, self._started)
        self.workers.append(worker)
        return worker

    def start(self, count: int | None = None) -> WorkerPool:
        """Start the workers now (they load their models while the caller does something else): all of them,
        or at most ``count`` (:meth:`run` starts the others when it has work for them).

        The processes are started on a background thread: the first one waits for the fork server to finish its
        imports (up to half a second), and the caller need not wait with it. :meth:`run` and :meth:`close` wait.
        """
        wanted = self.size if count is None else min(self.size, max(1, count))
        self._starting = threading.Thread(target=self._start_up_to, args=(wanted,), name="faces-worker-start",
                                          daemon=True)
        self._starting.start()
        return self

    def _start_up_to(self, wanted: int) -> None:
        try:
            while len(self.workers) < wanted:
                self._spawn()
        except BaseException as exc:  # noqa: BLE001 - raised again by wait_until_started, on the caller's thread
            self._start_error = exc

    def wait_until_started(self) -> None:
        """Wait for :meth:`start`'s background thread; raise what it raised."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        error, self._start_error = self._start_error, None
        if error is not None:
            raise WorkerStartError(f"the detection workers could not be started: {error}") from error

    def run(self, tasks: Iterable[tuple[Any, Any]]) -> Iterator[TaskOutcome]:
        """Process ``(key, payload)`` tasks; yield a :class:`TaskOutcome` per task as each finishes.

        Raises:
            WorkerStartError: a worker's initializer failed (nothing more is started).
        """
        for outcomes in self.run_batches(tasks):
            yield from outcomes

    def run_batches(self, tasks: Iterable[tuple[Any, Any]]) -> Iterator[list[TaskOutcome]]:
        """Like :meth:`run`, but yield together the outcomes of the tasks that finished by the same moment
        (a non-empty list each time), so that the caller can handle them at once (e.g. in one transaction).

        Raises:
            WorkerStartError: a worker's initializer failed (nothing more is started).
        """
        self.wait_until_started()
        queue = deque(tasks)
        while len(self.workers) < min(self.size, len(queue)):
            self._spawn()
        while queue or any(w.task is not None for w in self.workers):
            self._dispatch(queue)
            busy = [w for w in self.workers if w.task is not None]
            if not busy:
                # every worker died without a task (should not happen): start fresh ones
                self._replace_dead()
                continue
            waitables = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            timeout = None
            if self.task_timeout:
                oldest = min(w.started_task_at for w in busy)
                timeout = max(0.0, oldest + self.task_timeout - time.monotonic())
            ready = wait(waitables, timeout=timeout)
            outcomes = [outcome for outcome in (self._collect(worker, ready) for worker in busy)
                        if outcome is not None]
            self._replace_dead(needed=bool(queue))
            # Free workers get their next task before the caller handles these results (database writes),
            # so that no core waits for the parent.
            self._dispatch(queue)
            if outcomes:
                yield outcomes

    def _dispatch(self, queue: deque) -> None:
        """Send the next task of ``queue`` to every live worker that has none."""
        for worker in self.workers:
            if worker.task is None and queue and worker.process.is_alive():
                worker.task = queue.popleft()
                worker.started_task_at = time.monotonic()
                try:
                    worker.conn.send(worker.task)
                except (BrokenPipeError, OSError):
                    pass  # its death is seen by the next wait

    def _collect(self, worker: _Worker, ready: list) -> TaskOutcome | None:
        if worker.conn in ready:
            try:
                kind, key, value = worker.conn.recv()
            except (EOFError, OSError):
                kind = None
            else:
                if kind == "start_error":
                    self.close()
                    raise WorkerStartError(f"a detection worker could not start: {value}")
                if kind == "ready":
                    worker.ready = True
                    return None
                task_key = worker.task[0]
                worker.task = None
                if kind == "ok":
                    return TaskOutcome(key=task_key, ok=True, result=value)
                return TaskOutcome(key=task_key, ok=False, error=value)
        if worker.process.sentinel in ready or not worker.process.is_alive():
            worker.process.join(timeout=5)
            if not worker.ready:
                # died before it could load anything: the same would happen to every task, so stop here
                reason = _exit_reason(worker.process)
                self.close()
                raise WorkerStartError(f"a detection worker stopped while starting ({reason}); see the log")
            key = worker.task[0]
            worker.task = None
            reason = _exit_reason(worker.process)
            log.warning("a detection worker stopped (%s) while processing task %s", reason, key)
            worker.conn.close()
            return TaskOutcome(key=key, ok=False, crashed=True,
                               error=f"the worker process stopped ({reason}) while processing this image")
        if self.task_timeout and time.monotonic() - worker.started_task_at > self.task_timeout:
            key = worker.task[0]
            worker.task = None
            worker.kill()
            log.warning("a detection worker took longer than %s s on task %s and was stopped", self.task_timeout, key)
            return TaskOutcome(key=key, ok=False, crashed=True,
                               error=f"processing this image took longer than {self.task_timeout:.0f} s")
        return None

    def _replace_dead(self, needed: bool = True) -> None:
        alive = []
        for worker in self.workers:
            # A dead worker still holding a task stays until _collect reports that task as failed.
            if worker.process.is_alive() or worker.task is not None:
                alive.append(worker)
            else:
                worker.process.join(timeout=5)
        self.workers = alive
        while needed and len(self.workers) < self.size:
            self._spawn()

    def close(self) -> None:
        """Stop every worker (politely, then by force; one still loading its models holds no work: at once)."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        workers, self.workers = self.workers, []
        for worker in workers:
            if worker.ready or worker.task is not None:
                worker.stop()
            else:
                worker.kill()
        deadline = time.monotonic() + 10
        for worker in workers:
            worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
