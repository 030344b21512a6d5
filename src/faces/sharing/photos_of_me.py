"""Photos of me: every face, in every library on the server, that someone named after a user's account;
the user can remove themselves from any of them, for good (spec section 4).

A removed face gets the state ``removed``: it has no name, it cannot be named again by anyone (the naming
actions refuse it) and it is never guessed or grouped again. The owner cannot undo it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from faces import events
from faces.sharing.errors import NotFound
from faces.sharing.notifications import delete_face_notifications
from faces.sharing.permissions import can_view_image
from faces.store.models import Face, FaceState, Image, Name, User, utcnow


@dataclass
class TaggedFace:
    """One face where ``user`` was tagged. Without ``may_view_image`` the page shows only a remove button:
    then ``image_id``, ``box`` and the image size are None."""

    face_id: int
    owner_id: int
    owner_name: str
    may_view_image: bool
    image_id: int | None = None
    box: list[int] | None = None
    image_width: int | None = None
    image_height: int | None = None


def tagged_faces(session: Session, user_id: int) -> list[TaggedFace]:
    """Every confirmed face whose name is linked to ``user_id``'s account, newest photos first."""
    rows = session.execute(
        select(Face, Image, User).join(Name, Name.id == Face.name_id).join(Image, Image.id == Face.image_id)
        .join(User, User.id == Face.owner_id)
        .where(Name.contact_user_id == user_id, Face.state == FaceState.CONFIRMED)
        .order_by(Image.sort_at.desc(), Face.id)).all()
    result = []
    for face, image, owner in rows:
        visible = can_view_image(session, user_id, image)
        item = TaggedFace(face.id, owner.id, owner.display_name or owner.username, visible)
        if visible:
            item.image_id, item.box = image.id, face.box
            item.image_width, item.image_height = image.width, image.height
        result.append(item)
    return result


def remove_me(session: Session, user_id: int, face_id: int) -> Face:
    """``user_id`` removes themselves from face ``face_id``, for good.

    Raises NotFound when the face is not a confirmed face named after ``user_id`` (so ids of other faces
    reveal nothing).
    """
    face = session.get(Face, face_id)
    name = session.get(Name, face.name_id) if face is not None and face.name_id is not None else None
    if face is None or face.state != FaceState.CONFIRMED or name is None or name.contact_user_id != user_id:
        raise NotFound("you are not tagged on this face")
    now = utcnow()
    face.state = FaceState.REMOVED
    face.name_id = None
    face.guess_name_id = None
    face.guess_distance = None
    face.guess_finders = None
    face.guess_anchor_face_id = None
    face.guessed_at = None
    face.cluster_id = None
    face.decided_by = user_id
    face.decided_at = now
    face.updated_at = now
    session.flush()
    delete_face_notifications(session, {face_id}, user_id)
    _forget_caches(face.owner_id)
    events.emit_after_commit(session, "names_changed", owner_id=face.owner_id, image_ids=[face.image_id])
    return face


def _forget_caches(owner_id: int) -> None:
    """Tell the naming package's in-process caches (if it keeps any) that ``owner_id``'s faces changed."""
    try:
        from faces import naming
    except ImportError:  # pragma: no cover - naming is part of faces
        return
    invalidate = getattr(naming, "invalidate_cache", None)
    if callable(invalidate):
        invalidate(owner_id)
