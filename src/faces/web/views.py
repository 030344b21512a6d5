"""What the JSON API answers, and the queries behind the gallery: images with their frames, keyset pagination.

Pages of the gallery are ordered by ``(Image.sort_at, Image.id)`` descending (newest first: date taken, else
date added) and continue from an opaque cursor, so a page costs the same at the start and deep down a library.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta

from fastapi import HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from faces.sharing import permissions
from faces.store.models import Face, FaceState, FinderStatus, Image, ImageFinder, Name

HIDDEN_STATES = (FaceState.IGNORED, FaceState.REMOVED)


class NameRef(BaseModel):
    id: int
    name: str


class FaceOut(BaseModel):
    """One frame: ``box`` is ``[x, y, w, h]`` in pixels of the upright full-size image."""

    id: int
    image_id: int
    box: list[int]
    state: str  # unnamed | guessed | confirmed | unknown | ignored | removed
    name: NameRef | None = None  # the confirmed name
    guess: NameRef | None = None  # the guessed name (state guessed)
    thumb_url: str


class ImageOut(BaseModel):
    """One photo of the gallery with its frames. ``status`` is ``pending`` (not every finder has seen it yet),
    ``done``, or ``error`` (the file cannot be read: ``error`` says why; a finder's error is in ``finder_errors``)."""

    id: int
    owner_id: int
    width: int
    height: int
    taken_at: datetime | None
    added_at: datetime
    sort_at: datetime
    status: str
    error: str | None = None
    finder_errors: list[str] = []
    thumb_url: str
    full_url: str
    faces: list[FaceOut] = []


class ImagePage(BaseModel):
    """A page of the gallery; pass ``next_cursor`` back as ``cursor`` for the next one (null: the end)."""

    items: list[ImageOut]
    next_cursor: str | None


_FACE_COLUMNS = (Face.id, Face.image_id, Face.x, Face.y, Face.w, Face.h, Face.state, Face.name_id,
                 Face.guess_name_id)
_IMAGE_COLUMNS = (Image.id, Image.owner_id, Image.width, Image.height, Image.taken_at, Image.added_at,
                  Image.sort_at, Image.error_code, Image.error)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def face_dicts(db: Session, image_ids: list[int], *, include_hidden: bool = False,
               show_names: bool = True) -> dict[int, list[dict]]:
    """The frames of these images as :class:`FaceOut`-shaped dicts (ignored and removed faces left out unless
    ``include_hidden``). Plain column queries: a gallery page builds a hundred of these."""
    if not image_ids:
        return {}
    query = select(*_FACE_COLUMNS).where(Face.image_id.in_(image_ids)).order_by(Face.image_id, Face.x)
    if not include_hidden:
        query = query.where(Face.state.not_in(HIDDEN_STATES))
    rows = db.execute(query).all()
    name_ids = {i for r in rows for i in (r.name_id, r.guess_name_id) if i is not None} if show_names else set()
    names = dict(db.execute(select(Name.id, Name.name).where(Name.id.in_(name_ids))).all()) if name_ids else {}
    result: dict[int, list[dict]] = {i: [] for i in image_ids}
    for r in rows:
        state = r.state.value if isinstance(r.state, FaceState) else str(r.state)
        name = guess = None
        if state == "confirmed" and r.name_id in names:
            name = {"id": r.name_id, "name": names[r.name_id]}
        if state == "guessed" and r.guess_name_id in names:
            guess = {"id": r.guess_name_id, "name": names[r.guess_name_id]}
        result[r.image_id].append({"id": r.id, "image_id": r.image_id, "box": [r.x, r.y, r.w, r.h], "state": state,
                                   "name": name, "guess": guess, "thumb_url": f"/api/faces/{r.id}/thumb"})
    return result


def faces_of_images(db: Session, image_ids: list[int], *, include_hidden: bool = False,
                    show_names: bool = True) -> dict[int, list[FaceOut]]:
    """The frames of these images as :class:`FaceOut` (see :func:`face_dicts`)."""
    found = face_dicts(db, image_ids, include_hidden=include_hidden, show_names=show_names)
    return {image_id: [FaceOut.model_validate(f) for f in faces] for image_id, faces in found.items()}


def image_dicts(db: Session, image_ids: list[int], *, show_names: bool = True, rows: list | None = None) -> list[dict]:
    """Gallery entries (:class:`ImageOut`-shaped dicts) for ``image_ids``, in that order, with frames and status
    (``rows``: their image columns when the caller has them already)."""
    if not image_ids:
        return []
    if rows is None:
        rows = db.execute(select(*_IMAGE_COLUMNS).where(Image.id.in_(image_ids))).all()
    rows = {r.id: r for r in rows}
    frames = face_dicts(db, image_ids, show_names=show_names)
    statuses: dict[int, list[tuple[str, FinderStatus, str | None]]] = {}
    for image_id, finder, status, error in db.execute(
            select(ImageFinder.image_id, ImageFinder.finder, ImageFinder.status, ImageFinder.error)
            .where(ImageFinder.image_id.in_(image_ids))):
        statuses.setdefault(image_id, []).append((finder, status, error))
    out = []
    for image_id in image_ids:
        image = rows.get(image_id)
        if image is None:
            continue
        finders = statuses.get(image_id, [])
        if image.error_code:
            status = "error"
        elif not finders or any(s == FinderStatus.PENDING for _, s, _ in finders):
            status = "pending"
        else:
            status = "done"
        out.append({
            "id": image.id, "owner_id": image.owner_id, "width": image.width, "height": image.height,
            "taken_at": _iso(image.taken_at), "added_at": _iso(image.added_at), "sort_at": _iso(image.sort_at),
            "status": status, "error": sentence(image.error) if image.error_code else None,
            "finder_errors": [f"{finder}: {error or 'failed'}" for finder, s, error in finders
                              if s == FinderStatus.ERROR],
            "thumb_url": f"/api/images/{image.id}/thumb", "full_url": f"/api/images/{image.id}/full",
            "faces": frames.get(image.id, [])})
    return out


def image_outs(db: Session, images: list[Image], *, show_names: bool = True) -> list[ImageOut]:
    """Gallery entries for ``images`` (in the given order) as :class:`ImageOut`."""
    return [ImageOut.model_validate(d) for d in image_dicts(db, [i.id for i in images], show_names=show_names)]


def json_response(data: dict | list) -> Response:
    """``data`` as a JSON response, without a second validation pass (the route's response_model documents it)."""
    return Response(json.dumps(data, ensure_ascii=False, separators=(",", ":")), media_type="application/json")


def sentence(text: str | None) -> str:
    """``text`` as a sentence: capital first letter, final full stop."""
    text = (text or "This file cannot be read as an image").strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# --- keyset pagination -------------------------------------------------------------------------------------


def encode_cursor(sort_at: datetime, image_id: int) -> str:
    raw = f"{sort_at.replace(tzinfo=None).isoformat()}|{image_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(sort_at, id)`` of a cursor; 400 when it was not made by :func:`encode_cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, image_id = raw.split("|")
        return datetime.fromisoformat(when), int(image_id)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "The page cursor is not valid; start again from the first page.") from None


def visible_images(db: Session, observer_id: int | None, owner_id: int) -> ColumnElement[bool]:
    """The images of ``owner_id`` that ``observer_id`` may see (asks :mod:`faces.sharing.permissions`)."""
    clause = getattr(permissions, "visible_images_clause", None)
    if clause is not None:
        return clause(db, observer_id, owner_id)
    # permissions without a list query: owner-only, the same rule as its can_view_image
    return and_(Image.owner_id == owner_id, true() if observer_id == owner_id else false())


def _name_clause(name_ids: list[int], match_all: bool, include_guesses: bool) -> ColumnElement[bool]:
    def having(name_id: int) -> ColumnElement[bool]:
        named = and_(Face.name_id == name_id, Face.state == FaceState.CONFIRMED)
        if include_guesses:
            named = or_(named, and_(Face.guess_name_id == name_id, Face.state == FaceState.GUESSED))
        return Image.id.in_(select(Face.image_id).where(named))

    if match_all:
        return and_(*[having(n) for n in name_ids])
    named = and_(Face.name_id.in_(name_ids), Face.state == FaceState.CONFIRMED)
    if include_guesses:
        named = or_(named, and_(Face.guess_name_id.in_(name_ids), Face.state == FaceState.GUESSED))
    return Image.id.in_(select(Face.image_id).where(named))


def gallery_page(db: Session, observer_id: int | None, owner_id: int, *, limit: int = 60, cursor: str | None = None,
                 date_from: date | None = None, date_to: date | None = None, name_ids: list[int] | None = None,
                 match_all: bool = True, include_guesses: bool = False, status: str | None = None,
                 show_names: bool = True) -> dict:
    """One page (:class:`ImagePage`-shaped dict) of ``owner_id``'s photos that ``observer_id`` may see, newest first.

    ``date_from``/``date_to`` (inclusive) filter the date shown (taken, else added); ``name_ids`` keeps photos
    with all (``match_all``) or any of these people, confirmed (and guessed with ``include_guesses``);
    ``status="error"`` keeps the photos whose file cannot be read.
    """
    query = select(*_IMAGE_COLUMNS).where(visible_images(db, observer_id, owner_id))
    if date_from is not None:
        query = query.where(Image.sort_at >= datetime.combine(date_from, datetime.min.time()))
    if date_to is not None:
        query = query.where(Image.sort_at < datetime.combine(date_to + timedelta(days=1), datetime.min.time()))
    if name_ids:
        query = query.where(_name_clause(name_ids, match_all, include_guesses))
    if status == "error":
        query = query.where(Image.error_code.is_not(None))
    if cursor:
        at, last_id = decode_cursor(cursor)
        # the first condition bounds the index range; the second breaks ties on the id
        query = query.where(Image.sort_at <= at, or_(Image.sort_at < at, Image.id < last_id))
    rows = db.execute(query.order_by(Image.sort_at.desc(), Image.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].sort_at, rows[-1].id) if more and rows else None
    return {"items": image_dicts(db, [r.id for r in rows], show_names=show_names, rows=rows),
            "next_cursor": next_cursor}


def name_refs(db: Session, ids: list[int]) -> dict[int, str]:
    return dict(db.execute(select(Name.id, Name.name).where(Name.id.in_(ids))).all()) if ids else {}

