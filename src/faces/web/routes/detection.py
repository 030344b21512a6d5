"""Detection from the page: its progress, and starting it (it also starts by itself after uploads)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from faces.store.models import FinderStatus, Image, ImageFinder
from faces.web.deps import DbSession, LoggedInUser, State, owner_library

router = APIRouter(tags=["detection"])


class DetectionStatus(BaseModel):
    """Where detection of a library stands. ``running``: a run holds the library's lock (this server's or
    another process's); ``done``/``total``: its progress in images; ``pending``: images not seen by every finder;
    ``unreadable``: files that cannot be read; ``error``: why the last run of this server stopped, if it failed."""

    running: bool
    phase: str | None = None
    done: int = 0
    total: int = 0
    started_at: datetime | None = None
    pending: int
    unreadable: int
    images: int
    error: str | None = None
    message: str


class StartIn(BaseModel):
    owner: int | None = None
    auto: bool = False  # the page starts detection when it opens: being busy then is not an error


def detection_status(db, state, owner_id: int) -> DetectionStatus:  # noqa: ANN001
    from faces.jobs.lock import read_progress

    progress = read_progress(state.store, owner_id)
    running_here = state.detection.running_here(owner_id)
    images = db.scalar(select(func.count()).select_from(Image).where(Image.owner_id == owner_id)) or 0
    unreadable = db.scalar(select(func.count()).select_from(Image).where(
        Image.owner_id == owner_id, Image.error_code.is_not(None))) or 0
    pending = db.scalar(select(func.count(func.distinct(ImageFinder.image_id))).select_from(ImageFinder)
                        .join(Image, Image.id == ImageFinder.image_id)
                        .where(Image.owner_id == owner_id, ImageFinder.status == FinderStatus.PENDING)) or 0
    running = progress is not None or running_here
    error = None if running else state.detection.last_error(owner_id)
    if progress is not None:
        message = f"Detection is running: {progress.done} of {progress.total} photos done."
    elif running_here:
        message = "Detection is starting."
    elif error:
        message = error
    elif pending:
        message = f"{pending} photos wait for detection."
    else:
        message = "Every photo has been looked at."
    return DetectionStatus(running=running, phase=progress.phase if progress else None,
                           done=progress.done if progress else 0, total=progress.total if progress else 0,
                           started_at=progress.started_at if progress else None, pending=pending,
                           unreadable=unreadable, images=images, error=error, message=message)


@router.get("/api/detection", response_model=DetectionStatus)
def get_detection(user: LoggedInUser, db: DbSession, state: State, owner: int | None = None) -> DetectionStatus:
    """The detection progress of a library (your own by default)."""
    library = owner_library(db, user, owner if owner is not None else user.id)
    return detection_status(db, state, library.id)


@router.post("/api/detection", response_model=DetectionStatus, status_code=202,
             responses={409: {"description": "detection is still busy with this library; the body has its progress"}})
def start_detection(body: StartIn, user: LoggedInUser, db: DbSession, state: State):
    """Start detection of a library in the background. While a run is going, a second start answers 409
    "detection is still busy" with the progress (with ``auto``, the page's own start on opening, it answers 200)."""
    library = owner_library(db, user, body.owner if body.owner is not None else user.id, write=True)
    current = detection_status(db, state, library.id)
    if current.running:
        if body.auto:
            return JSONResponse(current.model_dump(mode="json"), status_code=200)
        detail = current.model_dump(mode="json")
        detail["detail"] = f"Detection is still busy: {current.done} of {current.total} photos done."
        return JSONResponse(detail, status_code=409)
    result = state.detection.start(library.id, again_if_running=False, only_if_pending=body.auto)
    if result.busy and not body.auto:
        raise HTTPException(409, "Detection is still busy with this library.")
    status = detection_status(db, state, library.id)
    return JSONResponse(status.model_dump(mode="json"), status_code=200 if body.auto else 202)
