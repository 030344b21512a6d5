"""The Celery side of distributed detection: the app, its one task, and what a worker process keeps loaded.

A task carries a batch of images of one library for one run (the run that holds the library's lock and enqueued
it, see :mod:`faces.jobs.distributed`). The worker reads each image through ``settings.path_map``, runs the
finders still pending on it (:func:`faces.jobs.detect.process_image`) and writes the image's results in one
transaction (:func:`faces.jobs.pipeline._write_result`), which re-checks in that transaction that the run still
holds the lock and that each finder is still pending: a task delivered twice writes nothing twice.

Delivery: ``acks_late`` (a task is acknowledged only after it ran), ``reject_on_worker_lost`` and
``retry_on_worker_lost`` (a pool process killed mid-task, by the OOM killer or ``kill -9``, sends the task again,
counting the loss). A batch that lost its worker once is split into one task per image, and an image whose
own task lost its worker twice is recorded as an error on that image, like the in-process executor does, so that
one file crashing the decoder cannot crash every worker in turn.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import asdict

from faces.config import FinderSettings, Settings

log = logging.getLogger(__name__)

TASK_NAME = "faces.detect_batch"
VISIBILITY_TIMEOUT = 3600  # Redis: a task taken by a worker that vanished entirely is delivered again after this


def make_celery(settings: Settings):
    """A Celery app on ``settings.broker_url`` with the detection task registered (not set as current app)."""
    from celery import Celery

    app = Celery("faces", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for a restarting broker instead of exiting
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=settings.task_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_retry_on_worker_lost=True,
        task_acks_on_timeout=False,  # a batch over its time limit is delivered again (and then split)
        worker_prefetch_multiplier=1,  # long tasks: no worker hoards a queue of them
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.task(name=TASK_NAME, bind=True, max_retries=None, default_retry_delay=0)(_detect_batch)
    return app


# ------------------------------------------------------------------------------------------- worker state

_state: dict = {"settings": None, "store": None, "pid": None, "finders": None}


def configure_worker(settings: Settings) -> None:
    """Remember this worker's settings (database, path_map) before the pool starts; preload models per process."""
    from celery.signals import worker_process_init

    _state["settings"] = settings
    worker_process_init.connect(_preload, weak=False)


def _preload(**_kwargs) -> None:
    from faces.jobs.pipeline import finder_names

    settings = _state["settings"]
    try:
        names = finder_names(settings)
        _load_finders(settings, names, {n: asdict(settings.finders[n]) for n in names})
    except Exception:  # noqa: BLE001 - the first task loads again and records the failure on its images
        log.warning("could not preload the finders in this worker process", exc_info=True)


def _store():
    from faces.store.db import Store

    url = _state["settings"].resolved_database_url
    if _state["pid"] != os.getpid() or _state["store"] is None or _state["store"].url != url:
        _state["store"] = Store(url, run_migrations=False)  # never a connection inherited through fork
        _state["pid"] = os.getpid()
    return _state["store"]


def _load_finders(settings: Settings, names: list[str], finder_settings: dict[str, dict]) -> Settings:
    """The worker's settings with the run's finder settings; loads those finders' models unless already loaded."""
    from faces.jobs.detect import init_worker

    merged = copy.copy(settings)
    merged.finders = dict(settings.finders)
    for name, values in finder_settings.items():
        known = FinderSettings.__dataclass_fields__  # an enqueuer of another version may send other keys
        merged.finders[name] = FinderSettings(**{k: v for k, v in values.items() if k in known})
    key = json.dumps([sorted(names), finder_settings], sort_keys=True)
    if _state["finders"] != key:
        init_worker(merged, list(names))
        _state["finders"] = key
    return merged


# ------------------------------------------------------------------------------------------------ the task


def _detect_batch(task, payload: dict) -> int:
    """Detect faces on a batch of images and write each image's results; returns the number of images written.

    ``payload``: ``owner_id``, ``holder`` (the enqueuing run's lock holder), ``order`` (finder order for
    matching), ``finders`` (finder name -> FinderSettings as a dict), ``max_pixels``, ``lost`` (worker losses
    before this task was split off) and ``images``: a list of ``{"id", "path", "finders", "max_side"}``.
    """
    from faces.jobs.detect import DetectTask, process_image
    from faces.jobs.pipeline import RunSummary, _failed_result, _local_path, _write_result

    settings = _state["settings"]
    if settings is None:
        raise RuntimeError("this process is not a faces worker (start it with 'faces worker')")
    store = _store()
    owner_id, holder = payload["owner_id"], payload["holder"]
    images = payload["images"]
    lost = int(task.request.retries or 0) + int(payload.get("lost", 0))
    if lost and len(images) > 1:
        # a worker died on this batch: go on one image per task, so that only the culprit can fail
        for item in images:
            task.app.send_task(TASK_NAME, args=[payload | {"images": [item], "lost": lost}],
                               queue=settings.task_queue, time_limit=(task.request.timelimit or (None,))[0])
        log.warning("a worker stopped while processing a batch of %d images; sent them again one by one",
                    len(images))
        return 0
    written = 0
    for item in images:
        todo = _still_pending(store, owner_id, holder, item)
        if todo is None:
            log.info("the run that asked for image %s is over; dropping the task", item["id"])
            return written
        if not todo:
            continue  # done already (an earlier delivery of this task)
        if lost >= 2:
            result = _failed_result(item["id"], todo, "the detection worker stopped twice while processing "
                                                      "this image (it may crash the decoder or a finder)")
        else:
            merged = _load_finders(settings, payload["order"], payload["finders"])
            local = _local_path(merged, item["path"])
            if not os.path.exists(local):
                log.warning("image %s: %s does not exist on this worker (check path_map)", item["id"], local)
            result = process_image(DetectTask(image_id=item["id"], path=local, finders=todo,
                                              max_side=item["max_side"], max_pixels=payload["max_pixels"]))
        if _write_result(store, owner_id, result, payload["order"], item["path"], RunSummary(), holder=holder):
            written += 1
    return written


def _still_pending(store, owner_id: int, holder: str, item: dict) -> list[str] | None:  # noqa: ANN001
    """The finders of ``item`` still pending on its image; None when the enqueuing run no longer holds the lock."""
    from sqlalchemy import select

    from faces.store.models import FinderStatus, Image, ImageFinder, RunLock

    with store.session() as session:
        if session.scalar(select(RunLock.holder).where(RunLock.owner_id == owner_id)) != holder:
            return None
        image = session.get(Image, item["id"])
        if image is None or image.owner_id != owner_id or image.error_code is not None:
            return []
        item["path"] = image.path  # the file may have moved since the task was sent
        rows = dict(session.execute(select(ImageFinder.finder, ImageFinder.status)
                                    .where(ImageFinder.image_id == image.id)).all())
    return [name for name in item["finders"] if rows.get(name) in (None, FinderStatus.PENDING)]
