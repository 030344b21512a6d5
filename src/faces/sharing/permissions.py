"""Who may see and do what (spec section 4). Every web request asks these functions.

``observer_id`` is the logged-in user's id, or None for nobody logged in.
This first version lets only the owner (and nobody else) view and write; the sharing issue adds contacts,
groups, allow/deny lists and per-image visibility behind the same functions.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from faces.store.models import Image


def can_view_library(session: Session, observer_id: int | None, owner_id: int) -> bool:
    """May ``observer_id`` see the faces and names of ``owner_id``'s library?"""
    return observer_id is not None and observer_id == owner_id


def can_write_library(session: Session, observer_id: int | None, owner_id: int) -> bool:
    """May ``observer_id`` set names on faces of ``owner_id``'s library?"""
    return observer_id is not None and observer_id == owner_id


def can_view_image(session: Session, observer_id: int | None, image: Image) -> bool:
    """May ``observer_id`` see this image itself (its pixels)?"""
    return observer_id is not None and observer_id == image.owner_id


def is_owner(observer_id: int | None, owner_id: int) -> bool:
    """Only the owner changes permissions and deletes data."""
    return observer_id is not None and observer_id == owner_id
