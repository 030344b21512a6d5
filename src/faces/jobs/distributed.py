"""The Celery executor: the run that holds a library's lock enqueues its pending images and waits for the workers.

:func:`detect_with_celery` is called by :func:`faces.jobs.pipeline.run_detection` when ``settings.executor`` is
``"celery"``. It sends the images in batches (task ``faces.detect_batch`` of :mod:`faces.jobs.celery_app`) to
``settings.task_queue`` and watches the database, not the broker, for what is done: an image is done when none
of its finders is pending any more. So progress, the run summary and the guesses (computed once, by the caller,
after the whole batch) do not depend on task results, and hold across any number of workers.

Lost tasks are sent again; the workers' writes are idempotent, so a task that ran twice changes nothing:
- a pool process killed mid-task: Celery sends the task again at once (``retry_on_worker_lost``);
- a Redis broker restarted without persistence (every queued task gone): its ``run_id`` changes, seen within
  a poll, and every unfinished batch is sent again;
- anything else (a worker machine gone with its task, a purged queue): when nothing is waiting in the queue
  and no image finished for :data:`STALL_SECONDS`, the unfinished batches are sent again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select

from faces.config import Settings
from faces.jobs.lock import LockLost, RunLockHandle
from faces.store.db import Store
from faces.store.models import Embedding, Face, FinderStatus, Image, ImageFinder

log = logging.getLogger(__name__)

MAX_BATCH = 8  # images per task at most (small runs use fewer, so that every worker gets some)
MAX_IN_FLIGHT = 128  # batches sent and not finished at once (a huge scan does not flood the broker)
POLL_SECONDS = 0.5
IDLE_WARNING_SECONDS = 60.0  # nothing finished for this long: the log asks whether any worker runs
STALL_SECONDS = 300.0  # nothing queued, nothing finished for this long: the unfinished batches are sent again


@dataclass
class _Batch:
    key: int
    items: list[tuple[int, str, list[str]]]  # (image_id, path, finders)
    open_ids: set[int] = field(default_factory=set)
    faces_before: dict[int, set[int]] = field(default_factory=dict)  # image id -> its face ids when sent
    embeddings_before: dict[int, int] = field(default_factory=dict)
    sent_at: float = 0.0
    sends: int = 0


def batch_size(images: int) -> int:
    """Images per task for a run of ``images``: 1 for small runs, up to :data:`MAX_BATCH` for large ones."""
    return max(1, min(MAX_BATCH, images // 16))


def detect_with_celery(store: Store, settings: Settings, owner_id: int, names: Sequence[str],
                       work: list[tuple[int, str, list[str]]], max_sides: dict[str, int | None],
                       handle: RunLockHandle, summary, on_done: Callable[[int, str], None], *,
                       stall_seconds: float = STALL_SECONDS) -> None:
    """Have Celery workers process ``work`` (``(image_id, path, finders)``); return when every image is done.

    Args:
        store, settings, owner_id: as for :func:`faces.jobs.pipeline.run_detection`.
        names: the run's finders, in matching order.
        work: the pending images.
        max_sides: decode size per finder.
        handle: the run's lock (its holder id goes with each task; workers write only while it is held).
        summary: the :class:`faces.jobs.pipeline.RunSummary`, updated from the database as images finish.
        on_done: called with ``(image_id, path)`` for each finished image (progress).
        stall_seconds: see :data:`STALL_SECONDS`.
    Raises:
        LockLost: another run took over the lock.
    """
    from faces.jobs.celery_app import TASK_NAME, make_celery
    from faces.jobs.pipeline import TASK_TIMEOUT_SECONDS, _task_max_side

    app = make_celery(settings)
    size = batch_size(len(work))
    waiting = deque(_Batch(key=i, items=work[s:s + size]) for i, s in enumerate(range(0, len(work), size)))
    in_flight: dict[int, _Batch] = {}
    base = {"owner_id": owner_id, "holder": handle.holder, "order": list(names), "lost": 0,
            "finders": {n: asdict(settings.finders[n]) for n in names if n in settings.finders},
            "max_pixels": settings.max_image_pixels}
    broker = _BrokerWatch(settings.broker_url)
    last_change = time.monotonic()
    warned_idle = False

    def send(batch: _Batch) -> bool:
        payload = base | {"images": [{"id": i, "path": p, "finders": t, "max_side": _task_max_side(max_sides, t)}
                                     for i, p, t in batch.items if i in batch.open_ids]}
        try:
            app.send_task(TASK_NAME, args=[payload], queue=settings.task_queue,
                          time_limit=TASK_TIMEOUT_SECONDS * len(payload["images"]) + 60)
        except Exception as exc:  # noqa: BLE001 - broker down: keep the batch, try again on the next poll
            log.warning("could not send detection tasks to the broker (%s); trying again", exc)
            return False
        batch.sent_at = time.monotonic()
        batch.sends += 1
        return True

    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < MAX_IN_FLIGHT:
                batch = waiting[0]
                if not batch.sends:
                    batch.open_ids = {i for i, _, _ in batch.items}
                    _snapshot(store, batch)
                if not send(batch):
                    break
                in_flight[waiting.popleft().key] = batch
            finished = _account(store, owner_id, in_flight, summary)
            for image_id, path in finished:
                on_done(image_id, path)
            if finished:
                last_change = time.monotonic()
                warned_idle = False
            for key in [k for k, b in in_flight.items() if not b.open_ids]:
                del in_flight[key]
            if handle.lost:
                raise LockLost("another run took over this library's detection lock")
            if not in_flight:
                continue
            if broker.restarted():
                log.warning("the broker restarted and lost its queue: sending %d unfinished batches again",
                            len(in_flight))
                for batch in in_flight.values():
                    send(batch)
                last_change = time.monotonic()
            elif time.monotonic() - last_change > IDLE_WARNING_SECONDS and not warned_idle:
                warned_idle = True
                log.warning("no detection task finished for %.0f s: is a 'faces worker' running for queue %r?",
                            IDLE_WARNING_SECONDS, settings.task_queue)
            if time.monotonic() - last_change > stall_seconds and _queue_empty(app, settings.task_queue):
                stale = [b for b in in_flight.values() if time.monotonic() - b.sent_at > stall_seconds]
                log.warning("no image finished for %.0f s and nothing is queued: sending %d batches again",
                            stall_seconds, len(stale))
                for batch in stale:
                    send(batch)
                last_change = time.monotonic()
            time.sleep(POLL_SECONDS)
    finally:
        broker.close()
        app.close()


def _snapshot(store: Store, batch: _Batch) -> None:
    """Remember the faces and embedding counts of the batch's images before the workers add to them."""
    ids = sorted(batch.open_ids)
    with store.session() as session:
        for image_id, face_id in session.execute(select(Face.image_id, Face.id).where(Face.image_id.in_(ids))):
            batch.faces_before.setdefault(image_id, set()).add(face_id)
        batch.embeddings_before = dict(session.execute(
            select(Face.image_id, func.count(Embedding.id)).join(Embedding, Embedding.face_id == Face.id)
            .where(Face.image_id.in_(ids)).group_by(Face.image_id)).all())


def _account(store: Store, owner_id: int, in_flight: dict[int, _Batch], summary) -> list[tuple[int, str]]:
    """Find the images of ``in_flight`` that are done, add what the workers wrote to ``summary``."""
    from faces.jobs.pipeline import DetectionError

    todo = {i: (batch, path, finders) for batch in in_flight.values() for i, path, finders in batch.items
            if i in batch.open_ids}
    if not todo:
        return []
    finished: list[tuple[int, str]] = []
    ids = sorted(todo)
    with store.session() as session:
        for chunk in (ids[s:s + 500] for s in range(0, len(ids), 500)):
            images = {row.id: row for row in session.execute(
                select(Image.id, Image.error_code, Image.error).where(Image.id.in_(chunk)))}
            statuses: dict[int, dict[str, tuple]] = {}
            for image_id, finder, status, error in session.execute(
                    select(ImageFinder.image_id, ImageFinder.finder, ImageFinder.status, ImageFinder.error)
                    .where(ImageFinder.image_id.in_(chunk))):
                statuses.setdefault(image_id, {})[finder] = (status, error)
            done_ids = []
            for image_id in chunk:
                batch, path, finders = todo[image_id]
                image = images.get(image_id)
                rows = statuses.get(image_id, {})
                if image is not None and image.error_code is None and any(
                        rows.get(f, (FinderStatus.PENDING,))[0] == FinderStatus.PENDING for f in finders):
                    continue
                batch.open_ids.discard(image_id)
                finished.append((image_id, path))
                if image is None:
                    continue  # deleted meanwhile
                done_ids.append(image_id)
            if not done_ids:
                continue
            faces: dict[int, list[int]] = {}
            for image_id, face_id in session.execute(select(Face.image_id, Face.id)
                                                     .where(Face.image_id.in_(done_ids)).order_by(Face.id)):
                faces.setdefault(image_id, []).append(face_id)
            embeddings = dict(session.execute(
                select(Face.image_id, func.count(Embedding.id)).join(Embedding, Embedding.face_id == Face.id)
                .where(Face.image_id.in_(done_ids)).group_by(Face.image_id)).all())
            for image_id in done_ids:
                batch, path, finders = todo[image_id]
                image = images[image_id]
                new_faces = [f for f in faces.get(image_id, []) if f not in batch.faces_before.get(image_id, ())]
                new_embeddings = embeddings.get(image_id, 0) - batch.embeddings_before.get(image_id, 0)
                summary.images += 1
                summary.faces += len(new_faces)
                summary.new_face_ids.extend(new_faces)
                summary.embeddings += max(0, new_embeddings)
                if new_embeddings > 0:
                    summary.face_image_ids.add(image_id)
                errors = []
                if image.error_code is not None:
                    errors.append(DetectionError(image_id, path, None, image.error_code, image.error or ""))
                else:
                    rows = statuses.get(image_id, {})
                    errors = [DetectionError(image_id, path, f, "finder_error", rows[f][1] or "")
                              for f in finders if rows.get(f, (None,))[0] == FinderStatus.ERROR]
                if errors:
                    summary.errors += 1
                    summary.error_details.extend(errors)
                elif not faces.get(image_id):
                    summary.no_face += 1
    return finished


def _queue_empty(app, queue: str) -> bool:  # noqa: ANN001 - celery.Celery
    """True when no message waits in ``queue`` (or the broker cannot tell)."""
    try:
        with app.connection_for_write() as conn:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count == 0
    except Exception:  # noqa: BLE001 - unknown counts as empty: a task sent twice does no harm
        return True


class _BrokerWatch:
    """Notices a Redis broker that restarted (its ``run_id`` changed): its queues were lost with it.

    Other brokers (RabbitMQ keeps Celery's durable queues across restarts) are not watched.
    """

    def __init__(self, url: str):
        self.client = None
        self.run_id = None
        if url.startswith(("redis://", "rediss://", "unix://")):
            try:
                import redis

                self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
                self.run_id = self._read()
            except Exception:  # noqa: BLE001 - not watchable: the stall rule still applies
                self.client = None

    def _read(self):  # noqa: ANN202
        return self.client.info("server").get("run_id")

    def restarted(self) -> bool:
        """True once after the broker came back with a new identity."""
        if self.client is None:
            return False
        try:
            current = self._read()
        except Exception:  # noqa: BLE001 - down right now: look again on the next poll
            return False
        changed = self.run_id is not None and current != self.run_id
        self.run_id = current
        return changed

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001
                pass
