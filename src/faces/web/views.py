"""What the JSON API answers, and the queries behind the gallery: images with their frames, keyset pagination.

Pages of the gallery are ordered by ``(Image.sort_at, Image.id)`` descending (newest first: date taken, else
date added) and continue from an opaque cursor, so a page costs the same at the start and deep down a library.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from fastapi import HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import Integer, Select, String, and_, bindparam, case, false, func, or_, select, true, union_all
from sqlalchemy import type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from faces.sharing import permissions
from faces.store.models import Face, FaceState, FinderStatus, Image, ImageFinder, Name
from faces.web import raw_rows

try:
    import orjson
except ImportError:  # optional: json_response falls back to the standard library
    orjson = None

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


_IMAGES = Image.__table__
_FACES = Face.__table__
_FINDERS = ImageFinder.__table__
_SHOWN = Name.__table__.alias("shown")
# Core columns, no ORM entities, run through faces.web.raw_rows: rows are the driver's tuples. States are read as
# their stored strings rather than converted to the enums.
_FACE_STATE = type_coerce(_FACES.c.state, String)
_FINDER_STATUS = type_coerce(_FINDERS.c.status, String)
# What the finders say about an image, in one index lookup: NULL when no finder was asked yet, else 2 if one of
# them has yet to look at it, plus 1 if one of them failed.
_FINDER_FLAGS = (select(func.max(case((_FINDER_STATUS == FinderStatus.PENDING.value, 2), else_=0))
                        + func.max(case((_FINDER_STATUS == FinderStatus.ERROR.value, 1), else_=0)))
                 .where(_FINDERS.c.image_id == _IMAGES.c.id)
                 .scalar_subquery())
_IMAGE_COLUMNS = (
    _IMAGES.c.id, _IMAGES.c.owner_id, _IMAGES.c.width, _IMAGES.c.height, _IMAGES.c.taken_at, _IMAGES.c.added_at,
    _IMAGES.c.sort_at, _IMAGES.c.error_code, _IMAGES.c.error, _FINDER_FLAGS.label("finders"),
)
_IDS = bindparam("ids", expanding=True)


def _id_list(count: int) -> list:
    """An IN list of ``count`` bound parameters ``id_0``... (see :func:`faces.web.raw_rows.id_params`)."""
    return [bindparam(f"id_{k}", type_=Integer) for k in range(count)]


def _faces_statement(count: int, include_hidden: bool) -> Select:
    """The frames of ``count`` images (``id_0``...) with the name they show (the confirmed name of a confirmed
    face, the guessed one of a guessed face), in image and left-to-right order."""
    state = _FACE_STATE
    shown_name_id = case((state == FaceState.CONFIRMED.value, _FACES.c.name_id),
                         (state == FaceState.GUESSED.value, _FACES.c.guess_name_id))
    query = (select(_FACES.c.id, _FACES.c.image_id, _FACES.c.x, _FACES.c.y, _FACES.c.w, _FACES.c.h,
                    state.label("state"), _SHOWN.c.id.label("shown_id"), _SHOWN.c.name)
             .select_from(_FACES.outerjoin(_SHOWN, _SHOWN.c.id == shown_name_id))
             .where(_FACES.c.image_id.in_(_id_list(count)))
             .order_by(_FACES.c.image_id, _FACES.c.x, _FACES.c.id))
    if not include_hidden:
        query = query.where(*(state != s.value for s in HIDDEN_STATES))
    return query


def _images_statement(count: int) -> Select:
    """The gallery columns of ``count`` images (``id_0``...), in no particular order."""
    return select(*_IMAGE_COLUMNS).where(_IMAGES.c.id.in_(_id_list(count)))


_FINDER_ERRORS = (select(_FINDERS.c.image_id, _FINDERS.c.finder, _FINDERS.c.error)
                  .where(_FINDERS.c.image_id.in_(_IDS), _FINDERS.c.status == FinderStatus.ERROR)
                  .order_by(_FINDERS.c.image_id, _FINDERS.c.finder))
_CONFIRMED, _GUESSED = FaceState.CONFIRMED.value, FaceState.GUESSED.value


# How the gallery's statements run: on the DB-API cursor (faces.web.raw_rows), compiled once per dialect and
# shape. False: through SQLAlchemy's execution, the reference that the tests compare the JSON with.
FAST_ROWS = True


def _rows(db: Session, key: tuple, build: Callable[[], Select], params: dict) -> Sequence[Sequence]:
    """The rows of the statement ``build()`` (built and compiled once per dialect and ``key``) with ``params``."""
    if not FAST_ROWS:
        return db.connection().execute(build(), params).all()
    return raw_rows.rows(db, key, build, params)


def face_dicts(db: Session, image_ids: list[int], *, include_hidden: bool = False,
               show_names: bool = True) -> dict[int, list[dict]]:
    """The frames of these images as :class:`FaceOut`-shaped dicts (ignored and removed faces left out unless
    ``include_hidden``); every id of ``image_ids`` is a key. One statement (faces with their names)."""
    if not image_ids:
        return {}
    count = len(image_ids)
    rows = _rows(db, ("faces", count, include_hidden), lambda: _faces_statement(count, include_hidden),
                 raw_rows.id_params(image_ids))
    result: dict[int, list[dict]] = {i: [] for i in image_ids}
    for face_id, image_id, x, y, w, h, state, shown_id, shown in rows:
        name = guess = None
        if shown is not None and show_names:
            if state == _CONFIRMED:
                name = {"id": shown_id, "name": shown}
            else:
                guess = {"id": shown_id, "name": shown}
        result[image_id].append({
            "id": face_id, "image_id": image_id, "box": [x, y, w, h], "state": state, "name": name, "guess": guess,
            "thumb_url": f"/api/faces/{face_id}/thumb"})
    return result


def faces_of_images(db: Session, image_ids: list[int], *, include_hidden: bool = False,
                    show_names: bool = True) -> dict[int, list[FaceOut]]:
    """The frames of these images as :class:`FaceOut` (see :func:`face_dicts`)."""
    found = face_dicts(db, image_ids, include_hidden=include_hidden, show_names=show_names)
    return {image_id: [FaceOut.model_validate(f) for f in faces] for image_id, faces in found.items()}


def image_dicts(db: Session, image_ids: list[int], *, show_names: bool = True, rows: list | None = None) -> list[dict]:
    """Gallery entries (:class:`ImageOut`-shaped dicts) for ``image_ids``, in that order, with frames and status
    (``rows``: their ``_IMAGE_COLUMNS`` when the caller has them already). Two statements, three when a finder
    failed on one of them."""
    if not image_ids:
        return []
    if rows is None:
        count = len(image_ids)
        rows = _rows(db, ("images", count), lambda: _images_statement(count), raw_rows.id_params(image_ids))
    by_id = {r[0]: r for r in rows}
    frames = face_dicts(db, image_ids, show_names=show_names)
    failed = [r[0] for r in rows if (r[-1] or 0) & 1]  # by position: a Row's attributes are slower
    finder_errors: dict[int, list[str]] = {}
    if failed:
        for image_id, finder, error in db.connection().execute(_FINDER_ERRORS, {"ids": failed}):
            finder_errors.setdefault(image_id, []).append(f"{finder}: {error or 'failed'}")
    out = []
    for image_id in image_ids:
        image = by_id.get(image_id)
        if image is None:
            continue
        _, owner_id, width, height, taken_at, added_at, sort_at, error_code, error, finders = image
        out.append({
            "id": image_id, "owner_id": owner_id, "width": width, "height": height,
            "taken_at": taken_at, "added_at": added_at, "sort_at": sort_at,  # datetimes: see json_response
            "status": "error" if error_code else "pending" if finders is None or finders & 2 else "done",
            "error": sentence(error) if error_code else None,
            "finder_errors": finder_errors.get(image_id, []),
            "thumb_url": f"/api/images/{image_id}/thumb", "full_url": f"/api/images/{image_id}/full",
            "faces": frames[image_id]})
    return out


def image_outs(db: Session, images: list[Image], *, show_names: bool = True) -> list[ImageOut]:
    """Gallery entries for ``images`` (in the given order) as :class:`ImageOut`."""
    return [ImageOut.model_validate(d) for d in image_dicts(db, [i.id for i in images], show_names=show_names)]


def json_response(data: dict | list) -> Response:
    """``data`` as a JSON response, without a second validation pass (the route's response_model documents it)."""
    return Response(dumps(data), media_type="application/json")


def dumps(data: dict | list) -> bytes:
    """``data`` as JSON (UTF-8). Datetimes are written as ISO 8601 (``datetime.isoformat``). orjson, when
    installed, encodes a gallery page several times faster than the standard library."""
    if orjson is not None:
        return orjson.dumps(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_iso_default).encode()


def _iso_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


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


@dataclass(frozen=True)
class _PageShape:
    """Which filters a gallery query has; their values are bound parameters (see :func:`_page_params`)."""

    after: bool = False  # continues from a cursor
    date_from: bool = False
    date_to: bool = False
    names: int = 0  # how many name ids
    match_all: bool = True
    include_guesses: bool = False
    errors_only: bool = False


def _has_name(name_id: ColumnElement | list[ColumnElement], *, several: bool,
              include_guesses: bool) -> ColumnElement[bool]:
    """Images with a face confirmed as ``name_id`` (a bound parameter; a list of them with ``several``: any of
    them), or guessed as it with ``include_guesses``."""
    def is_(column: ColumnElement) -> ColumnElement[bool]:
        return column.in_(name_id) if several else column == name_id

    named = and_(is_(_FACES.c.name_id), _FACE_STATE == FaceState.CONFIRMED.value)
    if include_guesses:
        named = or_(named, and_(is_(_FACES.c.guess_name_id), _FACE_STATE == FaceState.GUESSED.value))
    return _IMAGES.c.id.in_(select(_FACES.c.image_id).where(named))


def _page_statement(shape: _PageShape, visible: ColumnElement[bool]) -> Select:
    """A page of the images that ``visible`` keeps, newest first, with ``shape``'s filters as bound parameters.

    The page's ids come from a derived table that reads only the (owner_id, sort_at, id) index for a plain page,
    and the image columns are joined to those few ids: MariaDB otherwise walked the index from the newest photo
    down to the cursor for every page (a deep page cost as much as all the pages before it). After a cursor, the
    ids are those of two exact index ranges, the cursor's moment (``sort_at = at AND id < last_id``) and the older
    ones (``sort_at < at``): SQLite and MariaDB bound a range by ``sort_at`` alone for the row comparison
    ``(sort_at, id) < (at, last_id)``, and walked all the photos of one moment (a folder uploaded at once, without
    dates taken) down to the cursor for every page within them."""
    ids = select(_IMAGES.c.id).where(visible)
    if shape.date_from:
        ids = ids.where(_IMAGES.c.sort_at >= bindparam("date_from", type_=_IMAGES.c.sort_at.type))
    if shape.date_to:
        ids = ids.where(_IMAGES.c.sort_at < bindparam("date_to", type_=_IMAGES.c.sort_at.type))
    if shape.names and shape.match_all:
        ids = ids.where(*[_has_name(bindparam(f"name_{i}"), several=False, include_guesses=shape.include_guesses)
                          for i in range(shape.names)])
    elif shape.names:
        ids = ids.where(_has_name([bindparam(f"name_{i}") for i in range(shape.names)], several=True,
                                  include_guesses=shape.include_guesses))
    if shape.errors_only:
        ids = ids.where(_IMAGES.c.error_code.is_not(None))
    limit = bindparam("limit", type_=Integer)
    newest_first = (_IMAGES.c.sort_at.desc(), _IMAGES.c.id.desc())
    if shape.after:
        at, last_id = bindparam("at", type_=_IMAGES.c.sort_at.type), bindparam("last_id", type_=Integer)
        ids = ids.add_columns(_IMAGES.c.sort_at)
        same_moment = ids.where(_IMAGES.c.sort_at == at, _IMAGES.c.id < last_id).order_by(*newest_first).limit(limit)
        older = ids.where(_IMAGES.c.sort_at < at).order_by(*newest_first).limit(limit)
        candidates = union_all(*(select(arm.c.id, arm.c.sort_at) for arm in (same_moment.subquery("same_moment"),
                                                                             older.subquery("older"))))
        candidates = candidates.subquery("candidates")
        page = (select(candidates.c.id).order_by(candidates.c.sort_at.desc(), candidates.c.id.desc()).limit(limit)
                .subquery("page"))
    else:
        page = ids.order_by(*newest_first).limit(limit).subquery("page")
    return select(*_IMAGE_COLUMNS).join_from(_IMAGES, page, _IMAGES.c.id == page.c.id).order_by(*newest_first)


@lru_cache(maxsize=128)
def _own_page_statement(shape: _PageShape) -> Select:
    """:func:`_page_statement` for an owner looking at their own library (every image), built once per shape."""
    return _page_statement(shape, _IMAGES.c.owner_id == bindparam("owner"))


def gallery_page(db: Session, observer_id: int | None, owner_id: int, *, limit: int = 60, cursor: str | None = None,
                 date_from: date | None = None, date_to: date | None = None, name_ids: list[int] | None = None,
                 match_all: bool = True, include_guesses: bool = False, status: str | None = None,
                 show_names: bool = True) -> dict:
    """One page (:class:`ImagePage`-shaped dict) of ``owner_id``'s photos that ``observer_id`` may see, newest first.

    ``date_from``/``date_to`` (inclusive) filter the date shown (taken, else added); ``name_ids`` keeps photos
    with all (``match_all``) or any of these people, confirmed (and guessed with ``include_guesses``);
    ``status="error"`` keeps the photos whose file cannot be read.
    """
    name_ids = list(dict.fromkeys(name_ids or []))
    shape = _PageShape(after=bool(cursor), date_from=date_from is not None, date_to=date_to is not None,
                       names=len(name_ids), match_all=match_all,
                       include_guesses=include_guesses and bool(name_ids), errors_only=status == "error")
    params: dict = {"limit": limit + 1}
    if date_from is not None:
        params["date_from"] = datetime.combine(date_from, datetime.min.time())
    if date_to is not None:
        params["date_to"] = datetime.combine(date_to + timedelta(days=1), datetime.min.time())
    params.update({f"name_{i}": name_id for i, name_id in enumerate(name_ids)})
    if cursor:
        params["at"], params["last_id"] = decode_cursor(cursor)
    if permissions.is_owner(observer_id, owner_id):  # one statement per shape: compiled once, run raw
        params["owner"] = owner_id
        rows = _rows(db, ("page", shape), lambda: _own_page_statement(shape), params)
    else:  # the observer's rule is a clause with their contacts' and groups' values
        rows = db.connection().execute(_page_statement(shape, visible_images(db, observer_id, owner_id)),
                                       params).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1][6], rows[-1][0]) if more and rows else None  # sort_at, id
    return {"items": image_dicts(db, [r[0] for r in rows], show_names=show_names, rows=rows),
            "next_cursor": next_cursor}


def name_refs(db: Session, ids: list[int]) -> dict[int, str]:
    return dict(db.execute(select(Name.id, Name.name).where(Name.id.in_(ids))).all()) if ids else {}

