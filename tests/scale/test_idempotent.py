"""The write step of a Celery task is idempotent and belongs to the run that enqueued it (each backend)."""

from __future__ import annotations

from sqlalchemy import func, select

from faces.jobs import lock as run_lock
from faces.jobs.detect import DetectTask, init_worker, process_image
from faces.jobs.pipeline import RunSummary, _write_result, add_images
from faces.store.models import Embedding, Face, FinderStatus, Image, ImageFinder
from faces.store.users import resolve_owner


def _counts(store) -> tuple[int, int]:  # noqa: ANN001
    with store.session() as s:
        return s.scalar(select(func.count(Face.id))), s.scalar(select(func.count(Embedding.id)))


def test_a_task_delivered_twice_writes_its_faces_once(store, settings, data_root):
    with store.session() as session:
        owner_id = resolve_owner(session, None).id
    added = add_images(store, settings, owner_id, [data_root / "faceapi_bbt" / "scenes" / "bbt1.jpg"],
                       finders=["opencv"])
    image_id = added.added[0]
    init_worker(settings, ["opencv"])
    with store.session() as session:
        path = session.get(Image, image_id).path
    result = process_image(DetectTask(image_id=image_id, path=path, finders=["opencv"], max_side=1600))
    found = len(result.finders["opencv"].faces)
    assert found >= 2  # a TV scene with several people

    handle = run_lock.acquire(store, owner_id)
    try:
        # a task of a run that no longer holds the lock writes nothing
        assert not _write_result(store, owner_id, result, ["opencv"], path, RunSummary(), holder="gone:1:x")
        assert _counts(store) == (0, 0)
        # the first delivery writes, the second (same task again) writes nothing more
        assert _write_result(store, owner_id, result, ["opencv"], path, RunSummary(), holder=handle.holder)
        again = RunSummary()
        _write_result(store, owner_id, result, ["opencv"], path, again, holder=handle.holder)
        assert again.faces == 0 and again.embeddings == 0
    finally:
        handle.release()
    assert _counts(store) == (found, found)
    with store.session() as s:
        assert s.get(ImageFinder, (image_id, "opencv")).status == FinderStatus.DONE


def test_a_batch_that_lost_its_worker_goes_on_one_image_per_task_and_a_twice_fatal_image_is_an_error(
        store, settings, data_root):
    import uuid

    from faces.jobs.celery_app import TASK_NAME, configure_worker, make_celery

    settings.broker_url = "redis://127.0.0.1:6379/0"
    settings.task_queue = f"faces-test-{uuid.uuid4().hex[:10]}"
    with store.session() as session:
        owner_id = resolve_owner(session, None).id
    scenes = data_root / "faceapi_bbt" / "scenes"
    ids = add_images(store, settings, owner_id, [scenes / "bbt2.jpg", scenes / "bbt3.jpg"], finders=["opencv"]).added
    with store.session() as session:
        items = [{"id": i, "path": session.get(Image, i).path, "finders": ["opencv"], "max_side": 1600} for i in ids]
    configure_worker(settings)
    app = make_celery(settings)
    handle = run_lock.acquire(store, owner_id)
    try:
        payload = {"owner_id": owner_id, "holder": handle.holder, "order": ["opencv"], "lost": 0,
                   "finders": {"opencv": settings.finders["opencv"].__dict__}, "max_pixels": 10**8, "images": items}
        # delivered again after its worker died once (Celery counts the loss in ``retries``): split, nothing run
        app.tasks[TASK_NAME].apply(args=[payload], retries=1)
        sent = []
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            while (message := channel.basic_get(settings.task_queue, no_ack=True)) is not None:
                sent.append(message.decode()[0][0])
        assert sorted(p["images"][0]["id"] for p in sent) == sorted(ids)
        assert all(len(p["images"]) == 1 and p["lost"] == 1 for p in sent)
        assert _counts(store) == (0, 0)
        # one of those lost its worker again: that image gets an error, the other one is processed
        app.tasks[TASK_NAME].apply(args=[sent[0]], retries=1)
        app.tasks[TASK_NAME].apply(args=[sent[1]], retries=0)
    finally:
        handle.release()
        app.close()
    with store.session() as s:
        failed = s.get(ImageFinder, (sent[0]["images"][0]["id"], "opencv"))
        done = s.get(ImageFinder, (sent[1]["images"][0]["id"], "opencv"))
        assert failed.status == FinderStatus.ERROR and "stopped twice" in failed.error
        assert done.status == FinderStatus.DONE
        assert s.scalar(select(func.count(Face.id)).where(Face.image_id == failed.image_id)) == 0
        assert s.scalar(select(func.count(Face.id)).where(Face.image_id == done.image_id)) > 0
