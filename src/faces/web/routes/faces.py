"""Naming in place: the actions on one face (name, confirm the guess, reject it, unknown, ignore, reset) and
its thumbnail. Every action checks that the user may write in the face's library, then calls
:mod:`faces.naming.actions` (which refreshes the guesses it affects)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from faces.naming import actions
from faces.store.models import Face
from faces.web.deps import Account, DbSession, LoggedInUser, State, face_for, settings_for
from faces.web.views import FaceOut, faces_of_images

router = APIRouter(tags=["faces"])

FACE_THUMB_SIZES = (96, 192, 384)


class NameIn(BaseModel):
    """A name by its text (new or existing) or an existing name's id; an empty name resets the face."""

    name: str | None = Field(default=None, max_length=200)
    name_id: int | None = None
    contact_user_id: int | None = Field(default=None, description="Name the face after one of the owner's "
                                                                   "contacts (they are told).")


class ActionResult(BaseModel):
    """The face after the action, and the images whose confirmed names changed (the page refreshes the frames
    it shows: guesses elsewhere may have changed too)."""

    face: FaceOut
    image_ids: list[int]


def naming_error(exc: actions.NamingError) -> HTTPException:
    """The HTTP error for a refused naming action (its message is a sentence for people)."""
    text = str(exc)
    text = text[:1].upper() + text[1:]
    if not text.endswith("."):
        text += "."
    if isinstance(exc, LookupError):
        return HTTPException(404, text)
    return HTTPException(409 if isinstance(exc, actions.FaceRemovedError) else 400, text)


def face_state_out(db: Session, face_id: int) -> FaceOut:
    face = db.get(Face, face_id)
    found = faces_of_images(db, [face.image_id], include_hidden=True)[face.image_id]
    return next(f for f in found if f.id == face_id)


def _act(db: Session, state, user: Account, face_id: int, action: Callable[..., actions.Outcome],  # noqa: ANN001
         *args, **kwargs) -> ActionResult:
    face = face_for(db, user, face_id, write=True)
    try:
        outcome = action(db, settings_for(db, state), face.owner_id, user.id, face.id, *args, **kwargs)
    except actions.NamingError as exc:
        raise naming_error(exc) from None
    db.flush()
    return ActionResult(face=face_state_out(db, face.id), image_ids=list(outcome.image_ids))


@router.get("/api/faces/{face_id}", response_model=FaceOut)
def get_face(face_id: int, user: LoggedInUser, db: DbSession) -> FaceOut:
    """One face with its state and names."""
    face_for(db, user, face_id)
    return face_state_out(db, face_id)


@router.post("/api/faces/{face_id}/name", response_model=ActionResult)
def name_face(face_id: int, body: NameIn, user: LoggedInUser, db: DbSession, state: State) -> ActionResult:
    """Give the face a confirmed name (typed, or an existing name's id). An empty name resets the face."""
    if body.name_id is not None:
        return _act(db, state, user, face_id, actions.set_name, name_id=body.name_id)
    if body.contact_user_id is not None:
        face = face_for(db, user, face_id, write=True)
        from faces.sharing.contacts import are_contacts

        if not are_contacts(db, face.owner_id, body.contact_user_id):
            raise HTTPException(404, "This person is not one of the library owner's contacts.")
        return _act(db, state, user, face_id, actions.set_name, (body.name or "").strip() or None,
                    contact_user_id=body.contact_user_id)
    return _act(db, state, user, face_id, actions.set_name, (body.name or "").strip() or None)


@router.post("/api/faces/{face_id}/confirm", response_model=ActionResult)
def confirm_face(face_id: int, user: LoggedInUser, db: DbSession, state: State) -> ActionResult:
    """Confirm the guessed name."""
    return _act(db, state, user, face_id, actions.confirm)


@router.post("/api/faces/{face_id}/reject", response_model=ActionResult)
def reject_face(face_id: int, user: LoggedInUser, db: DbSession, state: State) -> ActionResult:
    """Reject the guessed name: it is never guessed for this face again."""
    return _act(db, state, user, face_id, actions.reject)


@router.post("/api/faces/{face_id}/unknown", response_model=ActionResult)
def unknown_face(face_id: int, user: LoggedInUser, db: DbSession, state: State) -> ActionResult:
    """Mark the face as someone unknown: it is not guessed again."""
    return _act(db, state, user, face_id, actions.mark_unknown)


@router.post("/api/faces/{face_id}/ignore", response_model=ActionResult)
def ignore_face(face_id: int, user: LoggedInUser, db: DbSession, state: State) -> ActionResult:
    """Ignore the face (not a face, or not of interest): its frame is hidden."""
    return _act(db, state, user, face_id, actions.ignore)


@router.post("/api/faces/{face_id}/reset", response_model=ActionResult)
def reset_face(face_id: int, user: LoggedInUser, db: DbSession, state: State) -> ActionResult:
    """Take the face back to unnamed; it may be guessed again."""
    return _act(db, state, user, face_id, actions.reset)


@router.get("/api/faces/{face_id}/thumb", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def face_thumb(face_id: int, request: Request, user: LoggedInUser, db: DbSession, state: State,
               size: Annotated[int, Query(ge=16, le=512)] = 192):
    """A square JPEG of the face with a margin (``size`` rounded up to 96, 192 or 384; cached)."""
    from faces.media import cached_face_thumbnail
    from faces.media.types import MediaError

    face = face_for(db, user, face_id)
    image = face.image
    size = next((s for s in FACE_THUMB_SIZES if s >= size), FACE_THUMB_SIZES[-1])
    etag = f'"{face.uuid[:12]}-{face.x}-{face.y}-{face.w}-{face.h}-{size}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    try:
        data = cached_face_thumbnail(state.settings.data_dir, image.path, face.uuid, (face.x, face.y, face.w, face.h),
                                     size, max_pixels=state.settings.max_image_pixels)
    except FileNotFoundError:
        raise HTTPException(410, "The image file is not on the server any more.") from None
    except MediaError as exc:
        raise HTTPException(422, exc.message) from None
    return Response(data, media_type="image/jpeg", headers=headers)
