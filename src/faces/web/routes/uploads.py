"""Uploading photos from the page: files go to ``<data_dir>/uploads/<owner id>/``, then into the library,
and detection starts by itself."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile
from pydantic import BaseModel
from sqlalchemy import select

from faces.store.models import Image
from faces.web.deps import LoggedInUser, State
from faces.web.views import sentence

log = logging.getLogger(__name__)
router = APIRouter(tags=["upload"])

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_FILES = 200
NOT_AN_IMAGE_NAME = ("Only photos can be added: files ending in .jpg, .jpeg, .png, .webp, .gif, .tif, .tiff, .bmp, "
                     ".heic or .heif.")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadedFile(BaseModel):
    """One uploaded file: ``added`` (its image id), ``duplicate`` (the library has it already: its image id),
    ``unreadable`` (added, but it cannot be read: ``error`` says why) or ``rejected`` (not kept: ``error``)."""

    filename: str
    outcome: str
    image_id: int | None = None
    error: str | None = None


class UploadResult(BaseModel):
    files: list[UploadedFile]
    added: int
    duplicates: int
    unreadable: int
    rejected: int
    detection_started: bool


def safe_filename(name: str | None) -> str:
    """A file name that is safe on every file system: the base name, odd characters replaced, at most 80."""
    base = Path((name or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip("._") or "photo"
    stem, dot, ext = base.rpartition(".")
    if dot and len(ext) <= 8:
        return f"{stem[:70]}.{ext.lower()}"
    return base[:80]


def upload_dir(state, owner_id: int) -> Path:  # noqa: ANN001
    """Where uploads of ``owner_id`` are kept."""
    folder = state.settings.data_dir.resolve() / "uploads" / str(owner_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(upload: UploadFile, folder: Path) -> tuple[Path, str, int]:
    """Copy the upload into ``folder`` under a new unique name; returns ``(path, sha256, bytes)``."""
    target = folder / f"{secrets.token_hex(4)}_{safe_filename(upload.filename)}"
    digest = hashlib.sha256()
    size = 0
    with target.open("xb") as out:
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                out.close()
                target.unlink(missing_ok=True)
                raise ValueError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
            digest.update(chunk)
            out.write(chunk)
    return target, digest.hexdigest(), size


@router.post("/api/uploads", response_model=UploadResult, status_code=201)
def upload_photos(user: LoggedInUser, state: State,
                  files: Annotated[list[UploadFile], File(description="One or more image files.")]) -> UploadResult:
    """Add photos to your library. Each file is kept, recognised as a duplicate (the same content is already
    in the library), or kept with an error when it cannot be read. Detection starts by itself."""
    from faces.jobs.pipeline import add_images
    from faces.media import is_image_name

    if not files:
        raise HTTPException(400, "Choose at least one photo to upload.")
    if len(files) > MAX_FILES:
        raise HTTPException(400, f"Upload at most {MAX_FILES} files at once.")
    folder = upload_dir(state, user.id)
    results: list[UploadedFile] = []
    saved: list[tuple[int, Path, str]] = []
    copies: list[tuple[int, str]] = []
    for upload in files:
        name = Path((upload.filename or "photo").replace("\\", "/")).name
        if not is_image_name(name):
            results.append(UploadedFile(filename=name, outcome="rejected", error=NOT_AN_IMAGE_NAME))
            continue
        try:
            path, content_hash, size = _save(upload, folder)
        except ValueError as exc:
            results.append(UploadedFile(filename=name, outcome="rejected", error=str(exc).capitalize() + "."))
            continue
        if size == 0:
            path.unlink(missing_ok=True)
            results.append(UploadedFile(filename=name, outcome="rejected", error="The file is empty."))
            continue
        results.append(UploadedFile(filename=name, outcome="pending"))
        if any(h == content_hash for _, _, h in saved):
            path.unlink(missing_ok=True)  # the same content twice in one upload: the first one counts
            copies.append((len(results) - 1, content_hash))
        else:
            saved.append((len(results) - 1, path, content_hash))
    if saved:
        add_images(state.store, state.settings, user.id, [p for _, p, _ in saved])
        with state.store.session() as db:
            by_path = {row.path: row for row in db.scalars(
                select(Image).where(Image.owner_id == user.id, Image.path.in_([str(p) for _, p, _ in saved])))}
            hashes = {row.content_hash: row.id for row in db.scalars(
                select(Image).where(Image.owner_id == user.id,
                                    Image.content_hash.in_([h for _, _, h in saved])))}
            for index, path, content_hash in saved:
                item = results[index]
                image = by_path.get(str(path))
                if image is not None:
                    item.image_id = image.id
                    item.outcome = "unreadable" if image.error_code else "added"
                    item.error = sentence(image.error) if image.error_code else None
                    continue
                path.unlink(missing_ok=True)  # not kept as a new image: remove our copy
                if content_hash in hashes:
                    item.outcome, item.image_id = "duplicate", hashes[content_hash]
                else:
                    item.outcome, item.error = "rejected", "This file is not an image that faces can read."
            for index, content_hash in copies:
                results[index].outcome, results[index].image_id = "duplicate", hashes.get(content_hash)
    started = False
    if any(r.outcome == "added" for r in results):
        started = state.detection.start(user.id).started or state.detection.running_here(user.id)
    count = {kind: sum(1 for r in results if r.outcome == kind)
             for kind in ("added", "duplicate", "unreadable", "rejected")}
    log.info("upload to library %s: %s", user.id, count)
    return UploadResult(files=results, added=count["added"], duplicates=count["duplicate"],
                        unreadable=count["unreadable"], rejected=count["rejected"], detection_started=started)


