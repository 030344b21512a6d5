"""Naming in place, people and groups through the API, with the real naming actions and guess refresh
(faces with synthetic embeddings: three photos of one made-up person, one of another)."""

from __future__ import annotations

from tests.web.conftest import person_vectors

XSS = "<img src=x onerror=alert(1)>"


def _library(web, owner):
    anna = person_vectors(11, 3)
    other = person_vectors(99, 1)
    images = [web.image(owner) for _ in range(4)]
    faces = [web.face(images[i], vector=anna[i]) for i in range(3)] + [web.face(images[3], vector=other[0])]
    return images, faces


def test_naming_one_face_guesses_the_others_and_confirm_reject_work(web):
    owner = web.user("anna")
    client = web.login("anna")
    images, faces = _library(web, owner)
    answer = client.post(f"/api/faces/{faces[0]}/name", json={"name": "  Anna   Smith "})
    assert answer.status_code == 200
    assert answer.json()["face"]["state"] == "confirmed"
    assert answer.json()["face"]["name"]["name"] == "Anna Smith"
    frames = {f["id"]: f for i in client.get("/api/images/batch", params={"ids": ",".join(map(str, images))}).json()["items"]
              for f in i["faces"]}
    assert [frames[f]["state"] for f in faces] == ["confirmed", "guessed", "guessed", "unnamed"]
    assert frames[faces[1]]["guess"]["name"] == "Anna Smith"
    confirmed = client.post(f"/api/faces/{faces[1]}/confirm").json()["face"]
    assert confirmed["state"] == "confirmed" and confirmed["name"]["name"] == "Anna Smith"
    rejected = client.post(f"/api/faces/{faces[2]}/reject").json()["face"]
    assert rejected["state"] == "unnamed" and rejected["guess"] is None
    # a rejected name is not guessed again for that face, even after more names
    client.post(f"/api/faces/{faces[0]}/name", json={"name": "Anna Smith"})
    assert client.get(f"/api/faces/{faces[2]}").json()["guess"] is None
    nothing = client.post(f"/api/faces/{faces[3]}/confirm")
    assert nothing.status_code == 400
    assert nothing.json()["detail"].startswith("Face ") and nothing.json()["detail"].endswith(".")
    # an empty name resets a face
    assert client.post(f"/api/faces/{faces[1]}/name", json={"name": "  "}).json()["face"]["state"] in (
        "unnamed", "guessed")


def test_unknown_ignore_and_reset(web):
    owner = web.user("anna")
    client = web.login("anna")
    images, faces = _library(web, owner)
    client.post(f"/api/faces/{faces[0]}/name", json={"name": "Anna"})
    assert client.post(f"/api/faces/{faces[1]}/unknown").json()["face"]["state"] == "unknown"
    assert client.post(f"/api/faces/{faces[2]}/ignore").json()["face"]["state"] == "ignored"
    shown = [f["id"] for i in client.get("/api/images").json()["items"] for f in i["faces"]]
    assert faces[2] not in shown and faces[1] in shown
    back = client.post(f"/api/faces/{faces[1]}/reset").json()["face"]
    assert back["state"] == "guessed" and back["guess"]["name"] == "Anna"


def test_suggestions_offer_the_owners_names_as_one_types(web):
    owner = web.user("anna")
    web.user("ben")
    client = web.login("anna")
    images = [web.image(owner) for _ in range(3)]
    for image, text in zip(images, ["Annabel", "Hannah", "Bob"]):
        client.post(f"/api/faces/{web.face(image)}/name", json={"name": text})
    labels = [s["label"] for s in client.get("/api/names/suggest", params={"q": "ann"}).json()]
    assert labels == ["Annabel", "Hannah"]  # starting with the text first, then containing it
    assert [s["label"] for s in client.get("/api/names/suggest", params={"q": "BO"}).json()] == ["Bob"]
    # another user's names are not offered, and their library cannot be asked for
    ben = web.login("ben")
    assert ben.get("/api/names/suggest", params={"q": "a"}).json() == []
    assert ben.get("/api/names/suggest", params={"q": "a", "owner": owner}).status_code == 404


def test_people_rename_merge_and_undo(web):
    owner = web.user("anna")
    client = web.login("anna")
    images, faces = _library(web, owner)
    first = client.post(f"/api/faces/{faces[0]}/name", json={"name": "Ana"}).json()["face"]["name"]["id"]
    second = client.post(f"/api/faces/{faces[1]}/name", json={"name": "Anna"}).json()["face"]["name"]["id"]
    client.post(f"/api/faces/{faces[3]}/name", json={"name": "Zed"})
    people = client.get("/api/names").json()
    assert [(p["name"], p["confirmed"], p["images"]) for p in people] == [("Ana", 1, 1), ("Anna", 1, 1), ("Zed", 1, 1)]
    assert people[0]["thumb_url"] == f"/api/faces/{faces[0]}/thumb"
    taken = client.patch(f"/api/names/{first}", json={"name": "Anna"})
    assert taken.status_code == 400 and "merge" in taken.json()["detail"]
    merged = client.post("/api/names/merge", json={"keep": second, "other": first})
    assert merged.status_code == 200 and merged.json()["confirmed"] == 2
    assert [p["name"] for p in client.get("/api/names").json()] == ["Anna", "Zed"]
    assert client.get(f"/api/names/{first}").status_code == 404
    assert client.get("/api/undo").json() == {"available": True, "action": "the last merge of two names",
                                              "message": None}
    undone = client.post("/api/undo", json={})
    assert undone.status_code == 200 and "Ana" in undone.json()["message"]
    assert sorted(p["name"] for p in client.get("/api/names").json()) == ["Ana", "Anna", "Zed"]
    assert client.post("/api/undo", json={}).status_code == 409
    renamed = client.patch(f"/api/names/{second}", json={"name": "Anna Smith"})
    assert renamed.json()["name"] == "Anna Smith"
    assert client.get(f"/api/faces/{faces[1]}").json()["name"]["name"] == "Anna Smith"


def test_groups_are_named_in_one_action_and_faces_can_leave_them(web):
    from faces.naming.refresh import refresh_guesses

    owner = web.user("anna")
    client = web.login("anna")
    anna, ben = person_vectors(5, 4), person_vectors(6, 3)
    faces = [web.face(web.image(owner), vector=v) for v in anna + ben]
    with web.store.session() as s:
        refresh_guesses(s, web.settings, owner)
    groups = client.get("/api/groups").json()
    assert groups["total"] == 2
    sizes = sorted((g["size"], sorted(f["id"] for f in g["faces"])) for g in groups["groups"])
    assert sizes == [(3, sorted(faces[4:])), (4, sorted(faces[:4]))]
    big = next(g for g in groups["groups"] if g["size"] == 4)
    left = client.post(f"/api/groups/{big['id']}/remove", json={"face_ids": [faces[3]]})
    assert left.status_code == 200 and left.json()["size"] == 3
    named = client.post(f"/api/groups/{big['id']}/name", json={"name": XSS})
    assert named.status_code == 200
    assert named.json()["faces"] == 3 and named.json()["person"]["name"] == XSS
    states = [client.get(f"/api/faces/{f}").json() for f in faces[:4]]
    assert [s["state"] for s in states[:3]] == ["confirmed"] * 3
    assert client.post("/api/undo", json={}).status_code == 200
    assert [client.get(f"/api/faces/{f}").json()["state"] for f in faces[:3]] == ["unnamed"] * 3
    assert client.post(f"/api/groups/{big['id']}/name", json={"name": ""}).status_code == 400
    assert client.post("/api/groups/999999/name", json={"name": "X"}).status_code == 400


def test_a_person_page_escapes_the_name(web):
    owner = web.user("anna")
    client = web.login("anna")
    face = web.face(web.image(owner))
    name_id = client.post(f"/api/faces/{face}/name", json={"name": XSS}).json()["face"]["name"]["id"]
    page = client.get(f"/people/{name_id}").text
    assert XSS not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
