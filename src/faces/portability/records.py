"""The portable form of a library's rows: faces (with embeddings, state, name, rejected names), names, image
marks (a finder's done / no face / error per content hash) and permissions, as plain JSON-able dicts.

The same records travel in the change log (clone sync) and in export files, and are applied by
:mod:`faces.portability.apply`. Rows are identified across servers by stable keys: faces and names and
permissions by their ``uuid``, images by their content hash, marks by ``<content hash>:<finder>``.
Guesses and look-alike groups are not part of a record: each server recomputes them from the confirmed names.
Timestamps are UTC ISO 8601 strings with microseconds (fixed width, so they compare as text; MariaDB keeps
whole seconds, which only makes its decisions look a little older), floats are rounded to 4 decimals.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from faces.store.models import (
    ContactGroup, Face, FaceState, FinderStatus, Image, ImageFinder, Name, Permission, RejectedName, User,
)

SYNCED_STATES = ("unnamed", "confirmed", "unknown", "ignored", "removed")


def iso(value: datetime | None) -> str | None:
    """``value`` as a fixed-width UTC ISO 8601 string (naive values are taken as UTC); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    """The inverse of :func:`iso` (any ISO 8601 string is accepted); None stays None."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def canonical(data: Any) -> str:
    """A stable text of a record, to compare two records."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def server_id(data_dir: str | Path) -> str:
    """This server's id: 32 random hex digits kept in ``<data_dir>/server_id`` (created on first use)."""
    path = Path(data_dir) / "server_id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(16))
    return path.read_text().strip()


def state_of(face: Face) -> str:
    """The synced state of ``face``: a guess is not a decision, so a guessed face counts as unnamed."""
    state = face.state.value if isinstance(face.state, FaceState) else str(face.state)
    return "unnamed" if state == "guessed" else state


def rejected_names(session: Session, face_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """face id -> its rejected names as sorted ``(uuid, text)`` pairs, for many faces in few queries."""
    out: dict[int, list[tuple[str, str]]] = {}
    for start in range(0, len(face_ids), 500):
        rows = session.execute(select(RejectedName.face_id, Name.uuid, Name.name)
                               .join(Name, RejectedName.name_id == Name.id)
                               .where(RejectedName.face_id.in_(face_ids[start:start + 500]))).all()
        for face_id, uuid, text in rows:
            out.setdefault(face_id, []).append((uuid, text))
    return {k: sorted(v) for k, v in out.items()}


def face_record(session: Session, face: Face, content_hash: str | None = None,
                rejected: list[tuple[str, str]] | None = None) -> dict:
    """The portable record of ``face`` (its image by content hash, names by uuid and text); ``rejected``
    (from :func:`rejected_names`) saves a query."""
    if content_hash is None:
        content_hash = session.scalar(select(Image.content_hash).where(Image.id == face.image_id))
    state = state_of(face)
    # by id, not through face.name: code that sets name_id leaves a loaded relationship stale until commit
    name = session.get(Name, face.name_id) if face.name_id is not None else None
    if rejected is None:
        rejected = rejected_names(session, [face.id]).get(face.id, [])
    return {
        "image": content_hash,
        "box": [int(face.x), int(face.y), int(face.w), int(face.h)],
        "score": round(float(face.score or 0.0), 4),
        "landmarks": face.landmarks,
        "source": face.source or "detected",
        "state": state,
        "name": name.uuid if name is not None else None,
        "name_text": name.name if name is not None else None,
        "rejected": [{"uuid": u, "name": t} for u, t in rejected],
        "decided_at": iso(face.decided_at),
        "embeddings": {e.finder: {"model_version": e.model_version or "", "score": round(float(e.score or 0.0), 4),
                                  "vector": base64.b64encode(e.vector).decode("ascii")}
                       for e in sorted(face.embeddings, key=lambda e: e.finder)},
    }


def name_record(session: Session, name: Name) -> dict:
    """The portable record of ``name`` (a linked account travels as its user name)."""
    contact = None
    if name.contact_user_id is not None:
        contact = session.scalar(select(User.username).where(User.id == name.contact_user_id))
    return {"name": name.name, "contact": contact, "updated_at": iso(name.updated_at)}


def mark_key(content_hash: str, finder: str) -> str:
    return f"{content_hash}:{finder}"


def mark_record(row: ImageFinder, content_hash: str) -> dict | None:
    """The portable record of a finder's result on an image; None while it is pending (nothing to tell)."""
    status = row.status.value if isinstance(row.status, FinderStatus) else str(row.status)
    if status == "pending":
        return None
    return {"image": content_hash, "finder": row.finder, "status": status, "model_version": row.model_version or "",
            "error": row.error, "processed_at": iso(row.processed_at)}


def permission_record(session: Session, perm: Permission) -> dict | None:
    """The portable record of a permission entry (a user by user name, a group by its name)."""
    subject = None
    if perm.subject_type == "user":
        subject = session.scalar(select(User.username).where(User.id == perm.subject_id))
        if subject is None:
            return None
    elif perm.subject_type == "group":
        subject = session.scalar(select(ContactGroup.name).where(ContactGroup.id == perm.subject_id))
        if subject is None:
            return None
    return {"kind": perm.kind, "subject_type": perm.subject_type, "subject": subject, "allow": bool(perm.allow)}


def load_faces(session: Session, face_ids: list[int]) -> list[tuple[Face, str]]:
    """Faces with their embeddings and their image's content hash."""
    out: list[tuple[Face, str]] = []
    for start in range(0, len(face_ids), 500):
        chunk = face_ids[start:start + 500]
        rows = session.execute(select(Face, Image.content_hash).join(Image, Image.id == Face.image_id)
                               .where(Face.id.in_(chunk))
                               .options(selectinload(Face.embeddings))).all()
        out.extend((face, content_hash) for face, content_hash in rows)
    return out


def new_uuid_hex() -> str:
    """A new random uuid as 32 hex digits (the form of every uuid column)."""
    import uuid

    return uuid.uuid4().hex
