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
