"""Looking up and creating accounts (owners of libraries)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from faces.store.models import User

DEFAULT_OWNER = "admin"


class UnknownUserError(LookupError):
    """No account has that user name."""


def get_user(session: Session, username: str) -> User:
    """The account named ``username``. Raises UnknownUserError when there is none."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UnknownUserError(f"no account named {username!r}")
    return user


def get_or_create_user(session: Session, username: str, *, is_admin: bool = False) -> User:
    """The account named ``username``, created (without a password, so it cannot log in yet) if missing."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, display_name=username, is_admin=is_admin)
        session.add(user)
        session.flush()
    return user


def resolve_owner(session: Session, username: str | None) -> User:
    """The owner a command works on: ``username`` if given (must exist), else the default admin account,
    created on first use so that ``faces scan`` works on a fresh data directory."""
    if username:
        return get_user(session, username)
    return get_or_create_user(session, DEFAULT_OWNER, is_admin=True)
