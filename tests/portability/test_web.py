"""The page and API of backup and sync: export/import through the page, tokens, peers, the pull endpoint
(token checks, one library only), the admin's view of the sync state."""

from __future__ import annotations

import gzip
import io
import json

from sqlalchemy import select

from faces.portability import exchange
from faces.store.models import Face, SyncToken
from tests.web.conftest import PASSWORD, Web, person_vectors, web  # noqa: F401 - the fixture


def _library(web: Web, owner: int) -> list[int]:
    faces = []
    for vector in person_vectors(1, 2):
        faces.append(web.face(web.image(owner), vector=vector))
    return faces


def _named(client, face_id: int, name: str) -> None:
    answer = client.post(f"/api/faces/{face_id}/name", json={"name": name})
    assert answer.status_code == 200, answer.text


def test_pull_endpoint_needs_a_token_of_that_library(web):
    alice, bob = web.user("alice"), web.user("bob")
    faces = _library(web, alice)
    _library(web, bob)
    client = web.login("alice")
    _named(client, faces[0], "Ann")
    anonymous = web.client()
    assert anonymous.get("/api/sync/changes").status_code == 401
    assert anonymous.get("/api/sync/changes", headers={"Authorization": "Bearer fst_wrong"}).status_code == 401
    token = client.post("/api/sync/tokens", json={"label": "laptop"}).json()["token"]
    with web.store.session() as s:  # only the hash is kept
        assert s.scalar(select(SyncToken.token_hash)) != token and token not in s.scalar(select(SyncToken.token_hash))
    answer = anonymous.get("/api/sync/changes?since=0", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    body = answer.json()
    with web.store.session() as s:
        alice_uuids = set(s.scalars(select(Face.uuid).where(Face.owner_id == alice)))
        bob_uuids = set(s.scalars(select(Face.uuid).where(Face.owner_id == bob)))
    keys = {e["key"] for e in body["entries"] if e["entity"] == "face"}
    assert keys == alice_uuids and not keys & bob_uuids
    assert any(e["entity"] == "name" and e["data"]["name"] == "Ann" for e in body["entries"])
    assert all(e["origin"] == body["server_id"] for e in body["entries"])
    later = anonymous.get(f"/api/sync/changes?since={body['last']}", headers={"Authorization": f"Bearer {token}"})
    assert later.json()["entries"] == []
    # a revoked token opens nothing any more; bob cannot revoke alice's token
    token_id = client.get("/api/sync/status").json()["token_list"][0]["id"]
    assert web.login("bob").delete(f"/api/sync/tokens/{token_id}").status_code == 404
    assert client.delete(f"/api/sync/tokens/{token_id}").status_code == 200
    assert anonymous.get("/api/sync/changes", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_export_and_import_through_the_page(web):
    alice = web.user("alice")
    faces = _library(web, alice)
    client = web.login("alice")
    _named(client, faces[0], "Ann")
    page = client.get("/sync")
    assert page.status_code == 200 and "Export my library" in page.text and 'href="/sync"' in page.text
    exported = client.get("/api/library/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith('attachment; filename="faces-alice-')
    document = json.loads(gzip.decompress(exported.content))
    assert document["format"] == "faces-export" and len(document["faces"]) == 2
    assert {n["name"] for n in document["names"].values()} == {"Ann"}
    again = client.post("/api/library/import", files={"file": ("lib.json.gz", exported.content, "application/gzip")})
    assert again.status_code == 200 and again.json()["unchanged"] is True
    bad = client.post("/api/library/import", files={"file": ("x.json.gz", b"hello", "application/gzip")})
    assert bad.status_code == 422 and "nothing changed" in bad.json()["detail"]
    newer = dict(document, version=2)
    buffer = io.BytesIO()
    exchange.write_export(newer, buffer)
    refused = client.post("/api/library/import", files={"file": ("x.json.gz", buffer.getvalue(), "application/gzip")})
    assert refused.status_code == 422 and "version 2" in refused.json()["detail"]
    # no CSRF token, or nobody logged in: refused
    stranger = web.client()
    assert stranger.get("/api/library/export").status_code == 401
    del client.headers["X-CSRF-Token"]
    assert client.post("/api/library/import",
                       files={"file": ("lib.json.gz", exported.content, "application/gzip")}).status_code == 403


def test_peers_and_admin_state(web):
    web.user("root", admin=True)
    web.user("alice")
    client = web.login("alice")
    assert client.post("/api/sync/peers", json={"url": "ftp://x", "token": "t"}).status_code == 422
    added = client.post("/api/sync/peers", json={"url": "http://127.0.0.1:9/", "token": "fst_secret"})
    assert added.status_code == 200 and added.json()["url"] == "http://127.0.0.1:9"
    result = client.post("/api/sync/now").json()["results"]
    assert "cannot be reached" in result[0]["error"]
    status = client.get("/api/sync/status").json()
    assert status["peers"][0]["last_error"] and "fst_secret" not in json.dumps(status)
    assert client.get("/api/admin/sync").status_code == 403
    admin = web.login("root")
    state = admin.get("/api/admin/sync").json()
    assert state["peers"][0]["owner"] == "alice" and "fst_secret" not in json.dumps(state)
