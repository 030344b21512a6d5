"""Every endpoint of the app, for every kind of observer: the allowed ones succeed, the others are refused,
including with ids taken from another user's library. The routes are enumerated from the app itself, so a new
endpoint makes this test fail until it is classified here."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from faces.sharing import contacts, groups, notifications, permissions
from faces.store.models import Contact, ContactStatus, FaceState, Notification, User, Visibility

from .webapp import WebLibrary, app_routes

ROLES = ("owner", "viewer", "writer", "stranger", "admin", "anon")
ALLOWED = {  # rule -> roles that may call it on the owner's library ("mine")
    "any": set(ROLES),
    "user": {"owner", "viewer", "writer", "stranger", "admin"},
    "self": {"owner", "viewer", "writer", "stranger", "admin"},
    "view": {"owner", "viewer", "writer"},
    "write": {"owner", "writer"},
    "owner": {"owner"},
    "admin": {"admin"},
    "token": set(),  # answers a clone's bearer token only: no session of anybody opens it
}
_seq = itertools.count(1)


class Ctx:
    """The world of the matrix: the owner's library (``mine``) and the stranger's (``theirs``)."""

    def __init__(self, web: WebLibrary):
        self.web = web
        self.ids = {role: web.user(role, admin=role == "admin") for role in ROLES if role != "anon"}
        with web.store.session() as s:
            for role in ("viewer", "writer"):
                request = contacts.request_contact(s, self.ids["owner"], role)
                contacts.respond(s, self.ids[role], request.id, True)
            permissions.set_access_list(s, self.ids["owner"], permissions.AccessList(
                "write", default=False, allow_users=[self.ids["writer"]]))
        self.clients = {role: web.login(role) for role in self.ids}
        self.clients["anon"] = web.client()

    def lib(self, where: str) -> int:
        return self.ids["owner"] if where == "mine" else self.ids["stranger"]

    def subject(self, role: str, where: str) -> int:
        """Whose own data a 'self' request touches: the caller's, or the stranger's for 'theirs'."""
        if where == "theirs" or role == "anon":
            return self.ids["stranger"] if where == "theirs" else self.ids["owner"]
        return self.ids[role]

    def visibility(self, where: str) -> Visibility:
        return Visibility.CONTACTS if where == "mine" else Visibility.PRIVATE

    def face(self, where: str, **kw) -> int:
        return self.web.face(self.lib(where), visibility=self.visibility(where), **kw)

    def image(self, where: str) -> int:
        return self.web.image(self.lib(where), self.visibility(where))

    def fresh_user(self) -> int:
        """A new account that never logs in (no password: hashing one costs most of a second)."""
        with self.web.store.session() as s:
            user = User(username=f"u{next(_seq)}", display_name="someone")
            s.add(user)
            s.flush()
            return user.id

    def fresh_username(self) -> str:
        with self.web.store.session() as s:
            return s.get(User, self.fresh_user()).username

    def connect(self, a: int, b: int) -> None:
        with self.web.store.session() as s:
            s.add(Contact(user_id=a, contact_id=b, status=ContactStatus.ACCEPTED))

    def group(self, owner_id: int) -> int:
        with self.web.store.session() as s:
            return groups.create_group(s, owner_id, f"group {next(_seq)}").id


def _cluster(c: Ctx, where: str) -> tuple[int, int]:
    cid = 9000 + next(_seq)
    face = c.face(where, cluster_id=cid)
    c.face(where, cluster_id=cid)
    return cid, face


def _tagged(c: Ctx, role: str, where: str) -> int:
    person = c.subject(role, where)
    owner = c.lib(where)
    name = c.web.name(owner, contact_user_id=person)
    return c.web.face(owner, state=FaceState.CONFIRMED, name_id=name, visibility=Visibility.PUBLIC)


def _notification(c: Ctx, role: str, where: str) -> int:
    with c.web.store.session() as s:
        note = Notification(user_id=c.subject(role, where), kind=notifications.TAGGED, payload={"text": "hi"})
        s.add(note)
        s.flush()
        return note.id


def _request_to(c: Ctx, user_id: int) -> int:
    with c.web.store.session() as s:
        row = Contact(user_id=c.fresh_user(), contact_id=user_id, status=ContactStatus.PENDING)
        s.add(row)
        s.flush()
        return row.id


def _contact_of(c: Ctx, user_id: int) -> int:
    other = c.fresh_user()
    c.connect(user_id, other)
    return other


def _sync_token(c: Ctx, role: str, where: str) -> int:
    from faces.portability import sync as portability_sync
    from faces.store.models import SyncToken

    with c.web.store.session() as s:
        portability_sync.create_token(s, c.subject(role, where), "matrix")
        return s.scalar(select(SyncToken.id).order_by(SyncToken.id.desc()).limit(1))


def _sync_peer(c: Ctx, role: str, where: str) -> int:
    from faces.store.models import SyncPeer

    with c.web.store.session() as s:
        peer = SyncPeer(owner_id=c.subject(role, where), url=f"http://127.0.0.1:9/{next(_seq)}", token="t")
        s.add(peer)
        s.flush()
        return peer.id


def _member(c: Ctx, role: str, where: str, add: bool) -> str:
    me = c.subject(role, where)
    group_id = c.group(me)
    other = _contact_of(c, me)
    if not add:
        with c.web.store.session() as s:
            groups.add_member(s, me, group_id, other)
    return f"/api/contact-groups/{group_id}/members/{other}"


# (method, path) -> (rule, build(ctx, role, where) -> dict(url=..., json=..., files=...), extra ok codes)
# Extra ok codes: answers that mean "you may, but not like this" (wrong password, nothing to undo...).
ROUTES = {
    # accounts
    ("GET", "/api/session"): ("any", lambda c, r, w: {"url": "/api/session"}, ()),
    ("POST", "/api/login"): ("any", lambda c, r, w: {"url": "/api/login",
                                                     "json": {"username": "owner", "password": "wrong one!"}}, ()),
    ("POST", "/api/logout"): ("any", lambda c, r, w: {"url": "/api/logout"}, ()),
    ("POST", "/api/register"): ("any", lambda c, r, w: {"url": "/api/register", "json": {
        "username": f"reg{next(_seq)}", "password": "long enough password"}}, ()),
    ("POST", "/api/account/password"): ("user", lambda c, r, w: {"url": "/api/account/password", "json": {
        "current_password": "not my password", "new_password": "another long password"}}, (400,)),
    ("GET", "/api/users"): ("admin", lambda c, r, w: {"url": "/api/users"}, ()),
    ("POST", "/api/users"): ("admin", lambda c, r, w: {"url": "/api/users", "json": {
        "username": f"new{next(_seq)}", "password": "long enough password"}}, ()),
    # photos
    ("GET", "/api/images"): ("view", lambda c, r, w: {"url": f"/api/images?owner={c.lib(w)}"}, ()),
    ("GET", "/api/images/batch"): ("view", lambda c, r, w: {"url": f"/api/images/batch?ids={c.image(w)}"}, ()),
    ("GET", "/api/images/{image_id}"): ("view", lambda c, r, w: {"url": f"/api/images/{c.image(w)}"}, ()),
    ("GET", "/api/images/{image_id}/thumb"): ("view", lambda c, r, w: {
        "url": f"/api/images/{c.image(w)}/thumb"}, ()),
    ("GET", "/api/images/{image_id}/full"): ("view", lambda c, r, w: {"url": f"/api/images/{c.image(w)}/full"}, ()),
    ("DELETE", "/api/images/{image_id}"): ("owner", lambda c, r, w: {"url": f"/api/images/{c.image(w)}"}, ()),
    ("GET", "/api/images/{image_id}/visibility"): ("owner", lambda c, r, w: {
        "url": f"/api/images/{c.image(w)}/visibility"}, ()),
    ("PUT", "/api/images/{image_id}/visibility"): ("owner", lambda c, r, w: {
        "url": f"/api/images/{c.image(w)}/visibility", "json": {"visibility": "private"}}, ()),
    ("POST", "/api/uploads"): ("user", lambda c, r, w: {"url": "/api/uploads", "files": {}}, (400, 422)),
    # faces
    ("GET", "/api/faces/{face_id}"): ("view", lambda c, r, w: {"url": f"/api/faces/{c.face(w)}"}, ()),
    ("GET", "/api/faces/{face_id}/thumb"): ("view", lambda c, r, w: {"url": f"/api/faces/{c.face(w)}/thumb"}, ()),
    ("POST", "/api/faces/{face_id}/name"): ("write", lambda c, r, w: {
        "url": f"/api/faces/{c.face(w)}/name", "json": {"name": f"Zed {next(_seq)}"}}, ()),
    ("POST", "/api/faces/{face_id}/confirm"): ("write", lambda c, r, w: {
        "url": f"/api/faces/{c.face(w, state=FaceState.GUESSED, guess_name_id=c.web.name(c.lib(w)))}/confirm"}, ()),
    ("POST", "/api/faces/{face_id}/reject"): ("write", lambda c, r, w: {
        "url": f"/api/faces/{c.face(w, state=FaceState.GUESSED, guess_name_id=c.web.name(c.lib(w)))}/reject"}, ()),
    ("POST", "/api/faces/{face_id}/unknown"): ("write", lambda c, r, w: {"url": f"/api/faces/{c.face(w)}/unknown"},
                                               ()),
    ("POST", "/api/faces/{face_id}/ignore"): ("write", lambda c, r, w: {"url": f"/api/faces/{c.face(w)}/ignore"}, ()),
    ("POST", "/api/faces/{face_id}/reset"): ("write", lambda c, r, w: {"url": f"/api/faces/{c.face(w)}/reset"}, ()),
    # names
    ("GET", "/api/names"): ("view", lambda c, r, w: {"url": f"/api/names?owner={c.lib(w)}"}, ()),
    ("GET", "/api/names/suggest"): ("view", lambda c, r, w: {"url": f"/api/names/suggest?owner={c.lib(w)}&q=P"}, ()),
    ("GET", "/api/names/{name_id}"): ("view", lambda c, r, w: {"url": f"/api/names/{c.web.name(c.lib(w))}"}, ()),
    ("PATCH", "/api/names/{name_id}"): ("write", lambda c, r, w: {
        "url": f"/api/names/{c.web.name(c.lib(w))}", "json": {"name": f"Renamed {next(_seq)}"}}, ()),
    ("POST", "/api/names/merge"): ("write", lambda c, r, w: {"url": "/api/names/merge", "json": {
        "keep": c.web.name(c.lib(w)), "other": c.web.name(c.lib(w))}}, ()),
    ("GET", "/api/undo"): ("write", lambda c, r, w: {"url": f"/api/undo?owner={c.lib(w)}"}, ()),
    ("POST", "/api/undo"): ("write", lambda c, r, w: {"url": "/api/undo", "json": {"owner": c.lib(w)}}, (409,)),
    # groups of look-alike faces
    ("GET", "/api/groups"): ("view", lambda c, r, w: {"url": f"/api/groups?owner={c.lib(w)}"}, ()),
    ("POST", "/api/groups/{group_id}/name"): ("write", lambda c, r, w: {
        "url": f"/api/groups/{_cluster(c, w)[0]}/name", "json": {"owner": c.lib(w), "name": f"G {next(_seq)}"}}, ()),
    ("POST", "/api/groups/{group_id}/remove"): ("write", lambda c, r, w: (lambda cf: {
        "url": f"/api/groups/{cf[0]}/remove", "json": {"owner": c.lib(w), "face_ids": [cf[1]]}})(_cluster(c, w)), ()),
    # detection
    ("GET", "/api/detection"): ("view", lambda c, r, w: {"url": f"/api/detection?owner={c.lib(w)}"}, ()),
    ("POST", "/api/detection"): ("write", lambda c, r, w: {"url": "/api/detection",
                                                          "json": {"owner": c.lib(w), "auto": True}}, (409,)),
    # contacts and their groups (one's own; ids of someone else's are refused)
    ("GET", "/api/contacts"): ("user", lambda c, r, w: {"url": "/api/contacts"}, ()),
    ("POST", "/api/contacts"): ("user", lambda c, r, w: {"url": "/api/contacts",
                                                         "json": {"username": c.fresh_username()}},
                                ()),
    ("POST", "/api/contacts/requests/{request_id}"): ("self", lambda c, r, w: {
        "url": f"/api/contacts/requests/{_request_to(c, c.subject(r, w))}", "json": {"accept": False}}, ()),
    ("DELETE", "/api/contacts/{user_id}"): ("self", lambda c, r, w: {
        "url": f"/api/contacts/{_contact_of(c, c.subject(r, w))}"}, ()),
    ("GET", "/api/contact-groups"): ("user", lambda c, r, w: {"url": "/api/contact-groups"}, ()),
    ("POST", "/api/contact-groups"): ("user", lambda c, r, w: {"url": "/api/contact-groups",
                                                               "json": {"name": f"g{next(_seq)}"}}, ()),
    ("PATCH", "/api/contact-groups/{group_id}"): ("self", lambda c, r, w: {
        "url": f"/api/contact-groups/{c.group(c.subject(r, w))}", "json": {"name": f"g{next(_seq)}"}}, ()),
    ("DELETE", "/api/contact-groups/{group_id}"): ("self", lambda c, r, w: {
        "url": f"/api/contact-groups/{c.group(c.subject(r, w))}"}, ()),
    ("PUT", "/api/contact-groups/{group_id}/members/{user_id}"): ("self", lambda c, r, w: {
        "url": _member(c, r, w, add=True)}, ()),
    ("DELETE", "/api/contact-groups/{group_id}/members/{user_id}"): ("self", lambda c, r, w: {
        "url": _member(c, r, w, add=False)}, ()),
    ("GET", "/api/permissions"): ("user", lambda c, r, w: {"url": "/api/permissions"}, ()),
    ("PUT", "/api/permissions/{kind}"): ("user", lambda c, r, w: {"url": "/api/permissions/view",
                                                                  "json": {"default": True}}, ()),
    # notifications, photos of me
    ("GET", "/api/notifications"): ("user", lambda c, r, w: {"url": "/api/notifications"}, ()),
    ("POST", "/api/notifications/read"): ("self", lambda c, r, w: {
        "url": "/api/notifications/read", "json": {"id": _notification(c, r, w)}}, ()),
    ("GET", "/api/me/photos"): ("user", lambda c, r, w: {"url": "/api/me/photos"}, ()),
    ("GET", "/api/me/photos/{face_id}/thumb"): ("self", lambda c, r, w: {
        "url": f"/api/me/photos/{_tagged(c, r, w)}/thumb"}, ()),
    ("POST", "/api/me/photos/{face_id}/remove"): ("self", lambda c, r, w: {
        "url": f"/api/me/photos/{_tagged(c, r, w)}/remove"}, ()),
    # statistics, deletion, admin
    ("GET", "/api/stats"): ("user", lambda c, r, w: {"url": "/api/stats"}, ()),
    ("POST", "/api/library/delete-faces"): ("user", lambda c, r, w: {"url": "/api/library/delete-faces",
                                                                     "json": {"confirm": r}}, ()),
    ("GET", "/api/admin/settings"): ("admin", lambda c, r, w: {"url": "/api/admin/settings"}, ()),
    ("PUT", "/api/admin/settings"): ("admin", lambda c, r, w: {"url": "/api/admin/settings",
                                                              "json": {"values": {"log_level": "INFO"}}}, ()),
    ("GET", "/api/admin/stats"): ("admin", lambda c, r, w: {"url": "/api/admin/stats"}, ()),
    ("GET", "/api/admin/sync"): ("admin", lambda c, r, w: {"url": "/api/admin/sync"}, ()),
    ("POST", "/api/admin/delete-faces"): ("admin", lambda c, r, w: {"url": "/api/admin/delete-faces",
                                                                   "json": {"confirm": "delete all faces"}}, ()),
    # export, import and clones (faces.portability)
    ("GET", "/api/library/export"): ("user", lambda c, r, w: {"url": "/api/library/export"}, ()),
    ("POST", "/api/library/import"): ("user", lambda c, r, w: {"url": "/api/library/import", "files": {}}, (422,)),
    ("GET", "/api/sync/changes"): ("token", lambda c, r, w: {"url": "/api/sync/changes?since=0"}, ()),
    ("GET", "/api/sync/status"): ("user", lambda c, r, w: {"url": "/api/sync/status"}, ()),
    ("POST", "/api/sync/tokens"): ("user", lambda c, r, w: {"url": "/api/sync/tokens", "json": {"label": "x"}}, ()),
    ("DELETE", "/api/sync/tokens/{token_id}"): ("self", lambda c, r, w: {
        "url": f"/api/sync/tokens/{_sync_token(c, r, w)}"}, ()),
    ("POST", "/api/sync/peers"): ("user", lambda c, r, w: {"url": "/api/sync/peers", "json": {
        "url": f"http://127.0.0.1:9/{next(_seq)}", "token": "secret"}}, ()),
    ("DELETE", "/api/sync/peers/{peer_id}"): ("self", lambda c, r, w: {
        "url": f"/api/sync/peers/{_sync_peer(c, r, w)}"}, ()),
    ("POST", "/api/sync/now"): ("user", lambda c, r, w: {"url": "/api/sync/now"}, ()),
    ("GET", "/sync"): ("user", lambda c, r, w: {"url": "/sync"}, ()),
    # pages and the API description
    ("GET", "/"): ("user", lambda c, r, w: {"url": "/"}, ()),
    ("GET", "/search"): ("user", lambda c, r, w: {"url": "/search"}, ()),
    ("GET", "/people"): ("user", lambda c, r, w: {"url": "/people"}, ()),
    ("GET", "/people/{name_id}"): ("view", lambda c, r, w: {"url": f"/people/{c.web.name(c.lib(w))}"}, ()),
    ("GET", "/groups"): ("user", lambda c, r, w: {"url": "/groups"}, ()),
    ("GET", "/account"): ("user", lambda c, r, w: {"url": "/account"}, ()),
    ("GET", "/login"): ("any", lambda c, r, w: {"url": "/login"}, ()),
    ("GET", "/register"): ("any", lambda c, r, w: {"url": "/register"}, ()),
    ("GET", "/sharing"): ("user", lambda c, r, w: {"url": "/sharing"}, ()),
    ("GET", "/me/photos"): ("user", lambda c, r, w: {"url": "/me/photos"}, ()),
    ("GET", "/stats"): ("user", lambda c, r, w: {"url": "/stats"}, ()),
    ("GET", "/admin"): ("admin", lambda c, r, w: {"url": "/admin"}, ()),
    ("GET", "/api/openapi.json"): ("any", lambda c, r, w: {"url": "/api/openapi.json"}, ()),
}
LAST = {("POST", "/api/logout")}  # ends the client's session: run after everything else


@pytest.fixture
def web(settings, store, data_root):
    settings.finders["dlib"].enabled = False  # no detection runs behind the matrix's back
    settings.finders["opencv"].enabled = False
    return WebLibrary(settings, store, data_root / "public_domain_faces" / "astronaut.png")


def _refused(status: int, page: bool, role: str) -> bool:
    if page and role == "anon":
        return status in (303, 401)
    return status in (401, 403, 404)


def test_every_route_is_classified(web):
    routes = app_routes(web.app)
    assert routes, "no routes found: the route walker does not understand this FastAPI"
    missing = sorted(routes - set(ROUTES))
    assert not missing, f"classify these new endpoints in the permission matrix: {missing}"
    gone = sorted(set(ROUTES) - routes)
    assert not gone, f"these endpoints are gone from the app; remove them from the matrix: {gone}"


def test_permission_matrix(web):
    ctx = Ctx(web)
    failures = []
    order = sorted(ROUTES, key=lambda key: (key in LAST, key))
    for key in order:
        rule, build, extra_ok = ROUTES[key]
        method, path = key
        page = not path.startswith("/api/")
        for where in ("mine", "theirs"):
            if where == "theirs" and rule in ("any", "user", "admin", "token"):
                continue  # nothing of anybody's library in the request
            for role in ROLES:
                if where == "theirs" and role == "stranger":
                    continue  # it is the stranger's own
                request = build(ctx, role, where)
                client = ctx.clients[role]
                answer = client.request(method, request["url"], json=request.get("json"),
                                        files=request.get("files"))
                status = answer.status_code
                allowed = role in ALLOWED[rule] and where == "mine"
                if status >= 500:
                    failures.append(f"{role} {method} {request['url']} ({where}): server error {status}")
                elif rule == "any":
                    continue
                elif allowed and not (status < 400 or status in extra_ok):
                    failures.append(f"{role} {method} {request['url']} ({where}): refused with {status}, "
                                    f"should be allowed: {answer.text[:200]}")
                elif not allowed and not _refused(status, page, role):
                    failures.append(f"{role} {method} {request['url']} ({where}): answered {status}, "
                                    f"should be refused")
    assert not failures, "\n".join(failures)
