"""The gallery API: pages of photos with their frames (and search), one photo, its thumbnail and full size."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from faces.web.deps import Account, DbSession, LoggedInUser, State, image_for, logged_in_work, name_for
from faces.web.deps import owner_library
from faces.web.views import ImageOut, ImagePage, gallery_page, image_dicts, image_outs, json_response

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
    """Photos of a library, newest first (date taken, else date added), with their frames; filters combine."""

    def page(db: Session, user: Account) -> Response:
        library = owner_library(db, user, owner if owner is not None else user.id)
        for name_id in name or []:
            if name_for(db, user, name_id).owner_id != library.id:
                raise HTTPException(404, "There is no name with this id in this library.")
        if date_from and date_to and date_from > date_to:
            raise HTTPException(400, "The first day of the range comes after its last day.")
        return json_response(gallery_page(db, user.id, library.id, limit=limit, cursor=cursor, date_from=date_from,
                                          date_to=date_to, name_ids=name, match_all=match == "all",
                                          include_guesses=guesses, status=status))

    return await logged_in_work(request, page)


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

