"""Export and import of one owner's library: one gzip-compressed JSON file.

File format (``format`` = ``"faces-export"``, ``version`` = 1)::

    {
      "format": "faces-export", "version": 1,
      "exported_at": "2026-11-26T01:00:00Z",     # UTC
      "server_id": "<32 hex>",                   # the server that wrote it
      "owner": "alice",                          # the library's user name (import may target another account)
      "images": ["<content hash>", ...],          # every image of the library (sha256 of the file content)
      "names": {"<uuid>": {"name": "Ann", "contact": "ann" | null, "updated_at": "..."}},
      "faces": {"<uuid>": {"image": "<content hash>", "box": [x, y, w, h], "score": 0.99,
                           "landmarks": [[x, y], ...] | null, "source": "detected" | "file" | "import",
                           "state": "unnamed" | "confirmed" | "unknown" | "ignored" | "removed",
                           "name": "<name uuid>" | null, "name_text": "Ann" | null,
                           "rejected": [{"uuid": "<name uuid>", "name": "Bob"}],
                           "decided_at": "..." | null,
                           "embeddings": {"<finder>": {"model_version": "...", "score": 0.99,
                                                       "vector": "<base64 of float32 little-endian>"}}}},
      "marks": [{"image": "<content hash>", "finder": "dlib", "status": "done" | "no_face" | "error",
                 "model_version": "...", "error": "..." | null, "processed_at": "..." | null}],
      "permissions": {"<uuid>": {"kind": "view" | "write", "subject_type": "user" | "group" | "contacts",
                                 "subject": "<user name or group name>" | null, "allow": true}}
    }

Boxes are pixels of the upright full-resolution image. Guesses are not exported (they are recomputed).
Faces and marks of images still waiting for their file on the exporting server (pending imports) are exported
too. Import matches images by content hash and parks faces of missing images until they arrive; it applies the
same merge rules as clone sync (:mod:`faces.portability.apply`), so importing twice changes nothing and a newer
local decision is never overwritten. The whole import is one transaction: a file that is refused changes nothing.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from faces.portability import records, schema
from faces.portability.apply import Applier, ApplyResult
from faces.store.models import Face, Image, ImageFinder, Name, PendingImport, Permission, User, utcnow

FORMAT = "faces-export"
VERSION = 1
MAX_FILE_BYTES = 512 * 1024 * 1024  # compressed
MAX_JSON_BYTES = 2 * 1024 * 1024 * 1024  # uncompressed
MAX_ITEMS = 5_000_000


class ImportRefused(ValueError):
    """The file cannot be imported; nothing was changed. The message says why in plain words."""


@dataclass
class ImportResult:
    """What an import changed (``unchanged`` when importing it changed nothing)."""

    applied: ApplyResult
    images_known: int
    images_missing: int

    @property
    def unchanged(self) -> bool:
        r = self.applied
        return not (r.faces or r.names or r.marks or r.permissions or r.deleted or r.pending)

    def as_dict(self) -> dict:
        return {**self.applied.as_dict(), "images_known": self.images_known, "images_missing": self.images_missing,
                "unchanged": self.unchanged}


def export_library(session: Session, owner_id: int, server: str) -> dict:
    """The export document of ``owner_id``'s library (see the module doc)."""
    owner = session.get(User, owner_id)
    images = dict(session.execute(select(Image.id, Image.content_hash).where(Image.owner_id == owner_id)).all())
    names = {n.uuid: records.name_record(session, n)
             for n in session.scalars(select(Name).where(Name.owner_id == owner_id).order_by(Name.uuid))}
    face_ids = session.scalars(select(Face.id).where(Face.owner_id == owner_id).order_by(Face.id)).all()
    loaded = records.load_faces(session, list(face_ids))
    rejected = records.rejected_names(session, [face.id for face, _ in loaded])
    faces = {face.uuid: records.face_record(session, face, content_hash, rejected.get(face.id, []))
             for face, content_hash in loaded}
    marks = []
    for row in session.scalars(select(ImageFinder).where(ImageFinder.image_id.in_(select(Image.id).where(
            Image.owner_id == owner_id))).order_by(ImageFinder.image_id, ImageFinder.finder)):
        data = records.mark_record(row, images[row.image_id])
        if data is not None:
            marks.append(data)
    for pending in session.scalars(select(PendingImport).where(PendingImport.owner_id == owner_id)
                                   .order_by(PendingImport.content_hash)):
        payload = pending.payload or {}
        for uuid, data in sorted((payload.get("faces") or {}).items()):
            faces.setdefault(uuid, data)
        marks.extend(data for _, data in sorted((payload.get("marks") or {}).items()))
    permissions = {}
    for perm in session.scalars(select(Permission).where(Permission.owner_id == owner_id).order_by(Permission.uuid)):
        data = records.permission_record(session, perm)
        if data is not None:
            permissions[perm.uuid] = data
    return {"format": FORMAT, "version": VERSION, "exported_at": records.iso(utcnow()), "server_id": server,
            "owner": owner.username if owner else None, "images": sorted(set(images.values())),
            "names": names, "faces": faces, "marks": marks, "permissions": permissions}


def write_export(document: dict, out: IO[bytes] | str | Path) -> None:
    """Write ``document`` gzip-compressed to a path or a binary file object."""
    raw = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if isinstance(out, (str, Path)):
        tmp = Path(f"{out}.part")
        with gzip.open(tmp, "wb", compresslevel=6) as handle:
            handle.write(raw)
        tmp.replace(out)
    else:
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as handle:
            handle.write(raw)


def read_export(data: bytes) -> dict:
    """Decompress, parse and validate an export file's bytes. Raises ImportRefused with a plain message."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if data[:2] != b"\x1f\x8b":
        raise ImportRefused("this is not a faces export file (it is not gzip-compressed)")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportRefused(f"the file is damaged: it cannot be decompressed ({exc})") from None
    if len(raw) > MAX_JSON_BYTES:
        raise ImportRefused("the file unpacks to more than the largest export this server accepts")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ImportRefused(f"the file is damaged: its content is not valid JSON ({str(exc)[:80]})") from None
    return validate_document(document)


def validate_document(document: Any) -> dict:
    """Check the whole document (format, version, every record); returns it with names cleaned."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ImportRefused("this is not a faces export file")
    version = document.get("version")
    if version != VERSION:
        raise ImportRefused(f"this export file has version {str(version)[:20]}; this server reads version {VERSION} "
                            "only (update the older server, export again, and import that file)")
    for key, kind in (("images", list), ("names", dict), ("faces", dict), ("marks", list), ("permissions", dict)):
        if not isinstance(document.get(key, kind()), kind):
            raise ImportRefused(f"the file is damaged: {key} must be a{'n object' if kind is dict else ' list'}")
    total = sum(len(document.get(k) or ()) for k in ("images", "names", "faces", "marks", "permissions"))
    if total > MAX_ITEMS:
        raise ImportRefused(f"the file holds more than {MAX_ITEMS:,} entries")
    out = {"format": FORMAT, "version": VERSION, "owner": document.get("owner"),
           "server_id": str(document.get("server_id") or "")[:64]}
    try:
        images = document.get("images") or []
        for i, item in enumerate(images):
            if not isinstance(item, str) or not 8 <= len(item) <= 128:
                raise ImportRefused(f"images[{i}]: expected a content hash")
        out["images"] = images
        out["names"] = {_uuid(k, "names"): schema.check("name", v, f"names[{k[:40]}]")
                        for k, v in (document.get("names") or {}).items()}
        out["faces"] = {_uuid(k, "faces"): schema.check("face", v, f"faces[{k[:40]}]")
                        for k, v in (document.get("faces") or {}).items()}
        out["marks"] = [schema.check("image_mark", v, f"marks[{i}]") for i, v in enumerate(document.get("marks") or [])]
        out["permissions"] = {_uuid(k, "permissions"): schema.check("permission", v, f"permissions[{k[:40]}]")
                              for k, v in (document.get("permissions") or {}).items()}
    except schema.InvalidRecord as exc:
        raise ImportRefused(f"the file is damaged or was changed by hand: {exc}") from None
    return out


def _uuid(key: Any, where: str) -> str:
    if not isinstance(key, str) or len(key) != 32 or any(c not in "0123456789abcdef" for c in key):
        raise ImportRefused(f"{where}: {str(key)[:40]!r} is not a uuid")
    return key


def import_library(session: Session, settings, owner_id: int, document: dict) -> ImportResult:  # noqa: ANN001
    """Apply a validated export document to ``owner_id``'s library in the caller's transaction."""
    applier = Applier(session, owner_id, origin="", ties_keep_local=True)
    for uuid, data in sorted(document["names"].items()):
        applier.name(uuid, data)
    for data in document["marks"]:
        applier.mark(data)
    applier.prefetch_faces(list(document["faces"]))
    for uuid, data in sorted(document["faces"].items()):
        applier.face(uuid, data)
    for uuid, data in sorted(document["permissions"].items()):
        applier.permission(uuid, data)
    result = applier.finish(settings)
    hashes = set(document["images"]) | {f["image"] for f in document["faces"].values()}
    known = set(session.scalars(select(Image.content_hash).where(Image.owner_id == owner_id)).all())
    return ImportResult(applied=result, images_known=len(hashes & known), images_missing=len(hashes - known))
