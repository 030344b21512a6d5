"""The detection pipeline: add image files to a library, then run every enabled finder on what it has not seen.

- :func:`add_images` finds the image files under the given paths, probes each (hash, size, orientation, date),
  and inserts one ``images`` row per content (the same file twice is one image). A file that cannot be read
  still gets its row, with ``error_code``/``error``, so that the owner sees what went wrong.
- :func:`run_detection` takes the library's run lock, sends each image with pending finders to worker
  processes (decoded once, every pending finder run on it), and writes each image's results in one
  transaction: its faces, their embeddings and the finder statuses. A new finder's boxes are matched to the
  image's faces (:mod:`faces.jobs.matching`), so that one face seen by two finders is one face with two
  embeddings. A killed run loses at most the images in flight; the next run does only what is still pending.
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
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from faces import events
from faces.config import Settings
from faces.jobs import lock as run_lock
from faces.jobs.detect import DetectResult, DetectTask
from faces.jobs.executor import WorkerPool
from faces.jobs.matching import match_boxes
from faces.store.db import Store
from faces.store.models import Embedding, Face, FinderStatus, Image, ImageFinder, Run, RunLock, Visibility

log = logging.getLogger(__name__)

TASK_TIMEOUT_SECONDS = 900.0  # one image taking longer than this (all finders together) is an error
# What the fork server imports once for every detection worker (dlib's import fails quietly where it is missing).
WORKER_PRELOAD = ("numpy", "PIL.Image", "cv2", "dlib", "faces.media", "faces.finders.dlib_finder",
                  "faces.finders.opencv_finder", "faces.jobs.detect")


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
    with ThreadPoolExecutor(max_workers=max(2, settings.worker_count)) as pool:
        for path, info, error in pool.map(lambda f: _probe(f, settings.max_image_pixels), files):
            _add_one(store, owner_id, path, info, error, names, result, _default_visibility(settings))
    if result.added:
        events.emit("images_added", owner_id=owner_id, image_ids=list(result.added), store=store,
                    settings=settings)
    log.info("added %d images to library %s (%d already known, %d unreadable)", len(result.added), owner_id,
             result.duplicates, len(result.errors))
    return result


def _add_one(store: Store, owner_id: int, path: Path, info, error, names: Sequence[str], result: AddResult,
             visibility: Visibility) -> None:
    content_hash = info.content_hash if info is not None else _fallback_hash(path)
    now = datetime.now(timezone.utc)
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
            if image is None:
                image = Image(owner_id=owner_id, path=str(path), added_at=now,
                              visibility=visibility)
                session.add(image)
            image.content_hash = content_hash
            if info is not None:
                image.bytes, image.width, image.height = info.bytes, info.width, info.height
                image.orientation, image.format, image.taken_at = info.orientation, info.format, info.taken_at
                image.error_code = image.error = None
            else:
                try:
                    image.bytes = path.stat().st_size
                except OSError:
                    image.bytes = 0
                image.error_code, image.error = error.code, error.message
            image.sort_at = image.taken_at or now.replace(tzinfo=None)
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
                      (settings, list(names)), task_timeout=TASK_TIMEOUT_SECONDS, preload=WORKER_PRELOAD)


def start_workers(settings: Settings, names: Sequence[str], workers: int | None = None) -> WorkerPool:
    """Detection worker processes for finders ``names``, started now: they import their libraries and load the
    models while the caller goes on (e.g. adds the files). Pass it to :func:`run_detection`; close it after."""
    return _worker_pool(settings, names, workers or settings.worker_count).start()


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
            for outcome in pool.run(tasks):
                image_id = outcome.key
                if outcome.ok:
                    result: DetectResult = outcome.result
                else:
                    todo = next(t for i, _, t in work if i == image_id)
                    result = _failed_result(image_id, todo, outcome.error)
                _write_result(store, owner_id, result, names, paths[image_id], summary)
                _image_done(image_id, paths[image_id])
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


def _write_result(store: Store, owner_id: int, result: DetectResult, order: Sequence[str], path: str,
                  summary: RunSummary, holder: str | None = None) -> bool:
    """Write one image's results in one transaction; update ``summary``.

    With ``holder`` (a Celery worker writing for the run that enqueued it), nothing is written unless that run
    still holds the library's lock. Returns False when nothing was written for that reason or because the image
    is gone; finders already processed (by an earlier delivery of the same task) are never written twice.
    """
    now = datetime.now(timezone.utc)
    new_faces: list[Face] = []
    had_error = False
    new_embeddings = 0
    with store.session() as session:
        # Lock the image row so that two writers (a run that lost its lock, say) never both add faces.
        # (First statement: on MariaDB, plain reads after it see what the writer before us committed.)
        image = session.scalar(select(Image).where(Image.id == result.image_id, Image.owner_id == owner_id)
                               .with_for_update())
        if image is None:
            return False  # deleted while we looked at it
        if holder is not None and session.scalar(
                select(RunLock.holder).where(RunLock.owner_id == owner_id)) != holder:
            return False  # the run that asked for this is over (or dead): the next run enqueues again
        rows = {r.finder: r for r in session.scalars(select(ImageFinder).where(ImageFinder.image_id == image.id))}
        if result.media_code is not None:
            image.error_code, image.error = result.media_code, result.media_error
            summary.error_details.append(DetectionError(image.id, path, None, result.media_code,
                                                        result.media_error or ""))
            log.warning("image %s cannot be decoded (%s)", image.id, result.media_code)
            had_error = True
        faces = list(session.scalars(select(Face).where(Face.image_id == image.id)
                                     .options(selectinload(Face.embeddings)).order_by(Face.id)))
        for name in [n for n in order if n in result.finders] + [n for n in result.finders if n not in order]:
            outcome = result.finders[name]
            row = rows.get(name)
            if row is None:
                row = ImageFinder(image_id=image.id, finder=name)
                session.add(row)
            elif row.status not in (FinderStatus.PENDING, None):
                continue  # already processed (by another run): never add its faces twice
            row.processed_at = now
            row.seconds = outcome.seconds
            row.model_version = outcome.model_version
            if outcome.status == "error":
                row.status, row.error = FinderStatus.ERROR, outcome.error
                summary.error_details.append(DetectionError(image.id, path, name, "finder_error", outcome.error or ""))
                log.warning("finder %s failed on image %s: %s", name, image.id, outcome.error)
                had_error = True
                continue
            row.error = None
            row.status = FinderStatus.DONE if outcome.faces else FinderStatus.NO_FACE
            candidates = [f for f in faces if all(e.finder != name for e in f.embeddings)]
            pairs = match_boxes([f.box for f in outcome.faces], [c.box for c in candidates])
            for i, found in enumerate(outcome.faces):
                if i in pairs:
                    face = candidates[pairs[i]]
                else:
                    x, y, w, h = found.box
                    face = Face(owner_id=owner_id, image_id=image.id, x=x, y=y, w=w, h=h, score=found.score,
                                landmarks=found.landmarks)
                    session.add(face)
                    faces.append(face)
                    new_faces.append(face)
                face.embeddings.append(Embedding(finder=name, model_version=outcome.model_version,
                                                 score=found.score, vector=found.vector))
                new_embeddings += 1
        if result.media_code is not None:
            for row in rows.values():
                if row.status == FinderStatus.PENDING:
                    row.status, row.error, row.processed_at = FinderStatus.ERROR, result.media_error, now
        session.flush()
        face_count = len(faces)
    summary.images += 1
    summary.faces += len(new_faces)
    summary.embeddings += new_embeddings
    summary.new_face_ids.extend(f.id for f in new_faces)
    if new_embeddings:
        summary.face_image_ids.add(result.image_id)
    if had_error:
        summary.errors += 1
    elif face_count == 0:
        summary.no_face += 1
    return True


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
