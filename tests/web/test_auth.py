"""Accounts and sessions through the real app: login, logout, CSRF, rate limiting, cookies, registration."""

from __future__ import annotations

import time

import pytest

from faces.web.auth import SessionCodec, SessionData, ensure_first_admin, set_password, verify_password
from faces.store.models import User
from tests.web.conftest import PASSWORD


def test_login_gives_a_session_and_logout_ends_it(web):
    web.user("anna")
    client = web.client()
    assert client.get("/api/images").status_code == 401
    token = client.get("/api/session").json()["csrf_token"]
    wrong = client.post("/api/login", json={"username": "anna", "password": "not it at all"},
                        headers={"X-CSRF-Token": token})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "Wrong user name or password."
    ok = client.post("/api/login", json={"username": "Anna", "password": PASSWORD}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert ok.json()["user"]["username"] == "anna"
    new_token = ok.json()["csrf_token"]
    assert new_token != token  # a new session, a new token
    assert client.get("/api/images").status_code == 200
    assert client.post("/api/logout", headers={"X-CSRF-Token": new_token}).status_code == 200
    assert client.get("/api/images").status_code == 401
    assert client.get("/api/session").json()["user"] is None


def test_logout_ends_that_session_even_for_a_copy_of_its_cookie_and_no_other(web):
    """A stolen or copied cookie is worth nothing once its session has logged out; the same user's other sessions
    (another device) stay logged in."""
    web.user("anna")
    laptop, phone = web.login("anna"), web.login("anna")
    thief = web.client()
    thief.cookies.update(laptop.cookies)
    thief.headers["X-CSRF-Token"] = laptop.headers["X-CSRF-Token"]
    assert thief.get("/api/images").status_code == 200
    assert laptop.post("/api/logout").status_code == 200
    assert thief.get("/api/images").status_code == 401
    assert thief.get("/api/session").json()["user"] is None
    assert phone.get("/api/images").status_code == 200
    again = web.login("anna")  # logging in again gives a new session, not the revoked one
    assert again.get("/api/images").status_code == 200


def test_an_old_logged_out_session_is_forgotten_once_it_would_have_expired(web):
    from datetime import datetime, timedelta, timezone

    from faces.store.models import RevokedSession
    from faces.web.auth import revoke_session

    with web.store.session() as s:
        revoke_session(s, SessionData(csrf="c", user_id=1, sid="old"), max_age=-60)  # expired a minute ago
        revoke_session(s, SessionData(csrf="c", user_id=1, sid="recent"))
    with web.store.session() as s:
        revoke_session(s, SessionData(csrf="c", user_id=1, sid="recent"))  # twice: still one record
        revoke_session(s, SessionData(csrf="c"))  # anonymous: nothing to record
    with web.store.session() as s:
        rows = {r.sid: r.expires_at for r in s.query(RevokedSession)}
    assert set(rows) == {"recent"}
    expires = rows["recent"] if rows["recent"].tzinfo else rows["recent"].replace(tzinfo=timezone.utc)
    assert expires > datetime.now(timezone.utc) + timedelta(days=13)


def test_a_password_changed_or_an_account_deleted_elsewhere_ends_its_sessions_at_once(web):
    # elsewhere: `faces user passwd`, or another worker process of `faces serve --workers N`
    anna, ben = web.user("anna"), web.user("ben")
    anna_client, ben_client = web.login("anna"), web.login("ben")
    assert anna_client.get("/api/session").json()["user"]["username"] == "anna"
    with web.store.session() as s:
        set_password(s, s.get(User, anna), "changed from the command line")
        s.delete(s.get(User, ben))
    assert anna_client.get("/api/images").status_code == 401
    assert anna_client.get("/api/session").json()["user"] is None
    assert ben_client.get("/api/images").status_code == 401


@pytest.mark.one_backend
def test_a_session_cookie_is_refused_once_it_expired_or_if_it_was_changed(monkeypatch):
    codec = SessionCodec("a secret key for the test", max_age=3600)
    cookie = codec.dumps(SessionData(csrf="token", user_id=7, fingerprint="f"))
    assert codec.loads(cookie) == SessionData(csrf="token", user_id=7, fingerprint="f")
    assert codec.loads(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    assert codec.loads(cookie) is None  # remembered as valid before, expired now


@pytest.mark.one_backend
def test_session_cookie_is_httponly_lax_and_secure_on_https(web):
    plain = web.client().get("/login")
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = web.client(base_url="https://testserver").get("/login")
    assert "Secure" in secure.headers["set-cookie"]


def test_state_changes_need_the_csrf_token(web):
    web.user("anna")
    client = web.login("anna")
    token = client.headers.pop("X-CSRF-Token")
    image = web.image(client.get("/api/session").json()["user"]["id"])
    face = web.face(image)
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        answer = client.post(f"/api/faces/{face}/name", json={"name": "Ben"}, headers=headers)
        assert answer.status_code == 403
        assert "CSRF" in answer.json()["detail"]
    assert client.get(f"/api/faces/{face}").json()["state"] == "unnamed"
    assert client.post(f"/api/faces/{face}/name", json={"name": "Ben"},
                       headers={"X-CSRF-Token": token}).status_code == 200
    # the token of one session is worth nothing in another
    other = web.login("anna")
    assert other.post(f"/api/faces/{face}/reset", headers={"X-CSRF-Token": token}).status_code == 403


@pytest.mark.one_backend
def test_login_is_rate_limited(web):
    web.user("anna")
    client = web.client()
    token = client.get("/api/session").json()["csrf_token"]
    for _ in range(10):
        assert client.post("/api/login", json={"username": "anna", "password": "guess guess"},
                           headers={"X-CSRF-Token": token}).status_code == 401
    blocked = client.post("/api/login", json={"username": "anna", "password": PASSWORD},
                          headers={"X-CSRF-Token": token})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in blocked.json()["detail"]


@pytest.mark.one_backend
def test_a_password_change_ends_the_other_sessions(web):
    web.user("anna")
    first = web.login("anna")
    second = web.login("anna")
    answer = first.post("/api/account/password", json={"current_password": PASSWORD,
                                                        "new_password": "a new long password"})
    assert answer.status_code == 200
    first.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    assert first.get("/api/images").status_code == 200
    assert second.get("/api/images").status_code == 401
    short = first.post("/api/account/password", json={"current_password": "a new long password",
                                                       "new_password": "short"})
    assert short.status_code == 400 and "at least 8" in short.json()["detail"]


@pytest.mark.one_backend
def test_registration_is_closed_unless_the_setting_opens_it(web):
    client = web.client()
    token = client.get("/api/session").json()["csrf_token"]
    body = {"username": "newbie", "password": "long enough password"}
    closed = client.post("/api/register", json=body, headers={"X-CSRF-Token": token})
    assert closed.status_code == 403
    assert client.get("/register", follow_redirects=False).status_code == 303
    web.settings.registration_open = True
    opened = client.post("/api/register", json=body, headers={"X-CSRF-Token": token})
    assert opened.status_code == 201
    assert opened.json()["user"]["username"] == "newbie"
    client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
    assert client.get("/api/images").status_code == 200
    again = web.client()
    token = again.get("/api/session").json()["csrf_token"]
    taken = again.post("/api/register", json=body, headers={"X-CSRF-Token": token})
    assert taken.status_code == 400 and "already an account" in taken.json()["detail"]


@pytest.mark.one_backend
def test_only_the_admin_creates_accounts(web):
    web.user("root", admin=True)
    web.user("anna")
    anna = web.login("anna")
    assert anna.post("/api/users", json={"username": "ben", "password": "long enough pw"}).status_code == 403
    root = web.login("root")
    created = root.post("/api/users", json={"username": "ben", "password": "long enough pw"})
    assert created.status_code == 201
    assert [u["username"] for u in root.get("/api/users").json()] == ["anna", "ben", "root"]
    bad = root.post("/api/users", json={"username": "bad/name", "password": "long enough pw"})
    assert bad.status_code == 400 and "letters" in bad.json()["detail"]
    web.login("ben", "long enough pw")


@pytest.mark.one_backend
def test_first_start_creates_an_admin_that_can_log_in(web):
    with web.store.session() as s:
        username, password = ensure_first_admin(s)
    assert username == "admin"
    with web.store.session() as s:
        assert ensure_first_admin(s) is None  # only once
        admin = s.query(User).filter_by(username="admin").one()
        assert admin.is_admin and verify_password(admin.password_hash, password)
        assert admin.password_hash.startswith("$argon2id$")
    web.login("admin", password)


@pytest.mark.one_backend
def test_pages_redirect_to_login_and_back(web):
    client = web.client()
    answer = client.get("/people", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fpeople"
    web.user("anna")
    logged = web.login("anna")
    assert logged.get("/login?next=/people", follow_redirects=False).headers["location"] == "/people"
    assert logged.get("/login?next=//evil.example", follow_redirects=False).headers["location"] == "/"
