"""The detection pipeline: add image files to a library, then run every enabled finder on what it has not seen.

- :func:`add_images` finds the image files under the given paths, probes each (hash, size, orientation, date),
  and inserts one ``images`` row per content (the same file twice is one image), up to 100 files a transaction.
  A file that cannot be read still gets its row, with ``error_code``/``error``, so that the owner sees what
  went wrong.
- :func:`run_detection` takes the library's run lock, sends each image with pending finders to worker
  processes (decoded once, every pending finder run on it), and writes each image's results as soon as they
  arrive, in one transaction (shared with the images that finished at the same moment): its faces, their
  embeddings, the finder statuses and their change-log entries, with a few multi-row statements. A new
  finder's boxes are matched to the image's faces (:mod:`faces.jobs.matching`), so that one face seen by two
  finders is one face with two embeddings. A killed run loses at most the images in flight; the next run does
  only what is still pending.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faces import events
from faces.config import Settings
from faces.jobs import worker_preload
from faces.jobs import lock as run_lock
from faces.jobs.detect import DetectResult, DetectTask
from faces.jobs.executor import WorkerPool
from faces.jobs.matching import match_boxes
from faces.store.db import Store
from faces.store.models import (
    Embedding, Face, FaceState, FinderStatus, Image, ImageFinder, Run, RunLock, Visibility, new_uuid,
)

log = logging.getLogger(__name__)

ADD_BATCH = 100  # probed files added per transaction
TASK_TIMEOUT_SECONDS = 900.0  # one image taking longer than this (all finders together) is an error


class NoFinderAvailable(RuntimeError):
    """No finder is enabled and able to run; ``faces selfcheck`` says why."""


# --------------------------------------------------------------------------------------------- adding images


@dataclass
class AddedError:
    """A file that was added with an error: it cannot be read as an image."""

    image_id: int
    path: str
    code: str
    message: str


@dataclass
class AddResult:
    """What :func:`add_images` did: new image ids, how many files were already known, and unreadable files."""

    added: list[int] = field(default_factory=list)  # ids of new images (readable or not)
    duplicates: int = 0  # files whose content was already in the library
    errors: list[AddedError] = field(default_factory=list)  # new files that cannot be read
    files: int = 0  # image files found under the paths

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"files": self.files, "added": len(self.added), "duplicates": self.duplicates,
                "unreadable": len(self.errors),
                "unreadable_files": [e.__dict__ for e in self.errors]}


def finder_names(settings: Settings) -> list[str]:
    """The names of the finders that are enabled and pass their self check, in registry order."""
    from faces.finders.registry import enabled_finders

    return [f.name for f in enabled_finders(settings)]


def _fallback_hash(path: Path) -> str:
    """The content hash of a file that media could not probe; a path-based stand-in if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return hashlib.sha256(b"unreadable:" + os.fsencode(path)).hexdigest()


def _probe(path: Path, max_pixels: int):
    from faces.media import probe_image
    from faces.media.types import MediaError

    try:
        return path, probe_image(path, max_pixels=max_pixels), None
    except MediaError as exc:
        return path, None, exc
    except Exception as exc:  # noqa: BLE001 - media should raise MediaError; never let one file stop the scan
        log.warning("probing %s failed unexpectedly: %s", path, exc)
        from faces.media.types import MediaError as _ME

        return path, None, _ME(f"this file could not be read ({type(exc).__name__})")


def _default_visibility(settings: Settings) -> Visibility:
    """Who may view a new image: the ``default_image_visibility`` setting (contacts when it is not valid)."""
    try:
        return Visibility(settings.default_image_visibility)
    except ValueError:
        return Visibility.CONTACTS


def add_images(store: Store, settings: Settings, owner_id: int, paths: Iterable[str | Path], *,
               finders: Sequence[str] | None = None) -> AddResult:
    """Add the image files at ``paths`` (files or folders, recursively) to ``owner_id``'s library.

    Args:
        store: the store.
        settings: the settings (enabled finders, decompression-bomb limit through media).
        owner_id: the library.
        paths: files or folders.
        finders: finder names to mark pending on new images (default: :func:`finder_names`).
    Returns:
        An :class:`AddResult`. Emits ``images_added`` (owner_id, image_ids) once the rows are committed.
    Raises:
        FileNotFoundError: one of ``paths`` does not exist (nothing is added).
    """
    from faces.media import find_image_files

    paths = [Path(p).expanduser() for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    names = list(finders) if finders is not None else finder_names(settings)
    files = [Path(os.path.abspath(f)) for f in find_image_files(paths, exclude=[settings.data_dir])]
    result = AddResult(files=len(files))
    visibility = _default_visibility(settings)
    with ThreadPoolExecutor(max_workers=max(2, settings.worker_count)) as pool:
        batch = []
        for probed in pool.map(lambda f: _probe(f, settings.max_image_pixels), files):
            batch.append(probed)
            if len(batch) == ADD_BATCH:
                _add_batch(store, owner_id, batch, names, result, visibility)
                batch = []
        _add_batch(store, owner_id, batch, names, result, visibility)
    if result.added:
        events.emit("images_added", owner_id=owner_id, image_ids=list(result.added), store=store,
                    settings=settings)
    log.info("added %d images to library %s (%d already known, %d unreadable)", len(result.added), owner_id,
             result.duplicates, len(result.errors))
    return result


def _add_batch(store: Store, owner_id: int, probed: list[tuple], names: Sequence[str], result: AddResult,
               visibility: Visibility) -> None:
    """Add probed files (``(path, info, error)`` from :func:`_probe`) in one transaction; update ``result``.

    New contents get their ``images`` row (with its error when unreadable) and a pending mark per finder of
    ``names``; known contents are duplicates (a moved file gets its new path). The rarer cases go one by one
    through :func:`_add_one`: a readable file whose path holds an error row (fixed in place), and every file
    of the batch when another process added some of them at the same moment.
    """
    if not probed:
        return
    entries = [(path, info, error, info.content_hash if info is not None else _fallback_hash(path))
               for path, info, error in probed]
    try:
        with store.session() as session:
            added, duplicates, later = _insert_images(session.connection(), owner_id, entries, names, visibility)
    except IntegrityError:
        for path, info, error in probed:
            _add_one(store, owner_id, path, info, error, names, result, visibility)
        return
    result.duplicates += duplicates
    for image_id, (path, info, error, _hash) in added:
        result.added.append(image_id)
        if info is None:
            result.errors.append(AddedError(image_id=image_id, path=str(path), code=error.code,
                                            message=error.message))
    for path, info, error, _hash in later:
        _add_one(store, owner_id, path, info, error, names, result, visibility)


def _insert_images(conn, owner_id: int, entries: list[tuple], names: Sequence[str],  # noqa: ANN001
                   visibility: Visibility) -> tuple[list[tuple[int, tuple]], int, list[tuple]]:
    """Insert the new contents of ``entries`` (``(path, info, error, content_hash)``) with Core statements.

    Returns:
        ``(added, duplicates, later)``: ``(image id, entry)`` of the new rows in the order of ``entries``, the
        number of known contents, and the entries left to :func:`_add_one`.
    """
    hashes = sorted({entry[3] for entry in entries})
    known = {h: (image_id, path) for image_id, h, path in conn.execute(
        select(Image.id, Image.content_hash, Image.path).where(Image.owner_id == owner_id,
                                                               Image.content_hash.in_(hashes)))}
    readable = [str(path) for path, info, _, _ in entries if info is not None]
    broken = set(conn.execute(select(Image.path).where(Image.owner_id == owner_id, Image.path.in_(readable),
                                                       Image.error_code.is_not(None))).scalars()) if readable else set()
    new, later, duplicates = [], [], 0
    for entry in entries:
        path, info, _, content_hash = entry
        if content_hash in known:
            image_id, known_path = known[content_hash]
            if image_id is not None and known_path != str(path) and not os.path.exists(known_path):
                conn.execute(update(Image).where(Image.id == image_id).values(path=str(path)))  # the file moved
                known[content_hash] = (image_id, str(path))
            duplicates += 1
        elif info is not None and str(path) in broken:
            later.append(entry)
        else:
            known[content_hash] = (None, str(path))  # the same content twice in this batch: one image
            new.append(entry)
    if not new:
        return [], duplicates, later
    rows = [_image_row(owner_id, entry, visibility) for entry in new]
    ids = _insert_ids(conn, _sql().images, rows, {"owner": owner_id})
    added = [(ids[entry[3]], entry) for entry in new]
    marks = [{"image_id": image_id, "finder": name, "status": FinderStatus.PENDING}
             for image_id, (_, info, _, _) in added if info is not None for name in names]
    if marks:
        conn.execute(insert(ImageFinder.__table__), marks)  # pending marks have no change-log record
    return added, duplicates, later


# what a file's probe says about it: rewritten when a file that failed before reads now
_IMAGE_FACTS = ("content_hash", "bytes", "width", "height", "orientation", "format", "taken_at", "error_code",
                "error", "sort_at")


def _image_row(owner_id: int, entry: tuple, visibility: Visibility) -> dict:
    """The ``images`` row of a new file: its probed facts, or its error (``entry`` as in :func:`_insert_images`)."""
    path, info, error, content_hash = entry
    now = datetime.now(timezone.utc)
    row = {"owner_id": owner_id, "path": str(path), "added_at": now, "visibility": visibility,
           "content_hash": content_hash}
    if info is not None:
        row.update(bytes=info.bytes, width=info.width, height=info.height, orientation=info.orientation,
                   format=info.format, taken_at=info.taken_at, error_code=None, error=None)
    else:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        row.update(bytes=size, width=0, height=0, orientation=1, format="", taken_at=None, error_code=error.code,
                   error=error.message)
    row["sort_at"] = row["taken_at"] or now.replace(tzinfo=None)
    return row


def _add_one(store: Store, owner_id: int, path: Path, info, error, names: Sequence[str], result: AddResult,
             visibility: Visibility) -> None:
    content_hash = info.content_hash if info is not None else _fallback_hash(path)
    try:
        with store.session() as session:
            existing = session.scalar(select(Image).where(Image.owner_id == owner_id,
                                                          Image.content_hash == content_hash))
            if existing is not None:
                if existing.path != str(path) and not os.path.exists(existing.path):
                    existing.path = str(path)  # the file moved
                result.duplicates += 1
                return
            image = None
            if info is not None:
                # a file that failed before (e.g. no permission) and reads now: fix its row in place
                image = session.scalar(select(Image).where(Image.owner_id == owner_id, Image.path == str(path),
                                                           Image.error_code.is_not(None)))
            row = _image_row(owner_id, (path, info, error, content_hash), visibility)
            if image is None:
                image = Image(**row)
                session.add(image)
            else:
                for key in _IMAGE_FACTS:
                    setattr(image, key, row[key])
            session.flush()
            if info is not None:
                rows = session.scalars(select(ImageFinder).where(ImageFinder.image_id == image.id)).all()
                for row in rows:  # a fixed file: what failed on it before is to do again
                    if row.status == FinderStatus.ERROR:
                        row.status, row.error = FinderStatus.PENDING, None
                have = {row.finder for row in rows}
                for name in names:
                    if name not in have:
                        session.add(ImageFinder(image_id=image.id, finder=name, status=FinderStatus.PENDING))
            image_id = image.id
    except IntegrityError:
        # another process added the same content at the same moment
        result.duplicates += 1
        return
    result.added.append(image_id)
    if info is None:
        result.errors.append(AddedError(image_id=image_id, path=str(path), code=error.code, message=error.message))


# ------------------------------------------------------------------------------------------------ detection


@dataclass
class Progress:
    """Progress of a detection run, passed to the ``progress`` callback after each image."""

    total: int
    done: int
    faces: int
    errors: int
    seconds: float
    path: str = ""

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DetectionError:
    """An image on which detection failed: the whole file, or one finder."""

    image_id: int
    path: str
    finder: str | None  # None: the file itself could not be decoded
    code: str
    message: str


@dataclass
class RunSummary:
    """What :func:`run_detection` did."""

    run_id: int | None = None
    finders: list[str] = field(default_factory=list)
    images: int = 0  # images processed
    faces: int = 0  # new faces
    embeddings: int = 0  # new embeddings (a face matched by a second finder adds one, not a face)
    no_face: int = 0  # processed images with no face at all
    errors: int = 0  # processed images with an error (file or finder)
    seconds: float = 0.0
    error_details: list[DetectionError] = field(default_factory=list)
    new_face_ids: list[int] = field(default_factory=list)
    face_image_ids: set[int] = field(default_factory=set)  # images that got new faces or embeddings

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        """JSON-ready form (without the face ids)."""
        return {"run_id": self.run_id, "finders": self.finders, "images": self.images, "faces": self.faces,
                "embeddings": self.embeddings, "no_face": self.no_face, "errors": self.errors,
                "seconds": round(self.seconds, 3), "images_per_second": round(self.images_per_second, 3),
                "error_details": [e.__dict__ for e in self.error_details]}


def pending_work(store: Store, owner_id: int, names: Sequence[str], exclude: set[int] | frozenset = frozenset()
                 ) -> list[tuple[int, str, list[str]]]:
    """The images of ``owner_id`` that some of ``names`` have not processed: ``(image_id, path, finders)``.

    A finder has processed an image when its ``image_finders`` row is done, no_face or error; no row, or a
    pending one, means not yet. Images whose file cannot be read (``error_code``) are skipped.
    """
    with store.session() as session:
        images = session.execute(
            select(Image.id, Image.path).where(Image.owner_id == owner_id, Image.error_code.is_(None))
            .order_by(Image.id)).all()
        processed: dict[int, set[str]] = {}
        rows = session.execute(
            select(ImageFinder.image_id, ImageFinder.finder)
            .join(Image, Image.id == ImageFinder.image_id)
            .where(Image.owner_id == owner_id, ImageFinder.finder.in_(list(names)),
                   ImageFinder.status != FinderStatus.PENDING))
        for image_id, finder in rows:
            processed.setdefault(image_id, set()).add(finder)
    work = []
    for image_id, path in images:
        if image_id in exclude:
            continue
        todo = [n for n in names if n not in processed.get(image_id, ())]
        if todo:
            work.append((image_id, path, todo))
    return work


def _worker_pool(settings: Settings, names: Sequence[str], count: int) -> WorkerPool:
    """``count`` detection worker processes (not started yet) for finders ``names``."""
    return WorkerPool(max(1, count), "faces.jobs.detect:process_image", "faces.jobs.detect:init_worker",
                      (settings, list(names)), task_timeout=TASK_TIMEOUT_SECONDS,
                      preload=worker_preload(names))


def start_workers(settings: Settings, names: Sequence[str], workers: int | None = None, *,
                  at_most: int | None = None) -> WorkerPool:
    """Detection worker processes for finders ``names``, started now: they import their libraries and load the
    models while the caller goes on (e.g. adds the files). Pass it to :func:`run_detection`; close it after.

    ``at_most``: start no more than this many now (e.g. the number of files given); the pool still grows to
    ``workers`` when there is more to do."""
    return _worker_pool(settings, names, workers or settings.worker_count).start(at_most)


def run_detection(store: Store, settings: Settings, owner_id: int,
                  progress: Callable[[Progress], None] | None = None, *, finders: Sequence[str] | None = None,
                  workers: int | None = None, lock_stale_after: float = run_lock.STALE_SECONDS,
                  pool: WorkerPool | None = None) -> RunSummary:
    """Run every enabled finder on every image of ``owner_id`` that it has not processed.

    Args:
        store: the store.
        settings: the settings (finders, worker count).
        owner_id: the library.
        progress: called after each image with a :class:`Progress`.
        finders: finder names to run (default: :func:`finder_names`).
        workers: number of worker processes (default: ``settings.worker_count``).
        lock_stale_after: seconds without heartbeat after which a lock holder counts as dead.
        pool: workers from :func:`start_workers` for ``finders`` (the caller closes them); default: started here
            when there is work, and closed here.
    Returns:
        A :class:`RunSummary`. Emits ``faces_detected`` (owner_id, image_ids) after the guesses are refreshed.
    Raises:
        DetectionBusy: another run holds the library's lock (carries its progress).
        NoFinderAvailable: no finder is enabled and able to run.
        WorkerStartError: the worker processes could not load the models.
    """
    names = list(finders) if finders is not None else finder_names(settings)
    if not names:
        raise NoFinderAvailable("no finder is enabled and able to run; see 'faces selfcheck' for the reason")
    handle = run_lock.acquire(store, owner_id, stale_after=lock_stale_after)
    started = time.monotonic()
    summary = RunSummary(finders=names)
    own_pool = pool is None
    try:
        handle.start_heartbeat()
        max_sides = _max_sides(settings, names)
        done_ids: set[int] = set()
        total = 0

        def _image_done(image_id: int, path: str) -> None:
            done_ids.add(image_id)
            handle.set_progress(done=len(done_ids))
            if progress is not None:
                progress(Progress(total=total, done=len(done_ids), faces=summary.faces, errors=summary.errors,
                                  seconds=time.monotonic() - started, path=path))
            if handle.lost:
                raise run_lock.LockLost("another run took over this library's detection lock")

        while True:
            work = pending_work(store, owner_id, names, exclude=done_ids)
            if not work:
                break
            if summary.run_id is None:  # a run with nothing to do leaves no Run row
                with store.session() as session:
                    run = Run(owner_id=owner_id)
                    session.add(run)
                    session.flush()
                    summary.run_id = run.id
                handle.extra_beat = lambda s: _save_run(s, summary, time.monotonic() - started)
            total += len(work)
            handle.set_progress(total=total)
            if progress is not None:
                progress(Progress(total=total, done=len(done_ids), faces=summary.faces, errors=summary.errors,
                                  seconds=time.monotonic() - started))
            if settings.executor == "celery":
                from faces.jobs.distributed import detect_with_celery

                # Celery workers write the results; this run holds the lock, waits and keeps the progress.
                detect_with_celery(store, settings, owner_id, names, work, max_sides, handle, summary, _image_done)
                continue
            if pool is None:
                pool = _worker_pool(settings, names, min(workers or settings.worker_count, len(work)))
            paths = {image_id: path for image_id, path, _ in work}
            tasks = ((image_id, DetectTask(image_id=image_id, path=_local_path(settings, path), finders=todo,
                                           max_side=_task_max_side(max_sides, todo),
                                           max_pixels=settings.max_image_pixels))
                     for image_id, path, todo in work)
            todos = {image_id: todo for image_id, _, todo in work}
            for outcomes in pool.run_batches(tasks):
                # the images that finished together are written together, at once: none waits for another
                results = [(outcome.result if outcome.ok else _failed_result(outcome.key, todos[outcome.key],
                                                                             outcome.error), paths[outcome.key])
                           for outcome in outcomes]
                _write_results(store, owner_id, results, names, summary)
                for outcome in outcomes:
                    _image_done(outcome.key, paths[outcome.key])
        if pool is not None and own_pool:
            pool.close()
            pool = None
        handle.set_progress(phase="guessing")
        _refresh(store, settings, owner_id, summary)
        summary.seconds = time.monotonic() - started
        if summary.run_id is not None:
            with store.session() as session:
                _save_run(session, summary, summary.seconds, finished=True)
        log.info("detection run %s of library %s: %d images, %d faces, %d without faces, %d errors, %.1f s",
                 summary.run_id, owner_id, summary.images, summary.faces, summary.no_face, summary.errors,
                 summary.seconds)
        return summary
    finally:
        if pool is not None and own_pool:
            pool.close()
        handle.release()


def _save_run(session: Session, summary: RunSummary, seconds: float, finished: bool = False) -> None:
    values = {"images": summary.images, "faces": summary.faces, "no_face": summary.no_face,
              "errors": summary.errors, "seconds": seconds}
    if finished:
        values["finished_at"] = datetime.now(timezone.utc)
    session.execute(update(Run).where(Run.id == summary.run_id).values(**values))


def _max_sides(settings: Settings, names: Sequence[str]) -> dict[str, int | None]:
    from faces.finders.registry import create_finder

    return {name: create_finder(name, settings).max_side for name in names}


def _task_max_side(max_sides: dict[str, int | None], todo: Sequence[str]) -> int | None:
    sides = [max_sides.get(n) for n in todo]
    if not sides or any(s is None for s in sides):
        return None
    return max(sides)


def _local_path(settings: Settings, path: str) -> str:
    """``path`` with the first matching ``settings.path_map`` prefix replaced (shared storage)."""
    for prefix, local in settings.path_map.items():
        if path.startswith(prefix):
            return local + path[len(prefix):]
    return path


def _failed_result(image_id: int, todo: Sequence[str], message: str) -> DetectResult:
    from faces.jobs.detect import FinderOutcome

    return DetectResult(image_id=image_id,
                        finders={name: FinderOutcome(status="error", error=message) for name in todo})


@cache
def _sql() -> SimpleNamespace:
    """The statements that write detection results, built once (building them costs more than running them)."""
    faces, marks, images = Face.__table__, ImageFinder.__table__, Image.__table__
    ids = bindparam("ids", expanding=True)
    return SimpleNamespace(
        lock_images=(select(Image.id, Image.content_hash)
                     .where(Image.id.in_(ids), Image.owner_id == bindparam("owner"))
                     .order_by(Image.id).with_for_update()),
        lock_holder=select(RunLock.holder).where(RunLock.owner_id == bindparam("owner")),
        marks=select(marks.c.image_id, marks.c.finder, marks.c.status, marks.c.model_version, marks.c.error,
                     marks.c.seconds, marks.c.processed_at).where(marks.c.image_id.in_(ids)),
        faces=(select(Face.image_id, Face.id, Face.x, Face.y, Face.w, Face.h, Embedding.finder)
               .outerjoin(Embedding, Embedding.face_id == Face.id)
               .where(Face.image_id.in_(ids)).order_by(Face.image_id, Face.id)),
        faces_by_uuid=_Inserts.of(faces, "uuid"),
        images=_Inserts.of(images, "content_hash", images.c.owner_id == bindparam("owner")),
        insert_embeddings=insert(Embedding.__table__),
        update_marks=update(marks).where(marks.c.image_id == bindparam("b_image_id"),
                                         marks.c.finder == bindparam("b_finder")),
        insert_marks=insert(marks),
        image_errors=update(images).where(images.c.id == bindparam("b_id")).values(error_code=bindparam("code"),
                                                                                   error=bindparam("error")),
    )


@dataclass(frozen=True)
class _Inserts:
    """Multi-row inserts into ``table`` that give back the new rows' ids by ``key`` (a unique column)."""

    key: str
    plain: object
    returning: object  # for databases that return rows from a multi-row insert
    ids: object  # the ids of the keys ``:keys`` (and ``where``), for those that cannot

    @staticmethod
    def of(table, key: str, *where) -> _Inserts:  # noqa: ANN001
        column = table.c[key]
        return _Inserts(key, insert(table), insert(table).returning(table.c.id, column),
                        select(table.c.id, column).where(column.in_(bindparam("keys", expanding=True)), *where))


def _insert_ids(conn, inserts: _Inserts, rows: list[dict], params: dict | None = None) -> dict:  # noqa: ANN001
    """Insert ``rows``; returns key -> new id (``params``: the other parameters of ``inserts.ids``)."""
    if conn.dialect.insert_executemany_returning or len(rows) == 1:
        return {k: id_ for id_, k in conn.execute(inserts.returning, rows)}
    conn.execute(inserts.plain, rows)
    return {k: id_ for id_, k in conn.execute(inserts.ids, {"keys": [r[inserts.key] for r in rows], **(params or {})})}


@dataclass
class _EmbeddingDraft:
    """A new embedding, in the shape that :func:`faces.portability.records.face_record` reads."""

    finder: str
    model_version: str
    score: float
    vector: bytes


@dataclass
class _FaceDraft:
    """A face of an image being written: a stored one (``stored``) or a new one. A new face has the defaults
    of a detected face, which its change-log record shows (see :func:`faces.portability.records.face_record`)."""

    x: int
    y: int
    w: int
    h: int
    score: float = 0.0
    landmarks: list | None = None
    id: int | None = None
    uuid: str = ""
    stored: bool = False
    finders: set[str] = field(default_factory=set)  # finders with an embedding of this face
    embeddings: list[_EmbeddingDraft] = field(default_factory=list)  # the new ones, written now
    source: str = "detected"
    state: FaceState = FaceState.UNNAMED
    name_id: int | None = None
    decided_at: datetime | None = None

    @property
    def box(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass
class _MarkDraft:
    """One finder's row of an image (``image_finders``), as it is to be written."""

    image_id: int
    finder: str
    status: FinderStatus
    model_version: str
    error: str | None
    seconds: float
    processed_at: datetime | None
    stored: bool = True  # the row exists (else it is inserted)


@dataclass
class _ImagePlan:
    """What one image's result writes: its marks, new faces, new embeddings of stored faces, its decode error."""

    image_id: int
    content_hash: str
    marks: list[_MarkDraft] = field(default_factory=list)
    faces: list[_FaceDraft] = field(default_factory=list)  # stored and new, in matching order
    embeddings: list[tuple[_FaceDraft, _EmbeddingDraft]] = field(default_factory=list)  # new, in finder order
    media_error: tuple[str, str | None] | None = None
    errors: list[DetectionError] = field(default_factory=list)

    @property
    def new_faces(self) -> list[_FaceDraft]:
        return [f for f in self.faces if not f.stored]


def _write_result(store: Store, owner_id: int, result: DetectResult, order: Sequence[str], path: str,
                  summary: RunSummary, holder: str | None = None) -> bool:
    """Write one image's results in one transaction; update ``summary`` (see :func:`_write_results`).

    Returns False when nothing was written (the image is gone, or ``holder`` no longer holds the lock)."""
    return _write_results(store, owner_id, [(result, path)], order, summary, holder=holder)[0]


def _write_results(store: Store, owner_id: int, results: Sequence[tuple[DetectResult, str]], order: Sequence[str],
                   summary: RunSummary, holder: str | None = None) -> list[bool]:
    """Write the results of some images (``(result, path)`` pairs) in one transaction; update ``summary``.

    Each image gets its faces, their embeddings, its finder statuses and their change-log entries, written with
    a few multi-row statements for all the images together. With ``holder`` (a Celery worker writing for the run
    that enqueued it), nothing is written unless that run still holds the library's lock. Finders already
    processed (by an earlier delivery of the same task) are never written twice.

    Returns:
        Per result, whether it was written (False: the image is gone, or ``holder`` lost the lock).
    """
    from faces.portability import changes

    now = datetime.now(timezone.utc)
    with store.session() as session:
        conn = session.connection()  # Core statements: the change log is written below from the values in hand
        ids = sorted({result.image_id for result, _ in results})
        # Lock the image rows so that two writers (a run that lost its lock, say) never both add faces.
        # (First statement: on MariaDB, plain reads after it see what the writer before us committed.)
        hashes = dict(conn.execute(_sql().lock_images, {"ids": ids, "owner": owner_id}).all())
        if holder is not None and conn.scalar(_sql().lock_holder, {"owner": owner_id}) != holder:
            return [False] * len(results)  # the run that asked for this is over (or dead): the next run enqueues again
        marks = _stored_marks(conn, list(hashes))
        faces = _stored_faces(conn, list(hashes))
        plans: list[_ImagePlan | None] = []
        for result, path in results:
            if result.image_id not in hashes or any(p and p.image_id == result.image_id for p in plans):
                plans.append(None)  # deleted while we looked at it (or given twice)
                continue
            plans.append(_plan(result, path, hashes[result.image_id], marks.get(result.image_id, {}),
                               faces.get(result.image_id, []), order, now))
        written = [p for p in plans if p is not None]
        _insert_faces(conn, owner_id, written)
        _write_marks(conn, written)
        errors = [{"b_id": p.image_id, "code": p.media_error[0], "error": p.media_error[1]}
                  for p in written if p.media_error is not None]
        if errors:
            conn.execute(_sql().image_errors, errors)
        changes.log_upserts(session, _log_entries(session, owner_id, written))
    for plan in written:
        _account_plan(plan, summary)
    return [p is not None for p in plans]


def _stored_marks(conn, image_ids: list[int]) -> dict[int, dict[str, _MarkDraft]]:  # noqa: ANN001
    """image id -> finder -> its stored ``image_finders`` row."""
    out: dict[int, dict[str, _MarkDraft]] = {}
    if not image_ids:
        return out
    for row in conn.execute(_sql().marks, {"ids": image_ids}):
        out.setdefault(row[0], {})[row[1]] = _MarkDraft(*row)
    return out


def _stored_faces(conn, image_ids: list[int]) -> dict[int, list[_FaceDraft]]:  # noqa: ANN001
    """image id -> its stored faces (by id), each with the finders that have an embedding of it."""
    out: dict[int, list[_FaceDraft]] = {}
    if not image_ids:
        return out
    last: _FaceDraft | None = None
    for image_id, face_id, x, y, w, h, finder in conn.execute(_sql().faces, {"ids": image_ids}):
        if last is None or last.id != face_id:
            last = _FaceDraft(x=x, y=y, w=w, h=h, id=face_id, stored=True)
            out.setdefault(image_id, []).append(last)
        if finder is not None:
            last.finders.add(finder)
    return out


def _plan(result: DetectResult, path: str, content_hash: str, marks: dict[str, _MarkDraft], faces: list[_FaceDraft],
          order: Sequence[str], now: datetime) -> _ImagePlan:
    """What ``result`` changes on its image, given the image's stored ``marks`` and ``faces``.

    A new finder's boxes are matched to the faces the image has (stored, or new from a finder before it in
    ``order``); a finder already processed is left alone; a decode error ends every pending finder with it.
    """
    plan = _ImagePlan(image_id=result.image_id, content_hash=content_hash, faces=list(faces))
    if result.media_code is not None:
        plan.media_error = (result.media_code, result.media_error)
        plan.errors.append(DetectionError(result.image_id, path, None, result.media_code, result.media_error or ""))
        log.warning("image %s cannot be decoded (%s)", result.image_id, result.media_code)
    for name in [n for n in order if n in result.finders] + [n for n in result.finders if n not in order]:
        outcome = result.finders[name]
        mark = marks.get(name)
        if mark is not None and mark.status not in (FinderStatus.PENDING, None):
            continue  # already processed (by another run): never add its faces twice
        if mark is None:
            mark = _MarkDraft(result.image_id, name, FinderStatus.PENDING, "", None, 0.0, None, stored=False)
        mark.processed_at, mark.seconds, mark.model_version = now, outcome.seconds, outcome.model_version
        plan.marks.append(mark)
        if outcome.status == "error":
            mark.status, mark.error = FinderStatus.ERROR, outcome.error
            plan.errors.append(DetectionError(result.image_id, path, name, "finder_error", outcome.error or ""))
            log.warning("finder %s failed on image %s: %s", name, result.image_id, outcome.error)
            continue
        mark.error = None
        mark.status = FinderStatus.DONE if outcome.faces else FinderStatus.NO_FACE
        candidates = [f for f in plan.faces if name not in f.finders]
        pairs = match_boxes([f.box for f in outcome.faces], [c.box for c in candidates])
        for i, found in enumerate(outcome.faces):
            if i in pairs:
                face = candidates[pairs[i]]
            else:
                x, y, w, h = found.box
                face = _FaceDraft(x=x, y=y, w=w, h=h, score=found.score, landmarks=found.landmarks, uuid=new_uuid())
                plan.faces.append(face)
            face.finders.add(name)
            embedding = _EmbeddingDraft(finder=name, model_version=outcome.model_version, score=found.score,
                                        vector=found.vector)
            face.embeddings.append(embedding)
            plan.embeddings.append((face, embedding))
    if result.media_code is not None:
        for mark in marks.values():  # the finders' marks set above are no longer pending
            if mark.status == FinderStatus.PENDING:
                mark.status, mark.error, mark.processed_at = FinderStatus.ERROR, result.media_error, now
                plan.marks.append(mark)
    return plan


def _insert_faces(conn, owner_id: int, plans: list[_ImagePlan]) -> None:  # noqa: ANN001
    """Insert the plans' new faces (their ids are set) and every new embedding."""
    new = [f for p in plans for f in p.new_faces]
    if new:
        rows = [{"uuid": f.uuid, "owner_id": owner_id, "image_id": p.image_id, "x": f.x, "y": f.y, "w": f.w,
                 "h": f.h, "score": f.score, "landmarks": f.landmarks} for p in plans for f in p.new_faces]
        ids = _insert_ids(conn, _sql().faces_by_uuid, rows)
        for face in new:
            face.id = ids[face.uuid]
    rows = [{"face_id": f.id, "finder": e.finder, "model_version": e.model_version, "score": e.score,
             "vector": e.vector} for p in plans for f, e in p.embeddings]
    if rows:
        conn.execute(_sql().insert_embeddings, rows)


def _write_marks(conn, plans: list[_ImagePlan]) -> None:  # noqa: ANN001
    """Update (or insert) the plans' finder rows."""
    marks = [m for p in plans for m in p.marks]
    values = lambda m: {"status": m.status, "model_version": m.model_version, "error": m.error,  # noqa: E731
                        "seconds": m.seconds, "processed_at": m.processed_at}
    stored = [{"b_image_id": m.image_id, "b_finder": m.finder, **values(m)} for m in marks if m.stored]
    if stored:
        conn.execute(_sql().update_marks, stored)
    new = [{"image_id": m.image_id, "finder": m.finder, **values(m)} for m in marks if not m.stored]
    if new:
        conn.execute(_sql().insert_marks, new)


def _log_entries(session: Session, owner_id: int, plans: list[_ImagePlan]) -> list[tuple[int, str, str, dict]]:
    """The change-log upserts of the plans' faces and marks, image by image (faces by id, then marks).

    A new face's record is made from the values in hand; a stored face that got an embedding is read back
    (with its name, state and rejected names), after the embeddings were inserted.
    """
    from faces.portability import records

    stored_ids = sorted({f.id for p in plans for f in p.faces if f.stored and f.embeddings})
    stored = {face.id: face for face, _ in records.load_faces(session, stored_ids)} if stored_ids else {}
    rejected = records.rejected_names(session, stored_ids) if stored_ids else {}
    entries = []
    for plan in plans:
        for face in sorted((f for f in plan.faces if f.embeddings), key=lambda f: f.id):
            if face.stored:
                face = stored[face.id]
                data = records.face_record(session, face, plan.content_hash, rejected.get(face.id, []))
            else:
                data = records.face_record(session, face, plan.content_hash, [])
            entries.append((owner_id, "face", face.uuid, data))
        for mark in sorted(plan.marks, key=lambda m: m.finder):
            data = records.mark_record(mark, plan.content_hash)
            if data is not None:
                entries.append((owner_id, "image_mark", records.mark_key(plan.content_hash, mark.finder), data))
    return entries


def _account_plan(plan: _ImagePlan, summary: RunSummary) -> None:
    """Add one written image to ``summary``."""
    summary.images += 1
    summary.faces += len(plan.new_faces)
    summary.embeddings += len(plan.embeddings)
    summary.new_face_ids.extend(f.id for f in plan.new_faces)
    summary.error_details.extend(plan.errors)
    if plan.embeddings:
        summary.face_image_ids.add(plan.image_id)
    if plan.errors:
        summary.errors += 1
    elif not plan.faces:
        summary.no_face += 1


def _refresh(store: Store, settings: Settings, owner_id: int, summary: RunSummary) -> None:
    """Refresh the guesses that the new faces affect, then tell subscribers which images got faces."""
    from faces.naming.refresh import refresh_guesses

    if summary.images == 0:
        return
    with store.session() as session:
        # New faces, and old faces that got an embedding from a finder enabled later: both can change guesses.
        face_ids = set(summary.new_face_ids)
        image_ids = sorted(summary.face_image_ids)
        for start in range(0, len(image_ids), 500):
            face_ids.update(session.scalars(select(Face.id).where(Face.image_id.in_(image_ids[start:start + 500]))))
        refresh_guesses(session, settings, owner_id, sorted(face_ids))
        events.emit_after_commit(session, "faces_detected", owner_id=owner_id,
                                 image_ids=sorted(summary.face_image_ids))
