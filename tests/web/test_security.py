"""Every id is checked against the libraries the user may act on; headers; escaping."""

from __future__ import annotations

import pytest

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def two_libraries(web):
    anna = web.user("anna")
    web.user("ben")
    a = web.login("anna")
    image = web.image(anna)
    face = web.face(image)
    name_id = a.post(f"/api/faces/{face}/name", json={"name": "Secret Name"}).json()["face"]["name"]["id"]
    other_face = web.face(image, box=(300, 100, 50, 50))
    return {"anna": anna, "image": image, "face": face, "name": name_id, "other_face": other_face,
            "a": a, "b": web.login("ben")}


def test_another_users_ids_are_refused(web, two_libraries):
    t = two_libraries
    b = t["b"]
    reads = [f"/api/images/{t['image']}", f"/api/images/{t['image']}/thumb", f"/api/images/{t['image']}/full",
             f"/api/faces/{t['face']}", f"/api/faces/{t['face']}/thumb", f"/api/names/{t['name']}",
             f"/api/images/batch?ids={t['image']}", f"/api/images?owner={t['anna']}",
             f"/api/images?name={t['name']}", f"/api/names?owner={t['anna']}", f"/api/groups?owner={t['anna']}",
             f"/api/detection?owner={t['anna']}", f"/api/undo?owner={t['anna']}", f"/people/{t['name']}"]
    for path in reads:
        answer = b.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "Secret Name" not in answer.text
    writes = [("post", f"/api/faces/{t['other_face']}/name", {"name": "Hijack"}),
              ("post", f"/api/faces/{t['other_face']}/name", {"name_id": t["name"]}),
              ("post", f"/api/faces/{t['face']}/reset", None), ("post", f"/api/faces/{t['face']}/ignore", None),
              ("post", f"/api/faces/{t['face']}/unknown", None), ("post", f"/api/faces/{t['face']}/reject", None),
              ("post", f"/api/faces/{t['face']}/confirm", None),
              ("patch", f"/api/names/{t['name']}", {"name": "Renamed"}),
              ("post", "/api/names/merge", {"keep": t["name"], "other": t["name"]}),
              ("post", "/api/undo", {"owner": t["anna"]}),
              ("post", "/api/groups/1/name", {"owner": t["anna"], "name": "X"}),
              ("post", "/api/groups/1/remove", {"owner": t["anna"], "face_ids": [t["face"]]}),
              ("post", "/api/detection", {"owner": t["anna"]})]
    for method, path, body in writes:
        answer = getattr(b, method)(path, json=body) if body is not None else getattr(b, method)(path)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)
    # ben's own face cannot take anna's name either
    own = web.face(web.image(web.login("ben").get("/api/session").json()["user"]["id"]))
    assert b.post(f"/api/faces/{own}/name", json={"name_id": t["name"]}).status_code == 404
    # and nothing changed in anna's library
    a = t["a"]
    assert a.get(f"/api/faces/{t['face']}").json()["name"]["name"] == "Secret Name"
    assert a.get(f"/api/faces/{t['other_face']}").json()["state"] == "unnamed"
    assert [p["name"] for p in a.get("/api/names").json()] == ["Secret Name"]


@pytest.mark.one_backend
def test_nobody_logged_in_sees_nothing(web, two_libraries):
    t = two_libraries
    anonymous = web.client()
    for path in (f"/api/images/{t['image']}", f"/api/faces/{t['face']}/thumb", "/api/names", "/api/images"):
        assert anonymous.get(path).status_code == 401


@pytest.mark.one_backend
def test_security_headers_on_pages_and_api(web):
    for path in ("/login", "/api/session", "/static/app.css"):
        headers = web.client().get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"


@pytest.mark.one_backend
def test_pages_have_no_inline_scripts(web):
    web.user("anna")
    client = web.login("anna")
    for path in ("/", "/people", "/groups", "/search", "/account", "/login"):
        html = client.get(path).text
        assert "<script>" not in html and "onclick=" not in html and "javascript:" not in html, path
        assert '<script type="module" src="/static/js/' in html


def test_names_go_out_as_json_text_never_markup(web):
    anna = web.user("anna")
    client = web.login("anna")
    face = web.face(web.image(anna))
    answer = client.post(f"/api/faces/{face}/name", json={"name": XSS})
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["face"]["name"]["name"] == XSS
    people = client.get("/people").text
    assert XSS not in people
