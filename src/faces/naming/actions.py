"""The actions on faces and names (spec section 3): name, confirm, reject, unknown, ignore, reset, rename,
merge (with undo), name a whole group, take faces out of a group.

Every action runs inside the caller's session (one transaction), checks that every face and name id belongs to
the owner's library (:class:`FaceNotFound`, :class:`NameNotFound` otherwise), records who decided
(``actor_id``: permissions are checked by the caller), refreshes the guesses it can affect, and queues
``names_changed`` / ``face_tagged`` events that are delivered after commit. A name that no face uses any more
is deleted. Faces removed by the tagged person can never be named again (:class:`FaceRemovedError`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from faces.events import emit_after_commit
from faces.naming.refresh import refresh_guesses
from faces.store.models import Face, FaceState, Name, RejectedName, UndoEntry, User, utcnow

MAX_NAME_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NamingError(ValueError):
    """A naming action cannot be done; the message says why in plain words."""


class FaceNotFound(NamingError, LookupError):
    """No face with that id in this library."""


class NameNotFound(NamingError, LookupError):
    """No name with that id (or text) in this library."""


class FaceRemovedError(NamingError):
    """The tagged person removed themselves from this face: it can never be named again."""


class NothingToUndo(NamingError):
    """The owner has no action left to undo."""


@dataclass
class Outcome:
    """What an action changed: the faces touched and the images whose confirmed names changed."""

    face_ids: list[int]
    image_ids: list[int]
    name_id: int | None = None


# --- lookups ----------------------------------------------------------------------------------------------------


def get_face(session: Session, owner_id: int, face_id: int) -> Face:
    """The face ``face_id`` of ``owner_id``'s library. Raises FaceNotFound (also for another owner's face)."""
    face = session.get(Face, face_id) if isinstance(face_id, int) else None
    if face is None or face.owner_id != owner_id:
        raise FaceNotFound(f"there is no face {face_id} in this library")
    return face


def get_name(session: Session, owner_id: int, name: int | str) -> Name:
    """The name ``name`` (its id, or its exact text) of ``owner_id``. Raises NameNotFound."""
    if isinstance(name, int):
        found = session.get(Name, name)
        if found is None or found.owner_id != owner_id:
            raise NameNotFound(f"there is no name with id {name} in this library")
        return found
    text = clean_name(name)
    found = session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == text))
    if found is None:
        raise NameNotFound(f"there is no name {text!r} in this library")
    return found


def clean_name(text: str) -> str:
    """``text`` with surrounding and repeated spaces removed. Raises NamingError when it cannot be a name."""
    if not isinstance(text, str):
        raise NamingError("a name must be text")
    cleaned = " ".join(text.split())
    if _CONTROL.search(cleaned):
        raise NamingError("a name cannot contain control characters")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise NamingError(f"a name can be at most {MAX_NAME_LENGTH} characters long")
    return cleaned


def _resolve_name(session: Session, owner_id: int, name: str | None, name_id: int | None,
                  contact_user_id: int | None) -> Name | None:
    """The Name to give: an existing one by id, the one linked to a contact (created if needed), or by text
    (created if needed). None for an empty name (a reset)."""
    if name_id is not None:
        return get_name(session, owner_id, name_id)
    if contact_user_id is not None:
        user = session.get(User, contact_user_id)
        if user is None:
            raise NamingError(f"there is no user account with id {contact_user_id}")
        found = session.scalar(select(Name).where(Name.owner_id == owner_id, Name.contact_user_id == user.id))
        if found is not None:
            return found
        text = clean_name(name or user.display_name or user.username)
        found = session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == text))
        if found is not None:
            if found.contact_user_id is None:
                found.contact_user_id = user.id
                found.updated_at = utcnow()
            return found
        created = Name(owner_id=owner_id, name=text, contact_user_id=user.id)
        session.add(created)
        session.flush()
        return created
    text = clean_name(name or "")
    if not text:
        return None
    found = session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == text))
    if found is None:
        found = Name(owner_id=owner_id, name=text)
        session.add(found)
        session.flush()
    return found


def _check_taggable(face: Face) -> None:
    if face.state == FaceState.REMOVED:
        raise FaceRemovedError(
            f"face {face.id} cannot be named: the person on it removed themselves from this photo")


def _drop_unused_names(session: Session, owner_id: int, name_ids: Iterable[int | None]) -> list[int]:
    """Delete the names among ``name_ids`` that no face is confirmed with any more; returns the faces whose
    guess pointed at a deleted name (their guess is withdrawn)."""
    touched: list[int] = []
    for name_id in {n for n in name_ids if n}:
        used = session.scalar(select(func.count()).select_from(Face).where(Face.name_id == name_id))
        if used:
            continue
        guessed = session.scalars(select(Face.id).where(Face.guess_name_id == name_id)).all()
        if guessed:
            session.execute(update(Face).where(Face.id.in_(guessed)).values(
                state=FaceState.UNNAMED, guess_name_id=None, guess_distance=None, guess_finders=None,
                guess_anchor_face_id=None, guessed_at=None, updated_at=utcnow()))
            touched.extend(guessed)
        session.execute(delete(RejectedName).where(RejectedName.name_id == name_id))
        session.execute(delete(Name).where(Name.id == name_id, Name.owner_id == owner_id))
    return touched


def _decide(face: Face, actor_id: int | None, state: FaceState, name: Name | None) -> bool:
    """Set a face's state and confirmed name, clearing its guess and group. True if its confirmed name changed."""
    before = face.name_id if face.state == FaceState.CONFIRMED else None
    now = utcnow()
    face.state = state
    face.name_id = name.id if name is not None else None
    face.guess_name_id = None
    face.guess_distance = None
    face.guess_finders = None
    face.guess_anchor_face_id = None
    face.guessed_at = None
    if state != FaceState.UNNAMED or name is not None:
        face.cluster_id = None
    face.decided_by = actor_id
    face.decided_at = now
    face.updated_at = now
    after = face.name_id if state == FaceState.CONFIRMED else None
    return before != after


def _finish(session: Session, settings, owner_id: int, actor_id: int | None,  # noqa: ANN001
            changed: dict[int, Face], old_names: set[int | None], renamed_images: set[int],
            tagged: list[tuple[int, int]], extra_faces: Iterable[int] = ()) -> Outcome:
    """Drop unused names, refresh guesses, queue events."""
    session.flush()
    withdrawn = _drop_unused_names(session, owner_id, old_names)
    refresh_guesses(session, settings, owner_id, [*changed, *withdrawn, *extra_faces])
    if renamed_images:
        emit_after_commit(session, "names_changed", owner_id=owner_id, image_ids=sorted(renamed_images))
    for face_id, contact_id in tagged:
        emit_after_commit(session, "face_tagged", owner_id=owner_id, face_id=face_id, contact_user_id=contact_id,
                          actor_id=actor_id)
    name_ids = {f.name_id for f in changed.values()}
    return Outcome(sorted(changed), sorted(renamed_images), name_ids.pop() if len(name_ids) == 1 else None)


# --- actions on faces -------------------------------------------------------------------------------------------


def set_names(session: Session, settings, owner_id: int, actor_id: int | None,  # noqa: ANN001
              items: Iterable[tuple[int, str | None]]) -> Outcome:
    """Name many faces at once, ``(face_id, name)`` pairs (an empty name resets the face); one refresh.
    Every face is checked before anything changes."""
    items = list(items)
    faces = [get_face(session, owner_id, face_id) for face_id, _ in items]
    for face in faces:
        _check_taggable(face)
    changed: dict[int, Face] = {}
    old_names: set[int | None] = set()
    images: set[int] = set()
    tagged: list[tuple[int, int]] = []
    for face, (_, text) in zip(faces, items):
        name = _resolve_name(session, owner_id, text, None, None)
        old_names.add(face.name_id)
        state = FaceState.CONFIRMED if name is not None else FaceState.UNNAMED
        if _decide(face, actor_id, state, name):
            images.add(face.image_id)
            if name is not None and name.contact_user_id:
                tagged.append((face.id, name.contact_user_id))
        changed[face.id] = face
    return _finish(session, settings, owner_id, actor_id, changed, old_names, images, tagged)


def set_name(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int,  # noqa: ANN001
             name: str | None = None, *, name_id: int | None = None,
             contact_user_id: int | None = None) -> Outcome:
    """Give face ``face_id`` a confirmed name: a new or existing name by text, an existing name by
    ``name_id``, or the name linked to the account ``contact_user_id`` (created if needed; a ``face_tagged``
    event tells that person). An empty name with neither id resets the face."""
    face = get_face(session, owner_id, face_id)
    _check_taggable(face)
    target = _resolve_name(session, owner_id, name, name_id, contact_user_id)
    old = face.name_id
    state = FaceState.CONFIRMED if target is not None else FaceState.UNNAMED
    images: set[int] = set()
    tagged = []
    if _decide(face, actor_id, state, target):
        images.add(face.image_id)
        if target is not None and target.contact_user_id:
            tagged.append((face.id, target.contact_user_id))
    return _finish(session, settings, owner_id, actor_id, {face.id: face}, {old}, images, tagged)


def confirm(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int) -> Outcome:  # noqa: ANN001
    """Confirm the guessed name of face ``face_id``. Raises NamingError when it has no guess."""
    face = get_face(session, owner_id, face_id)
    _check_taggable(face)
    if face.state != FaceState.GUESSED or face.guess_name_id is None:
        raise NamingError(f"face {face_id} has no guessed name to confirm")
    return set_name(session, settings, owner_id, actor_id, face_id, name_id=face.guess_name_id)


def reject(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int) -> Outcome:  # noqa: ANN001
    """Reject the guessed name of face ``face_id``: that name is never guessed for this face again."""
    face = get_face(session, owner_id, face_id)
    _check_taggable(face)
    if face.state != FaceState.GUESSED or face.guess_name_id is None:
        raise NamingError(f"face {face_id} has no guessed name to reject")
    exists = session.get(RejectedName, (face.id, face.guess_name_id))
    if exists is None:
        session.add(RejectedName(face_id=face.id, name_id=face.guess_name_id))
    _decide(face, actor_id, FaceState.UNNAMED, None)
    return _finish(session, settings, owner_id, actor_id, {face.id: face}, set(), set(), [])


def _set_state(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int,  # noqa: ANN001
               state: FaceState) -> Outcome:
    face = get_face(session, owner_id, face_id)
    _check_taggable(face)
    old = face.name_id
    images = {face.image_id} if _decide(face, actor_id, state, None) else set()
    return _finish(session, settings, owner_id, actor_id, {face.id: face}, {old}, images, [])


def mark_unknown(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int) -> Outcome:  # noqa: ANN001
    """Mark face ``face_id`` as someone unknown: it is not guessed again (its name, if any, is taken off)."""
    return _set_state(session, settings, owner_id, actor_id, face_id, FaceState.UNKNOWN)


def ignore(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int) -> Outcome:  # noqa: ANN001
    """Ignore face ``face_id`` (not a face, or not of interest): no name, no guess, no group."""
    return _set_state(session, settings, owner_id, actor_id, face_id, FaceState.IGNORED)


def reset(session: Session, settings, owner_id: int, actor_id: int | None, face_id: int) -> Outcome:  # noqa: ANN001
    """Take face ``face_id`` back to unnamed (its rejected names stay rejected); it may be guessed again."""
    return _set_state(session, settings, owner_id, actor_id, face_id, FaceState.UNNAMED)


# --- actions on names -------------------------------------------------------------------------------------------


def _images_of_name(session: Session, name_id: int) -> set[int]:
    return set(session.scalars(select(Face.image_id).where(
        Face.name_id == name_id, Face.state == FaceState.CONFIRMED)).all())


def rename(session: Session, settings, owner_id: int, actor_id: int | None, name: int | str,  # noqa: ANN001
           new_text: str) -> Outcome:
    """Rename the name ``name`` (id or text) to ``new_text``. Raises NamingError if ``new_text`` is taken
    (merge the two names instead) or empty."""
    target = get_name(session, owner_id, name)
    text = clean_name(new_text)
    if not text:
        raise NamingError("the new name is empty")
    if text == target.name:
        return Outcome([], [], target.id)
    taken = session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == text))
    if taken is not None:
        raise NamingError(f"the name {text!r} already exists: merge the two names instead")
    target.name = text
    target.updated_at = utcnow()
    images = _images_of_name(session, target.id)
    session.flush()
    refresh_guesses(session, settings, owner_id, [])
    if images:
        emit_after_commit(session, "names_changed", owner_id=owner_id, image_ids=sorted(images))
    return Outcome([], sorted(images), target.id)


def merge(session: Session, settings, owner_id: int, actor_id: int | None, keep: int | str,  # noqa: ANN001
          other: int | str) -> Outcome:
    """Merge name ``other`` into ``keep``: every face confirmed, guessed or rejected as ``other`` moves to
    ``keep`` and ``other`` disappears. :func:`undo` reverts it."""
    kept = get_name(session, owner_id, keep)
    gone = get_name(session, owner_id, other)
    if kept.id == gone.id:
        raise NamingError("a name cannot be merged with itself")
    confirmed = session.scalars(select(Face.id).where(Face.name_id == gone.id)).all()
    guessed = session.scalars(select(Face.id).where(Face.guess_name_id == gone.id)).all()
    rejected = session.scalars(select(RejectedName.face_id).where(RejectedName.name_id == gone.id)).all()
    already = set(session.scalars(select(RejectedName.face_id).where(RejectedName.name_id == kept.id)).all())
    images = _images_of_name(session, gone.id)
    session.add(UndoEntry(owner_id=owner_id, action="merge", payload={
        "kept": kept.id,
        "merged": {"uuid": gone.uuid, "name": gone.name, "contact_user_id": gone.contact_user_id,
                   "created_at": gone.created_at.isoformat() if gone.created_at else None},
        "confirmed": list(confirmed), "guessed": list(guessed),
        "rejected": list(rejected), "rejected_already": sorted(already & set(rejected)),
        "actor_id": actor_id,
    }))
    now = utcnow()
    if confirmed:
        session.execute(update(Face).where(Face.id.in_(confirmed)).values(name_id=kept.id, updated_at=now))
    if guessed:
        session.execute(update(Face).where(Face.id.in_(guessed)).values(guess_name_id=kept.id, updated_at=now))
    for face_id in rejected:
        if face_id not in already:
            session.add(RejectedName(face_id=face_id, name_id=kept.id))
    session.execute(delete(RejectedName).where(RejectedName.name_id == gone.id))
    if kept.contact_user_id is None and gone.contact_user_id is not None:
        kept.contact_user_id = gone.contact_user_id
    kept.updated_at = now
    session.flush()
    session.execute(delete(Name).where(Name.id == gone.id))
    refresh_guesses(session, settings, owner_id, [*confirmed, *guessed])
    if images:
        emit_after_commit(session, "names_changed", owner_id=owner_id, image_ids=sorted(images))
    return Outcome(sorted(set(confirmed) | set(guessed)), sorted(images), kept.id)


def name_group(session: Session, settings, owner_id: int, actor_id: int | None, group_id: int,  # noqa: ANN001
               name: str | None = None, *, name_id: int | None = None,
               contact_user_id: int | None = None) -> Outcome:
    """Confirm one name on every face of group ``group_id`` (undoable with :func:`undo`)."""
    members = session.scalars(select(Face).where(
        Face.owner_id == owner_id, Face.cluster_id == group_id,
        Face.state.in_([FaceState.UNNAMED, FaceState.GUESSED]))).all()
    if not members:
        raise NamingError(f"there is no group {group_id} in this library")
    target = _resolve_name(session, owner_id, name, name_id, contact_user_id)
    if target is None:
        raise NamingError("a group needs a name")
    session.add(UndoEntry(owner_id=owner_id, action="name_group", payload={
        "name_id": target.id, "faces": [_face_snapshot(f) for f in members]}))
    images, tagged = set(), []
    for face in members:
        if _decide(face, actor_id, FaceState.CONFIRMED, target):
            images.add(face.image_id)
            if target.contact_user_id:
                tagged.append((face.id, target.contact_user_id))
    return _finish(session, settings, owner_id, actor_id, {f.id: f for f in members}, set(), images, tagged)


def split_group(session: Session, settings, owner_id: int, actor_id: int | None,  # noqa: ANN001
                face_ids: list[int]) -> Outcome:
    """Take faces out of their group: together they form a new group of their own (one face: a group of one,
    which later look-alikes may join), so they do not fall back into the old group."""
    faces = [get_face(session, owner_id, fid) for fid in face_ids]
    for face in faces:
        if face.state not in (FaceState.UNNAMED, FaceState.GUESSED):
            raise NamingError(f"face {face.id} is not in a group (only faces without a name are grouped)")
    largest = session.scalar(select(func.max(Face.cluster_id)).where(Face.owner_id == owner_id)) or 0
    now = utcnow()
    for face in faces:
        face.cluster_id = largest + 1
        face.decided_by = actor_id
        face.decided_at = now
        face.updated_at = now
    session.flush()
    return Outcome(sorted(f.id for f in faces), [], None)


def _face_snapshot(face: Face) -> dict:
    return {"id": face.id, "state": face.state.value, "name_id": face.name_id, "guess_name_id": face.guess_name_id,
            "guess_distance": face.guess_distance, "guess_finders": face.guess_finders,
            "guess_anchor_face_id": face.guess_anchor_face_id, "cluster_id": face.cluster_id}


# --- undo -------------------------------------------------------------------------------------------------------


def undo(session: Session, settings, owner_id: int, actor_id: int | None) -> str:  # noqa: ANN001
    """Revert the owner's last undoable action (a merge or a group naming); returns a sentence saying what.
    Raises NothingToUndo."""
    entry = session.scalar(select(UndoEntry).where(UndoEntry.owner_id == owner_id)
                           .order_by(UndoEntry.id.desc()).limit(1))
    if entry is None:
        raise NothingToUndo("there is nothing to undo")
    payload = entry.payload
    session.delete(entry)
    if entry.action == "merge":
        return _undo_merge(session, settings, owner_id, payload)
    if entry.action == "name_group":
        return _undo_name_group(session, settings, owner_id, actor_id, payload)
    raise NamingError(f"cannot undo an action of kind {entry.action!r}")


def _undo_merge(session: Session, settings, owner_id: int, payload: dict) -> str:  # noqa: ANN001
    kept = session.get(Name, payload["kept"])
    info = payload["merged"]
    if session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == info["name"])) is not None:
        raise NamingError(f"cannot undo the merge: the name {info['name']!r} exists again")
    restored = Name(owner_id=owner_id, name=info["name"], contact_user_id=info["contact_user_id"])
    if session.scalar(select(Name).where(Name.uuid == info["uuid"])) is None:
        restored.uuid = info["uuid"]
    session.add(restored)
    session.flush()
    kept_id = kept.id if kept is not None else None
    # only faces still carrying the kept name go back (later decisions stay)
    confirmed = [fid for fid in payload["confirmed"]]
    moved = session.scalars(select(Face.id).where(Face.id.in_(confirmed or [-1]), Face.owner_id == owner_id,
                                                  Face.name_id == kept_id)).all() if kept_id else []
    now = utcnow()
    if moved:
        session.execute(update(Face).where(Face.id.in_(moved)).values(name_id=restored.id, updated_at=now))
    for face_id in payload["rejected"]:
        if session.get(Face, face_id) is None:
            continue
        session.add(RejectedName(face_id=face_id, name_id=restored.id))
        if kept_id and face_id not in payload["rejected_already"]:
            session.execute(delete(RejectedName).where(RejectedName.face_id == face_id,
                                                       RejectedName.name_id == kept_id))
    session.flush()
    images = _images_of_name(session, restored.id)
    refresh_guesses(session, settings, owner_id, [*moved, *payload["guessed"]])
    if images:
        emit_after_commit(session, "names_changed", owner_id=owner_id, image_ids=sorted(images))
    return f"undid the merge of {info['name']!r}: {len(moved)} faces have that name again"


def _undo_name_group(session: Session, settings, owner_id: int, actor_id: int | None,  # noqa: ANN001
                     payload: dict) -> str:
    restored: dict[int, Face] = {}
    images: set[int] = set()
    for snap in payload["faces"]:
        face = session.get(Face, snap["id"])
        # a face named otherwise since then keeps that later decision
        if face is None or face.owner_id != owner_id or face.name_id != payload["name_id"] \
                or face.state != FaceState.CONFIRMED:
            continue
        face.state = FaceState(snap["state"])
        face.name_id = snap["name_id"]
        face.guess_name_id = snap["guess_name_id"] if snap["guess_name_id"] and session.get(
            Name, snap["guess_name_id"]) is not None else None
        face.guess_distance = snap["guess_distance"] if face.guess_name_id else None
        face.guess_finders = snap["guess_finders"] if face.guess_name_id else None
        face.guess_anchor_face_id = snap["guess_anchor_face_id"] if face.guess_name_id else None
        if face.state == FaceState.GUESSED and face.guess_name_id is None:
            face.state = FaceState.UNNAMED
        face.cluster_id = snap["cluster_id"]
        face.updated_at = utcnow()
        images.add(face.image_id)
        restored[face.id] = face
    _finish(session, settings, owner_id, actor_id, restored, {payload["name_id"]}, images, [])
    return f"undid the naming of a group: {len(restored)} faces are unnamed again"
