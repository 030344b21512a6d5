"""Statistics of one library (spec section 7): images, images per finder and status, faces by state, names,
errors and the time spent detecting. Used by ``faces stats`` and the statistics pages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faces.store.models import Face, FaceState, FinderStatus, Image, ImageFinder, Name, Run

_STATUSES = [s.value for s in FinderStatus]


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a UTC timestamp column (SQLite and MariaDB give them back without a zone)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def library_stats(session: Session, owner_id: int, finder_names: Sequence[str] | None = None) -> dict:
    """Counts for ``owner_id``'s library.

    Args:
        session: an open session.
        owner_id: the library.
        finder_names: finders to report even if they have not looked at any image yet (e.g. the enabled ones):
            their images without a result count as pending. Finders with stored results are always reported.
    Returns:
        ``{"images", "unreadable", "finders": {name: {"pending", "done", "no_face", "error", "seconds"}},
        "faces", "confirmed", "guessed", "unnamed", "unknown", "ignored", "removed", "names", "errors",
        "seconds", "runs", "last_run"}`` where ``errors`` counts images with an error (unreadable file or any
        finder error), ``seconds`` is the wall-clock time of all detection runs and each finder's ``seconds``
        the processing time it spent on images.
    """
    images = session.scalar(select(func.count()).select_from(Image).where(Image.owner_id == owner_id)) or 0
    unreadable = session.scalar(select(func.count()).select_from(Image).where(
        Image.owner_id == owner_id, Image.error_code.is_not(None))) or 0
    readable = images - unreadable

    finders: dict[str, dict] = {}
    rows = session.execute(
        select(ImageFinder.finder, ImageFinder.status, func.count(), func.coalesce(func.sum(ImageFinder.seconds), 0))
        .join(Image, Image.id == ImageFinder.image_id)
        .where(Image.owner_id == owner_id, Image.error_code.is_(None))
        .group_by(ImageFinder.finder, ImageFinder.status))
    for finder, status, count, seconds in rows:
        entry = finders.setdefault(finder, {s: 0 for s in _STATUSES} | {"seconds": 0.0})
        entry[FinderStatus(status).value] += count
        entry["seconds"] += float(seconds or 0)
    for name in finder_names or ():
        finders.setdefault(name, {s: 0 for s in _STATUSES} | {"seconds": 0.0})
    for entry in finders.values():
        # images with no row for this finder yet (added before it was enabled) are pending too
        entry["pending"] += max(0, readable - sum(entry[s] for s in _STATUSES))
        entry["seconds"] = round(entry["seconds"], 3)

    by_state = dict(session.execute(
        select(Face.state, func.count()).where(Face.owner_id == owner_id).group_by(Face.state)).all())
    state_counts = {FaceState(k).value: v for k, v in by_state.items()}

    finder_error_images = session.scalar(
        select(func.count(func.distinct(ImageFinder.image_id)))
        .join(Image, Image.id == ImageFinder.image_id)
        .where(Image.owner_id == owner_id, Image.error_code.is_(None), ImageFinder.status == FinderStatus.ERROR)) or 0

    names = session.scalar(select(func.count()).select_from(Name).where(Name.owner_id == owner_id)) or 0
    runs, run_seconds = session.execute(
        select(func.count(), func.coalesce(func.sum(Run.seconds), 0)).where(Run.owner_id == owner_id)).one()
    last = session.scalar(select(Run).where(Run.owner_id == owner_id).order_by(Run.id.desc()).limit(1))
    last_run = None
    if last is not None:
        last_run = {"id": last.id, "started_at": utc_iso(last.started_at), "finished_at": utc_iso(last.finished_at),
                    "images": last.images, "faces": last.faces, "no_face": last.no_face, "errors": last.errors,
                    "seconds": round(last.seconds, 3)}

    return {
        "images": images,
        "unreadable": unreadable,
        "finders": dict(sorted(finders.items())),
        "faces": sum(state_counts.values()),
        "confirmed": state_counts.get("confirmed", 0),
        "guessed": state_counts.get("guessed", 0),
        "unnamed": state_counts.get("unnamed", 0),
        "unknown": state_counts.get("unknown", 0),
        "ignored": state_counts.get("ignored", 0),
        "removed": state_counts.get("removed", 0),
        "names": names,
        "errors": unreadable + finder_error_images,
        "seconds": round(float(run_seconds or 0), 3),
        "runs": runs,
        "last_run": last_run,
    }
