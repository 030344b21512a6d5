"""What every route needs, shared by all routers (including the ones other packages add):

- ``DbSession``: one database transaction per request, committed before the response is sent;
- ``current_user`` / ``CurrentUser`` (None when nobody is logged in), ``LoggedInUser`` (401 otherwise), ``AdminUser``;
- ``csrf_protect``: applied to every route by the app; state changes need the ``X-CSRF-Token`` header;
- access helpers that ask :mod:`faces.sharing.permissions` for every id: ``owner_library``, ``image_for``,
  ``face_for``, ``name_for``. An id the user may not even see answers 404 (so ids do not leak); an id the user
  may see but not change answers 403.
- ``render``: a page from ``templates/`` with the navigation, the user and the CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.templating import Jinja2Templates
from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from faces.config import Settings
from faces.sharing import permissions
from faces.store.db import Store
from faces.store.models import Face, Image, Name, RevokedSession, User
from faces.web.auth import CSRF_HEADER, SESSION_COOKIE, SessionCodec, SessionData, RateLimiter, new_session
from faces.web.auth import password_fingerprint, tokens_equal
from faces.web.page_cache import PageCache

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
T = TypeVar("T")


@dataclass
class WebState:
    """Everything the app keeps for its lifetime (``request.app.state.faces``)."""

    settings: Settings
    store: Store
    codec: SessionCodec
    templates: Jinja2Templates
    limiter: RateLimiter = field(default_factory=RateLimiter)
    detection: Any = None  # faces.web.background.DetectionRunner
    extra: dict[str, Any] = field(default_factory=dict)  # for other routers' long-lived objects
    pages: PageCache = field(default_factory=PageCache)  # gallery pages, until the data version changes


class SessionHolder:
    """The session of one request; routes change it with :func:`login_session` / :func:`logout_session`."""

    def __init__(self, data: SessionData, dirty: bool):
        self.data = data
        self.dirty = dirty  # send a new cookie with the response


# Dependencies that do no I/O are ``async def``: FastAPI runs every plain ``def`` dependency in a worker thread,
# and a trip to a thread and back costs more CPU than most of these functions.


def web_state(request: Request) -> WebState:
    """The app's :class:`WebState`."""
    return request.app.state.faces


async def _web_state(request: Request) -> WebState:
    return web_state(request)  # the same, as a dependency that needs no worker thread


State = Annotated[WebState, Depends(_web_state)]


async def get_settings(request: Request) -> Settings:
    return request.app.state.faces.settings


async def get_store(request: Request) -> Store:
    return request.app.state.faces.store


async def db_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises.

    The transaction begins with the session's first statement (in the route's worker thread); it ends in a worker
    thread too, since a commit may wait for the database server. A request that never used the session (an
    anonymous visitor) has nothing to end."""
    session = request.app.state.faces.store.sessions()
    try:
        yield session
    except BaseException:
        await _end(session, session.rollback)
        raise
    await _end(session, session.commit)


async def _end(session: Session, end: Callable[[], None]) -> None:
    def run() -> None:
        try:
            end()
        finally:
            session.close()

    if session.in_transaction():
        await run_in_threadpool(run)
    else:
        session.close()


DbSession = Annotated[Session, Depends(db_session, scope="function")]


def session_of(request: Request) -> SessionHolder:
    """The request's session (set up by the session middleware)."""
    holder = getattr(request.state, "faces_session", None)
    if holder is None:  # a request that did not pass through the middleware (should not happen)
        holder = SessionHolder(new_session(), dirty=True)
        request.state.faces_session = holder
    return holder


def login_session(request: Request, user: User | Account) -> SessionData:
    """Log ``user`` in on this request: a new session (and CSRF token) is sent with the response."""
    holder = session_of(request)
    holder.data = new_session(user)
    holder.dirty = True
    return holder.data


def logout_session(request: Request) -> SessionData:
    """Log out: a new anonymous session (and CSRF token) replaces the old one."""
    holder = session_of(request)
    holder.data = new_session()
    holder.dirty = True
    return holder.data


def csrf_token(request: Request) -> str:
    """The CSRF token of this request's session (the page sends it back in the X-CSRF-Token header)."""
    return session_of(request).data.csrf


async def csrf_protect(request: Request) -> None:
    """Refuse a state change (POST, PUT, PATCH, DELETE) whose X-CSRF-Token header does not match the session.

    Requests that authenticate with an ``Authorization`` header and carry no session cookie (clone sync, scripts)
    are not exposed to cross-site forgery; their routes check their own token.
    """
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("authorization") and SESSION_COOKIE not in request.cookies:
        return
    if not tokens_equal(request.headers.get(CSRF_HEADER), session_of(request).data.csrf):
        raise HTTPException(403, "This request has no valid CSRF token. Reload the page and try again.")


@dataclass(frozen=True)
class Account:
    """A user account as the routes see it, read with one plain query (no ORM object) on every request.
    A route that changes the account loads its ``User`` with ``db.get(User, account.id)``."""

    id: int
    username: str
    display_name: str
    is_admin: bool
    password_hash: str | None


_USERS = User.__table__
_ACCOUNT_COLUMNS = (_USERS.c.id, _USERS.c.username, _USERS.c.display_name, _USERS.c.is_admin, _USERS.c.password_hash)
_ACCOUNT = select(*_ACCOUNT_COLUMNS).where(_USERS.c.id == bindparam("id"))
_REVOKED = RevokedSession.__table__
_SESSION_ACCOUNT = (select(*_ACCOUNT_COLUMNS, exists().where(_REVOKED.c.sid == bindparam("sid")).label("revoked"))
                    .where(_USERS.c.id == bindparam("id")))


def load_account(db: Session, user_id: int) -> Account | None:
    """The account ``user_id``, or None when there is none."""
    row = db.connection().execute(_ACCOUNT, {"id": user_id}).first()
    return Account(*row) if row is not None else None


def load_session_account(db: Session, user_id: int, sid: str) -> Account | None:
    """The account ``user_id`` of login session ``sid`` (one query), or None when there is none or that session
    has logged out."""
    row = db.connection().execute(_SESSION_ACCOUNT, {"id": user_id, "sid": sid}).first()
    return Account(*row[:5]) if row is not None and not row.revoked else None


def account_of(user: User) -> Account:
    """``user`` (an ORM object, e.g. just logged in) as an :class:`Account`."""
    return Account(user.id, user.username, user.display_name, user.is_admin, user.password_hash)


def session_user(request: Request, db: Session) -> Account | None:
    """The user logged in on this request, or None; looked up in the database every time, so that a deleted
    account, a session from before a password change or one that has logged out (in this process or another) is
    refused at once. Blocking: call it in a worker thread."""
    cached = getattr(request.state, "faces_user", False)
    if cached is not False:
        return cached
    data = session_of(request).data
    user = None
    if data.user_id is not None:
        # a cookie without a session id was made before sessions could be revoked: log in again
        user = load_session_account(db, data.user_id, data.sid) if data.sid else None
        if user is None or not user.password_hash or password_fingerprint(user.password_hash) != data.fingerprint:
            user = None
            logout_session(request)
    request.state.faces_user = user
    return user


async def current_user(request: Request, db: DbSession) -> Account | None:
    """The logged-in user, or None (see :func:`session_user`)."""
    cached = getattr(request.state, "faces_user", False)
    if cached is not False:
        return cached
    if session_of(request).data.user_id is None:  # anonymous visitors need no database
        request.state.faces_user = None
        return None
    return await run_in_threadpool(session_user, request, db)


CurrentUser = Annotated[Account | None, Depends(current_user)]


async def require_user(user: CurrentUser) -> Account:
    """The logged-in user; 401 when nobody is logged in."""
    if user is None:
        raise HTTPException(401, "Please log in first.")
    return user


LoggedInUser = Annotated[Account, Depends(require_user)]


async def require_admin(user: LoggedInUser) -> Account:
    """The logged-in admin; 403 for other users."""
    if not user.is_admin:
        raise HTTPException(403, "Only an administrator may do this.")
    return user


AdminUser = Annotated[Account, Depends(require_admin)]


async def logged_in_work(request: Request, work: Callable[[Session, Account], T]) -> T:
    """``work(db, user)`` for the logged-in user (401 when nobody is), in one trip to a worker thread with its
    own transaction: the same steps as ``DbSession`` and ``LoggedInUser``, which take three such trips (the
    user, the route, the commit). For the requests the page makes most (gallery pages)."""
    if session_of(request).data.user_id is None:
        raise HTTPException(401, "Please log in first.")

    def run() -> T:
        with request.app.state.faces.store.session() as db:
            user = session_user(request, db)
            if user is None:
                raise HTTPException(401, "Please log in first.")
            return work(db, user)

    return await run_in_threadpool(run)


# --- access helpers: every id goes through faces.sharing.permissions -----------------------------------------


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, f"There is no {what} with this id that you may see.")


def _read_only() -> HTTPException:
    return HTTPException(403, "You may look at this library but not change its names.")


def owner_library(db: Session, user: Account | None, owner_id: int, *, write: bool = False) -> Account:
    """The owner of library ``owner_id`` if ``user`` may view it (and write, with ``write=True``)."""
    owner = user if user is not None and user.id == owner_id else load_account(db, owner_id)
    observer = user.id if user else None
    if owner is None or not permissions.can_view_library(db, observer, owner.id):
        raise _not_found("library")
    if write and not permissions.can_write_library(db, observer, owner.id):
        raise _read_only()
    return owner


def image_for(db: Session, user: Account | None, image_id: int, *, write: bool = False,
              faces: bool = False) -> Image:
    """Image ``image_id`` if ``user`` may see it (its pixels); with ``faces=True`` also the library's faces;
    with ``write=True`` also set names in the library."""
    image = db.get(Image, image_id)
    observer = user.id if user else None
    if image is None or not permissions.can_view_image(db, observer, image):
        raise _not_found("image")
    if (faces or write) and not permissions.can_view_library(db, observer, image.owner_id):
        raise _not_found("image")
    if write and not permissions.can_write_library(db, observer, image.owner_id):
        raise _read_only()
    return image


def face_for(db: Session, user: Account | None, face_id: int, *, write: bool = False) -> Face:
    """Face ``face_id`` if ``user`` may see it (its image and its library's faces), and write with ``write=True``."""
    face = db.get(Face, face_id)
    observer = user.id if user else None
    if face is None or not permissions.can_view_library(db, observer, face.owner_id):
        raise _not_found("face")
    if not permissions.can_view_image(db, observer, face.image):
        raise _not_found("face")
    if write and not permissions.can_write_library(db, observer, face.owner_id):
        raise _read_only()
    return face


def name_for(db: Session, user: Account | None, name_id: int, *, write: bool = False) -> Name:
    """Name ``name_id`` if ``user`` may view its library (and write with ``write=True``)."""
    name = db.get(Name, name_id)
    observer = user.id if user else None
    if name is None or not permissions.can_view_library(db, observer, name.owner_id):
        raise _not_found("name")
    if write and not permissions.can_write_library(db, observer, name.owner_id):
        raise _read_only()
    return name


def settings_for(db: Session, state: WebState) -> Settings:
    """The settings with the admin's changes from the page applied (``faces.sharing.admin_settings``)."""
    try:
        from faces.sharing.admin_settings import effective_settings
    except ImportError:
        return state.settings
    return effective_settings(db, state.settings)


# --- pages ---------------------------------------------------------------------------------------------------


def render(request: Request, template: str, user: Account | None = None, status_code: int = 200, **context: Any):
    """A page from ``templates/``: ``base.html`` gets the user, the navigation and the CSRF token."""
    from faces.web.routes import nav_links

    state = web_state(request)
    registration_open = state.settings.registration_open
    if user is None:
        with state.store.session() as db:
            registration_open = settings_for(db, state).registration_open
    context.update(
        user=user,
        nav=nav_links(user),
        csrf_token=csrf_token(request),
        registration_open=registration_open,
        current_path=request.url.path,
    )
    return state.templates.TemplateResponse(request, template, context, status_code=status_code)
