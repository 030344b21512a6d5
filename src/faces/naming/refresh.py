"""Refreshing guesses after detection or naming (placeholder until the recognition issue fills it in)."""

from __future__ import annotations

from sqlalchemy.orm import Session


def refresh_guesses(session: Session, settings, owner_id: int, face_ids: list[int] | None = None) -> None:  # noqa: ANN001
    """Recompute the guesses of ``owner_id``'s library that ``face_ids`` (new or changed faces) can affect;
    all of them when ``face_ids`` is None. Runs inside the caller's transaction."""
