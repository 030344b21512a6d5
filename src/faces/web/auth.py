"""Accounts and sessions: argon2 password hashes, the signed session cookie, CSRF tokens, login rate limiting.

The session lives in one signed cookie (itsdangerous, keyed by ``settings.get_secret_key()``). It holds the user id,
a CSRF token, a fingerprint of the user's password hash, so changing a password ends every other session, and a random
session id, recorded in ``revoked_sessions`` when that session logs out, so that a copy of the cookie logs nobody in
afterwards. Every visitor gets a cookie (anonymous until login) so that the login form itself carries a CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from faces.store.models import RevokedSession, User

SESSION_COOKIE = "faces_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 14 * 24 * 3600  # seconds a login lasts
MIN_PASSWORD_LENGTH = 8
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so that timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A user name or password cannot be used; the message says why."""


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``. Raises AccountError when it is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Does ``password`` match ``password_hash``? False for accounts without a password."""
    try:
        if not password_hash:
            _hasher.verify(_DUMMY_HASH, password)
            return False
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_username(username: str) -> str:
    """The normalised user name (lower case). Raises AccountError when it has characters we do not allow."""
    name = username.strip().lower()
    if not 1 <= len(name) <= 64:
        raise AccountError("a user name has 1 to 64 characters")
    if not set(name) <= USERNAME_CHARS:
        raise AccountError("a user name may use only letters a-z, digits and . _ -")
    return name


def create_user(session: Session, username: str, password: str, *, is_admin: bool = False,
                display_name: str = "") -> User:
    """Create an account that can log in. Raises AccountError if the name is taken or unusable."""
    name = check_username(username)
    existing = session.scalar(select(User).where(User.username == name))
    if existing is not None:
        if existing.password_hash:
            raise AccountError(f"there is already an account named {name!r}")
        # created without a password by `faces scan` (the default library): give it one
        existing.password_hash = hash_password(password)
        existing.is_admin = existing.is_admin or is_admin
        return existing
    user = User(username=name, display_name=display_name or name, password_hash=hash_password(password),
                is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Give ``user`` a new password (ends their other sessions)."""
    user.password_hash = hash_password(password)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The account if ``username`` and ``password`` match, else None (same time either way)."""
    try:
        name = check_username(username)
    except AccountError:
        verify_password(None, password)
        return None
    user = session.scalar(select(User).where(User.username == name))
    if user is None:
        verify_password(None, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def ensure_first_admin(session: Session) -> tuple[str, str] | None:
    """On a server's first start: when no account can log in, give the admin account (created if missing)
    a random password. Returns ``(username, password)`` to print once, or None when an account can log in."""
    if session.scalar(select(func.count()).select_from(User).where(User.password_hash.is_not(None))):
        return None
    admin = session.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id))
    if admin is None:
        admin = session.scalar(select(User).where(User.username == "admin"))
    password = secrets.token_urlsafe(12)
    if admin is None:
        admin = User(username="admin", display_name="admin", is_admin=True)
        session.add(admin)
    admin.is_admin = True
    admin.password_hash = hash_password(password)
    session.flush()
    return admin.username, password


def password_fingerprint(password_hash: str | None) -> str:
    """A short value that changes when the password changes (kept in the session cookie)."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionData:
    """What the session cookie holds."""

    csrf: str
    user_id: int | None = None
    fingerprint: str = ""
    sid: str = ""  # a logged-in session's id (see faces.store.models.RevokedSession)

    def to_dict(self) -> dict:
        return {"c": self.csrf, "u": self.user_id, "f": self.fingerprint, "s": self.sid}


class SessionCodec:
    """Signs and reads session cookies. A browser sends the same cookie with every request, so the cookies
    verified lately are remembered (up to ``cache_size``), with their signing time: expiry is still checked
    every time."""

    def __init__(self, secret_key: str, max_age: int = SESSION_MAX_AGE, cache_size: int = 4096):
        self.serializer = URLSafeTimedSerializer(secret_key, salt="faces-session")
        self.max_age = max_age
        self.cache_size = cache_size
        self._verified: dict[str, tuple[SessionData | None, float]] = {}

    def dumps(self, data: SessionData) -> str:
        return self.serializer.dumps(data.to_dict())

    def loads(self, value: str | None) -> SessionData | None:
        """The session in ``value``, or None when it is missing, forged or expired."""
        if not value:
            return None
        known = self._verified.get(value)
        if known is None:
            known = self._verify(value)
            if len(self._verified) >= self.cache_size:
                self._verified.clear()  # a flood of distinct cookies: start over rather than grow
            self._verified[value] = known
        data, signed_at = known
        if data is None or time.time() - signed_at > self.max_age:
            return None
        return data

    def _verify(self, value: str) -> tuple[SessionData | None, float]:
        try:
            raw, signed_at = self.serializer.loads(value, max_age=self.max_age, return_timestamp=True)
        except (BadSignature, ValueError):
            return None, 0.0
        if not isinstance(raw, dict) or not isinstance(raw.get("c"), str):
            return None, 0.0
        user_id = raw.get("u")
        data = SessionData(csrf=raw["c"], user_id=user_id if isinstance(user_id, int) else None,
                           fingerprint=str(raw.get("f") or ""), sid=str(raw.get("s") or ""))
        return data, signed_at.timestamp()


def new_session(user: User | None = None) -> SessionData:
    """A fresh session with a new CSRF token (anonymous, or logged in as ``user``)."""
    if user is None:
        return SessionData(csrf=secrets.token_urlsafe(32))
    return SessionData(csrf=secrets.token_urlsafe(32), user_id=user.id,
                       fingerprint=password_fingerprint(user.password_hash), sid=secrets.token_urlsafe(24))


def revoke_session(session: Session, data: SessionData, max_age: int = SESSION_MAX_AGE) -> None:
    """Record that login session ``data`` has ended, so that no copy of its cookie logs in again until it would have
    expired anyway; forget the records of sessions that have expired by now."""
    if not data.sid:
        return
    now = datetime.now(timezone.utc)
    session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now))
    session.merge(RevokedSession(sid=data.sid, expires_at=now + timedelta(seconds=max_age)))


def tokens_equal(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two tokens (False if either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@dataclass
class RateLimiter:
    """At most ``limit`` failed logins per key within ``window`` seconds (keys: client address, user name)."""

    limit: int = 10
    window: float = 15 * 60
    _failures: dict[str, deque] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed for the most limited key; 0 when allowed now."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._failures.get(key)
                if not q:
                    continue
                while q and now - q[0] > self.window:
                    q.popleft()
                if len(q) >= self.limit:
                    wait = max(wait, self.window - (now - q[0]))
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        """Record a failed attempt for each key."""
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # bound memory under a flood of distinct keys
                self._failures.clear()
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of these keys."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
