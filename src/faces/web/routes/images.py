"""The gallery API: pages of photos with their frames (and search), one photo, its thumbnail and full size."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl
from weakref import WeakKeyDictionary

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from faces.store.data_version import read_version
from faces.web.deps import Account, DbSession, LoggedInUser, State, image_for, logged_in_work, name_for
from faces.web.deps import owner_library, web_state
from faces.web.page_cache import Page, page_of
from faces.web.views import ImageOut, ImagePage, dumps, gallery_page, image_dicts, image_outs, json_response

log = logging.getLogger(__name__)
router = APIRouter(tags=["gallery"])

THUMB_SIZES = (160, 320, 640, 1280)  # longest side in pixels; other sizes are rounded up to one of these
FULL_SIZE = 2560  # formats a browser cannot show are served as a large rendition of this size
WEB_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
CACHE = {"Cache-Control": "private, max-age=604800"}


class ImageBatch(BaseModel):
    """Several photos with their current frames and status, in the order asked."""

    items: list[ImageOut]


@router.get("/api/images", response_model=ImagePage)
async def list_images(
    request: Request,
    owner: Annotated[int | None, Query(description="The library (owner's user id); default: your own.")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 60,
    date_from: Annotated[date | None, Query(alias="from", description="First day (date taken, else added).")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day, inclusive.")] = None,
    name: Annotated[list[int] | None, Query(description="Name ids (repeat the parameter for several).")] = None,
    match: Annotated[str, Query(pattern="^(all|any)$", description="all: photos with every name (AND); "
                                                                   "any: with at least one (OR).")] = "all",
    guesses: Annotated[bool, Query(description="Count guessed names too, not only confirmed ones.")] = False,
    status: Annotated[str | None, Query(pattern="^error$", description="error: only unreadable files.")] = None,
) -> Response:
    """Photos of a library, newest first (date taken, else date added), with their frames; filters combine.

    A page of your own library is kept (``faces.web.page_cache``) until the next write to the gallery's tables,
    in any process; the answer carries an ETag, and ``If-None-Match`` with it answers 304."""
    return page_response(request, await gallery(request, owner, cursor, limit, date_from, date_to, name, match,
                                                guesses, status))


async def gallery(request: Request, owner: int | None, cursor: str | None, limit: int = 60,
                  date_from: date | None = None, date_to: date | None = None, name: list[int] | None = None,
                  match: str = "all", guesses: bool = False, status: str | None = None) -> Page:
    """The gallery page of :func:`list_images` for the logged-in user (401 when nobody is): from the page cache
    when the user asks for their own library and nothing was written since the page was kept."""
    pages = web_state(request).pages

    def page(db: Session, user: Account) -> Page:
        own = owner is None or owner == user.id
        key = (user.id, cursor, limit, date_from, date_to, tuple(name or ()), match, guesses, status)
        version = None
        if own:  # the version before the page's rows: a page is never older than the version it is kept with
            version = read_version(db.connection())
            kept = pages.get(key, version)
            if kept is not None:
                return kept
        library = owner_library(db, user, owner if owner is not None else user.id)
        for name_id in name or []:
            if name_for(db, user, name_id).owner_id != library.id:
                raise HTTPException(404, "There is no name with this id in this library.")
        if date_from and date_to and date_from > date_to:
            raise HTTPException(400, "The first day of the range comes after its last day.")
        body = dumps(gallery_page(db, user.id, library.id, limit=limit, cursor=cursor, date_from=date_from,
                                  date_to=date_to, name_ids=name, match_all=match == "all", include_guesses=guesses,
                                  status=status))
        return pages.put(key, page_of(body, version)) if own else page_of(body, None)

    async with _builders():
        return await logged_in_work(request, page)


GALLERY_BUILDERS = 2  # gallery pages built at once per process; further ones wait for a free slot, in turn
_builder_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


def _builders() -> asyncio.Semaphore:
    """The slots for building gallery pages in this process (its event loop).

    Why at most two at once: every page is CPU work under the GIL, and Python 3.11's sqlite3 releases the GIL
    around each column of each row it reads (some 2,000 times a page). With 20 clients' pages in 20 worker threads,
    each release handed the GIL to another thread; `benchmarks/web.py` under load measured half the pages per
    second and twice the CPU per page of two slots. Two rather than one: a database server's round trips of one
    page overlap the other's work."""
    loop = asyncio.get_running_loop()
    slots = _builder_slots.get(loop)
    if slots is None:
        slots = _builder_slots[loop] = asyncio.Semaphore(GALLERY_BUILDERS)
    return slots


def page_response(request: Request, page: Page) -> Response:
    """``page`` as a JSON response with its ETag; 304 without a body when the request's If-None-Match names it.
    ``no-cache``: the browser may keep the page but asks every time whether it is still current."""
    headers = {"ETag": page.etag, "Cache-Control": "private, no-cache"}
    known = request.headers.get("if-none-match")
    if known and (known.strip() == "*" or page.etag in (tag.strip().removeprefix("W/") for tag in known.split(","))):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


class PlainGalleryPages:
    """ASGI middleware: answers the gallery's plain pages (``GET /api/images`` with no parameters but ``limit``,
    ``cursor`` and ``owner``, each once and plainly valid) itself, with :func:`gallery` as the route does, but
    without FastAPI's routing and parameter parsing, which cost more than a kept page. Every other request, a page
    with any other parameter, and every error (401, 400, 404) go on to the FastAPI route, which answers them as it
    always does. It sits inside the session middleware (session, security headers)."""

    def __init__(self, app):  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/api/images":
            params = plain_page_params(scope["query_string"])
            if params is not None:
                request = Request(scope, receive)
                try:
                    page = await gallery(request, **params)
                except HTTPException:
                    pass  # the route answers it, with the app's error handling
                else:
                    await page_response(request, page)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def plain_page_params(query: bytes) -> dict | None:
    """``owner``, ``cursor`` and ``limit`` of a plain gallery query string, or None when it has anything else
    (another parameter, one given twice or empty, a number that is not plain digits, a limit out of range)."""
    found: dict[str, str] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key not in ("limit", "cursor", "owner") or key in found or not value:
            return None
        found[key] = value
    limit, owner = found.get("limit", "60"), found.get("owner")
    if not _plain_int(limit) or not 1 <= int(limit) <= 200 or (owner is not None and not _plain_int(owner)):
        return None
    return {"owner": int(owner) if owner is not None else None, "cursor": found.get("cursor"), "limit": int(limit)}


def _plain_int(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 10


@router.get("/api/images/batch", response_model=ImageBatch)
def image_batch(user: LoggedInUser, db: DbSession,
                ids: Annotated[str, Query(description="Image ids separated by commas (at most 500).")]) -> Response:
    """Several photos with their current frames (the page refreshes what it shows after a change)."""
    try:
        wanted = list(dict.fromkeys(int(part) for part in ids.split(",") if part.strip()))
    except ValueError:
        raise HTTPException(400, "ids must be image ids separated by commas.") from None
    if len(wanted) > 500:
        raise HTTPException(400, "Ask for at most 500 images at once.")
    allowed = [image_for(db, user, image_id, faces=True).id for image_id in wanted]
    return json_response({"items": image_dicts(db, allowed)})


@router.get("/api/images/{image_id}", response_model=ImageOut)
def get_image(image_id: int, user: LoggedInUser, db: DbSession) -> ImageOut:
    """One photo with its frames."""
    image = image_for(db, user, image_id, faces=True)
    return image_outs(db, [image])[0]


def _thumbnail(request: Request, state, image, size: int) -> Response:  # noqa: ANN001
    """The cached JPEG rendition of ``image`` (longest side ``size``), with an ETag for the browser cache."""
    from faces.media import cached_thumbnail
    from faces.media.types import MediaError

    etag = f'"{image.content_hash[:20]}-{size}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, **CACHE})
    try:
        data = cached_thumbnail(state.settings.data_dir, image.path, image.content_hash, size,
                                max_pixels=state.settings.max_image_pixels)
    except FileNotFoundError:
        raise HTTPException(410, "The image file is not on the server any more.") from None
    except MediaError as exc:
        raise HTTPException(422, exc.message) from None
    return Response(data, media_type="image/jpeg", headers={"ETag": etag, **CACHE})


@router.get("/api/images/{image_id}/thumb", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def image_thumb(image_id: int, request: Request, user: LoggedInUser, db: DbSession, state: State,
                size: Annotated[int, Query(ge=16, le=2560)] = 320):
    """A JPEG thumbnail of the photo (longest side ``size``, rounded up to 160, 320, 640 or 1280; cached)."""
    image = image_for(db, user, image_id)
    if image.error_code:
        raise HTTPException(422, image.error or "This file cannot be read as an image.")
    size = next((s for s in THUMB_SIZES if s >= size), THUMB_SIZES[-1])
    return _thumbnail(request, state, image, size)


@router.get("/api/images/{image_id}/full", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "image/gif": {}}}})
def image_full(image_id: int, request: Request, user: LoggedInUser, db: DbSession, state: State):
    """The photo at full size: the file itself when browsers show its format, else a large JPEG rendition."""
    image = image_for(db, user, image_id)
    if image.error_code:
        raise HTTPException(422, image.error or "This file cannot be read as an image.")
    media_type = WEB_FORMATS.get((image.format or "").upper())
    if media_type:
        path = Path(image.path)
        if not path.is_file():
            raise HTTPException(410, "The image file is not on the server any more.")
        return FileResponse(path, media_type=media_type, headers=CACHE)
    return _thumbnail(request, state, image, FULL_SIZE)

