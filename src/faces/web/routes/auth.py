"""Logging in and out, registration (when open), accounts: the JSON API and the login page."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from faces.store.models import User
from faces.web.auth import AccountError, authenticate, create_user, revoke_session, set_password, verify_password
from faces.web.deps import Account, AdminUser, CurrentUser, DbSession, LoggedInUser, State, csrf_token
from faces.web.deps import login_session, logout_session, render, session_of, settings_for

router = APIRouter()


class UserOut(BaseModel):
    """An account as the page sees it."""

    id: int
    username: str
    display_name: str
    is_admin: bool


class SessionOut(BaseModel):
    """Who is logged in (null: nobody) and the CSRF token to send with every state change."""

    user: UserOut | None
    csrf_token: str
    registration_open: bool = False


class LoginIn(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class RegisterIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1000)
    display_name: str = Field(default="", max_length=200)


class PasswordIn(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


class NewUserIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1000)
    display_name: str = Field(default="", max_length=200)
    is_admin: bool = False


def user_out(user: User | Account) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name or user.username,
                   is_admin=user.is_admin)


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", include_in_schema=False)
def login_page(request: Request, user: CurrentUser, state: State, next: str | None = None):  # noqa: A002
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", None, next=safe_next(next), mode="login")


@router.get("/register", include_in_schema=False)
def register_page(request: Request, user: CurrentUser, state: State, db: DbSession):
    if user is not None:
        return RedirectResponse("/", status_code=303)
    if not settings_for(db, state).registration_open:
        return RedirectResponse("/login", status_code=303)
    return render(request, "login.html", None, next="/", mode="register")


@router.get("/api/session", response_model=SessionOut, tags=["accounts"])
async def get_session(request: Request, user: CurrentUser, state: State) -> SessionOut:
    """The logged-in user (or null) and the CSRF token of this session."""
    return SessionOut(user=user_out(user) if user else None, csrf_token=csrf_token(request),
                      registration_open=state.settings.registration_open)


@router.post("/api/login", response_model=SessionOut, tags=["accounts"],
             responses={401: {"description": "wrong user name or password"},
                        429: {"description": "too many failed attempts; see Retry-After"}})
def login(body: LoginIn, request: Request, db: DbSession, state: State):
    """Log in with user name and password. Failed attempts are limited per address and per user name."""
    client = request.client.host if request.client else "unknown"
    keys = (f"ip:{client}", f"user:{body.username.strip().lower()}")
    wait = state.limiter.retry_after(*keys)
    if wait:
        return JSONResponse({"detail": f"Too many failed attempts. Try again in {wait // 60 + 1} minutes."},
                            status_code=429, headers={"Retry-After": str(wait)})
    user = authenticate(db, body.username, body.password)
    if user is None:
        state.limiter.failed(*keys)
        raise HTTPException(401, "Wrong user name or password.")
    state.limiter.succeeded(keys[1])
    session = login_session(request, user)
    return SessionOut(user=user_out(user), csrf_token=session.csrf,
                      registration_open=state.settings.registration_open)


@router.post("/api/logout", response_model=SessionOut, tags=["accounts"])
def logout(request: Request, db: DbSession, state: State) -> SessionOut:
    """Log out: this session's cookie no longer logs in, even copied; the answer carries the CSRF token of the new
    anonymous session."""
    revoke_session(db, session_of(request).data)
    session = logout_session(request)
    return SessionOut(user=None, csrf_token=session.csrf, registration_open=state.settings.registration_open)


@router.post("/api/register", response_model=SessionOut, status_code=201, tags=["accounts"])
def register(body: RegisterIn, request: Request, db: DbSession, state: State) -> SessionOut:
    """Create an account and log in (only when the server's registration is open)."""
    if not settings_for(db, state).registration_open:
        raise HTTPException(403, "Registration is closed on this server. Ask the administrator for an account.")
    try:
        user = create_user(db, body.username, body.password, display_name=body.display_name.strip())
    except AccountError as exc:
        raise HTTPException(400, str(exc).capitalize() + ".") from None
    db.flush()
    session = login_session(request, user)
    return SessionOut(user=user_out(user), csrf_token=session.csrf, registration_open=True)


@router.post("/api/account/password", response_model=SessionOut, tags=["accounts"])
def change_password(body: PasswordIn, request: Request, user: LoggedInUser, db: DbSession,
                    state: State) -> SessionOut:
    """Change one's own password (ends every other session of the account)."""
    if not verify_password(user.password_hash, body.current_password):
        raise HTTPException(400, "The current password is wrong.")
    account = db.get(User, user.id)
    try:
        set_password(db, account, body.new_password)
    except AccountError as exc:
        raise HTTPException(400, str(exc).capitalize() + ".") from None
    session = login_session(request, account)
    return SessionOut(user=user_out(user), csrf_token=session.csrf,
                      registration_open=state.settings.registration_open)


@router.get("/api/users", response_model=list[UserOut], tags=["accounts"])
def list_users(admin: AdminUser, db: DbSession) -> list[UserOut]:
    """Every account (administrators only)."""
    return [user_out(u) for u in db.scalars(select(User).order_by(User.username))]


@router.post("/api/users", response_model=UserOut, status_code=201, tags=["accounts"])
def add_user(body: NewUserIn, admin: AdminUser, db: DbSession) -> UserOut:
    """Create an account (administrators only)."""
    try:
        user = create_user(db, body.username, body.password, is_admin=body.is_admin,
                           display_name=body.display_name.strip())
    except AccountError as exc:
        raise HTTPException(400, str(exc).capitalize() + ".") from None
    db.flush()
    return user_out(user)
