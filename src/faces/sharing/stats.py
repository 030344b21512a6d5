"""Statistics per owner and for the admin (spec section 7): images, images processed per finder, faces,
confirmed, guessed, unknown, ignored, removed, unnamed, names, errors, and time spent detecting."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faces.store.models import Face, FaceState, FinderStatus, Image, ImageFinder, Name, User


def _own_stats(session: Session, owner_id: int) -> dict[str, Any]:
    images = session.scalar(select(func.count(Image.id)).where(Image.owner_id == owner_id)) or 0
    image_errors = session.scalar(select(func.count(Image.id)).where(
        Image.owner_id == owner_id, Image.error_code.is_not(None))) or 0
    states = {FaceState(state): count for state, count in session.execute(
        select(Face.state, func.count(Face.id)).where(Face.owner_id == owner_id).group_by(Face.state)).all()}
    finders: dict[str, dict[str, Any]] = {}
    rows = session.execute(select(ImageFinder.finder, ImageFinder.status, func.count(), func.sum(ImageFinder.seconds))
                           .join(Image, Image.id == ImageFinder.image_id).where(Image.owner_id == owner_id)
                           .group_by(ImageFinder.finder, ImageFinder.status)).all()
    for finder, status, count, seconds in rows:
        entry = finders.setdefault(finder, {"processed": 0, "faces": 0, "no_face": 0, "errors": 0, "pending": 0,
                                            "seconds": 0.0})
        status = FinderStatus(status)
        key = {FinderStatus.DONE: "faces", FinderStatus.NO_FACE: "no_face", FinderStatus.ERROR: "errors",
               FinderStatus.PENDING: "pending"}[status]
        entry[key] += count
        if status != FinderStatus.PENDING:
            entry["processed"] += count
        entry["seconds"] += float(seconds or 0.0)
    faces = sum(states.values())

    def state(s: FaceState) -> int:
        return states.get(s, 0)

    return {
        "images": images,
        "faces": faces,
        "confirmed": state(FaceState.CONFIRMED),
        "guessed": state(FaceState.GUESSED),
        "unknown": state(FaceState.UNKNOWN),
        "ignored": state(FaceState.IGNORED),
        "removed": state(FaceState.REMOVED),
        "unnamed": state(FaceState.UNNAMED),
        "names": session.scalar(select(func.count(Name.id)).where(Name.owner_id == owner_id)) or 0,
        "errors": image_errors + sum(f["errors"] for f in finders.values()),
        "seconds_detecting": round(sum(f["seconds"] for f in finders.values()), 3),
        "finders": {name: {**v, "seconds": round(v["seconds"], 3)} for name, v in sorted(finders.items())},
    }


def owner_stats(session: Session, owner_id: int) -> dict[str, Any]:
    """The statistics of ``owner_id``'s library as a JSON-ready dict (see the module doc for the keys).

    Values from :func:`faces.store.stats.library_stats` (the pipeline's) are used where it provides them.
    """
    result = _own_stats(session, owner_id)
    try:
        from faces.store.stats import library_stats
    except ImportError:
        return result
    theirs = library_stats(session, owner_id)
    theirs = theirs if isinstance(theirs, dict) else getattr(theirs, "__dict__", {})
    for key, value in theirs.items():
        result.setdefault(key, value)
    return result


def admin_stats(session: Session) -> list[dict[str, Any]]:
    """Statistics of every user, by user name: ``{"user_id", "username", "is_admin", **owner_stats}``."""
    users = session.execute(select(User.id, User.username, User.is_admin).order_by(User.username)).all()
    return [{"user_id": uid, "username": name, "is_admin": bool(admin), **owner_stats(session, uid)}
            for uid, name, admin in users]
