"""Deleting faces and names (spec section 6): one image, all of one owner's faces and names, or everybody's.

Nothing is left behind: the rows (faces, embeddings, rejected guesses, names, detection marks and timings,
undo and change logs, pending imports, tagging notifications), the face thumbnails and the in-process caches.
The rows go in the caller's transaction; thumbnails and caches are cleared once it has committed, through the
``faces_deleted`` event (owner_id, face_ids, face_uuids, image_ids, content_hashes of deleted images, data_dir),
which other packages may subscribe to too. Pass ``settings`` (the app's) so that the right data directory is
cleaned; without it the process's base settings are used (:func:`faces.sharing.admin_settings.base_settings`).
Images themselves stay (except with :func:`delete_image`): they are the owner's photos, not faces. A deleted
image's file is removed only when faces itself keeps it (an upload under ``<data_dir>/uploads/<owner id>/``);
files in the owner's own folders are never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from faces import events
from faces.config import Settings
from faces.sharing.errors import InvalidRequest, NotFound
from faces.sharing.notifications import TAGGED
from faces.store.models import (
    ChangeLogEntry, Face, FaceState, Image, ImageFinder, Name, Notification, PendingImport, Run, RunLock, UndoEntry,
    User,
)

log = logging.getLogger(__name__)
FACES_DELETED = "faces_deleted"


@dataclass
class DeletionReport:
    """What a deletion removed."""

    images: int = 0
    faces: int = 0
    names: int = 0

    def add(self, other: DeletionReport) -> None:
        self.images += other.images
        self.faces += other.faces
        self.names += other.names


def _delete_tag_notifications(session: Session, owner_id: int, face_ids: set[int] | None) -> None:
    """Delete the tagging notifications about ``owner_id``'s faces (all of them when ``face_ids`` is None)."""
    for note in session.scalars(select(Notification).where(Notification.kind == TAGGED)).all():
        payload = note.payload or {}
        if payload.get("owner_id") == owner_id and (face_ids is None or payload.get("face_id") in face_ids):
            session.delete(note)


def _unguess(session: Session, name_ids: list[int]) -> None:
    """Faces whose guess was one of ``name_ids`` (about to be deleted) go back to unnamed."""
    if name_ids:
        session.execute(update(Face).where(Face.guess_name_id.in_(name_ids), Face.state == FaceState.GUESSED)
                        .values(state=FaceState.UNNAMED, guess_name_id=None, guess_distance=None,
                                guess_finders=None, guess_anchor_face_id=None, guessed_at=None))
        session.execute(update(Face).where(Face.guess_name_id.in_(name_ids)).values(guess_name_id=None))


def _data_dir(settings: Settings | None) -> str:
    from faces.sharing.admin_settings import base_settings

    return str((settings or base_settings()).data_dir)


def _is_upload(path: str, owner_id: int, settings: Settings | None) -> bool:
    """True when ``path`` is a file faces keeps for ``owner_id`` (under <data_dir>/uploads/<owner_id>/)."""
    root = (Path(_data_dir(settings)) / "uploads" / str(owner_id)).resolve()
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False


def delete_image(session: Session, owner_id: int, image_id: int, settings: Settings | None = None) -> DeletionReport:
    """Delete image ``image_id`` of ``owner_id`` with its faces, and every name that no face uses any more.

    An uploaded file (kept by faces in the data directory) is removed after commit; files in the owner's own
    folders are not touched. Guesses that leaned on the deleted faces are refreshed.
    Raises NotFound for a missing image or another owner's image.
    """
    image = session.get(Image, image_id)
    if image is None or image.owner_id != owner_id:
        raise NotFound("there is no such image in your library")
    content_hash = image.content_hash
    files = [image.path] if _is_upload(image.path, owner_id, settings) else []
    faces = session.execute(select(Face.id, Face.uuid, Face.name_id, Face.state)
                            .where(Face.image_id == image_id)).all()
    face_ids = {f.id for f in faces}
    had_names = {f.name_id for f in faces if f.name_id is not None}
    had_confirmed = any(f.state == FaceState.CONFIRMED for f in faces)
    _delete_tag_notifications(session, owner_id, face_ids)
    session.execute(update(Face).where(Face.guess_anchor_face_id.in_(sorted(face_ids) or [0]))
                    .values(guess_anchor_face_id=None))
    session.execute(delete(Face).where(Face.image_id == image_id))
    session.execute(delete(ImageFinder).where(ImageFinder.image_id == image_id))
    session.execute(delete(Image).where(Image.id == image_id))
    orphans = [n for n in had_names
               if not session.scalar(select(exists().where(Face.name_id == n)))]
    _unguess(session, orphans)
    if orphans:
        session.execute(delete(Name).where(Name.id.in_(orphans)))
    session.flush()
    session.expire_all()
    if had_confirmed:
        _refresh(session, owner_id, settings)
    events.emit_after_commit(session, FACES_DELETED, owner_id=owner_id, face_ids=sorted(face_ids),
                             face_uuids=sorted(f.uuid for f in faces), image_ids=[image_id],
                             content_hashes=[content_hash], data_dir=_data_dir(settings), files=files)
    return DeletionReport(images=1, faces=len(face_ids), names=len(orphans))


LIVE_RUN_SECONDS = 60.0  # a run lock whose heartbeat is younger than this belongs to a running detection


def _ensure_idle(session: Session, owner_ids: list[int] | None) -> None:
    """Raise InvalidRequest when detection is running on one of these libraries (all when None): it would
    write faces again right after the deletion."""
    query = select(RunLock.owner_id, RunLock.heartbeat_at)
    if owner_ids is not None:
        query = query.where(RunLock.owner_id.in_(owner_ids))
    now = datetime.now(timezone.utc)
    for _owner, beat in session.execute(query).all():
        beat = beat if beat.tzinfo else beat.replace(tzinfo=timezone.utc)
        if (now - beat).total_seconds() < LIVE_RUN_SECONDS:
            raise InvalidRequest("detection is running on this library; delete when it has finished")


def delete_library_faces(session: Session, owner_id: int, settings: Settings | None = None,
                         *, _checked: bool = False) -> DeletionReport:
    """Delete all faces and names of ``owner_id`` and everything derived from them (see the module doc).

    The images stay, without any detection result, so a later detection starts afresh. Image files that held
    confirmed names get them removed by the metadata writer (``names_changed`` event).
    Raises InvalidRequest while detection is running on the library.
    """
    if not _checked:
        _ensure_idle(session, [owner_id])
    faces = session.execute(select(Face.id, Face.uuid, Face.image_id, Face.state)
                            .where(Face.owner_id == owner_id)).all()
    named_images = sorted({f.image_id for f in faces if f.state == FaceState.CONFIRMED})
    image_ids = select(Image.id).where(Image.owner_id == owner_id)
    _delete_tag_notifications(session, owner_id, None)
    session.execute(delete(Face).where(Face.owner_id == owner_id))
    names = session.execute(delete(Name).where(Name.owner_id == owner_id)).rowcount or 0
    session.execute(delete(ImageFinder).where(ImageFinder.image_id.in_(image_ids)))
    for model in (Run, UndoEntry, ChangeLogEntry, PendingImport):
        session.execute(delete(model).where(model.owner_id == owner_id))
    session.flush()
    session.expire_all()
    if named_images:
        events.emit_after_commit(session, "names_changed", owner_id=owner_id, image_ids=named_images)
    events.emit_after_commit(session, FACES_DELETED, owner_id=owner_id, face_ids=sorted(f.id for f in faces),
                             face_uuids=sorted(f.uuid for f in faces), image_ids=[], content_hashes=[],
                             data_dir=_data_dir(settings))
    return DeletionReport(faces=len(faces), names=names)


def delete_all_faces(session: Session, settings: Settings | None = None) -> DeletionReport:
    """The admin's deletion: every owner's faces and names (see :func:`delete_library_faces`)."""
    _ensure_idle(session, None)
    total = DeletionReport()
    for owner_id in session.scalars(select(User.id).order_by(User.id)).all():
        total.add(delete_library_faces(session, owner_id, settings, _checked=True))
    return total


def _refresh(session: Session, owner_id: int, settings: Settings | None) -> None:
    """Recompute the owner's guesses now that confirmed faces are gone (with the admin's current settings)."""
    from faces.naming.refresh import refresh_guesses
    from faces.sharing.admin_settings import base_settings, effective_settings

    refresh_guesses(session, effective_settings(session, settings or base_settings()), owner_id, None)


def _after_delete(owner_id: int, face_ids: list[int], face_uuids: list[str], content_hashes: list[str],
                  data_dir: str, files: list[str] = (), **_ignored: object) -> None:
    """Subscriber of ``faces_deleted``: remove the thumbnails (face crops, and photos of deleted images), the
    uploaded files of deleted images, and clear the naming caches."""
    from faces.media import remove_face_thumbnails, remove_thumbnails
    from faces.sharing.photos_of_me import _forget_caches

    _forget_caches(owner_id)
    remove_face_thumbnails(data_dir, [*face_ids, *face_uuids])
    for content_hash in content_hashes:
        remove_thumbnails(data_dir, content_hash)
    for path in files:
        Path(path).unlink(missing_ok=True)


events.subscribe(FACES_DELETED, _after_delete)
