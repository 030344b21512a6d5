"""The gallery API: newest first with keyset pages, frames by state, search by names (AND / OR) and dates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from faces.store.models import FaceState


def test_pages_are_newest_first_and_each_photo_comes_once(web, day):
    owner = web.user("anna")
    client = web.login("anna")
    expected = []
    # taken dates for some, upload dates for the others; several share one moment (ties broken by id)
    for i in range(57):
        if i % 3 == 0:
            image = web.image(owner, taken_at=day - timedelta(days=i // 2))
        else:
            image = web.image(owner, added_at=(day - timedelta(days=i // 2)).replace(tzinfo=None))
        expected.append((day - timedelta(days=i // 2), image))
    expected.sort(key=lambda t: (t[0], t[1]), reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/images", params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 6
    assert seen == [image for _, image in expected]
    assert client.get("/api/images", params={"cursor": "not-a-cursor"}).status_code == 400


def test_frames_show_states_and_names_and_hide_ignored_faces(web):
    owner = web.user("anna")
    client = web.login("anna")
    image = web.image(owner, size=(1000, 500))
    unnamed = web.face(image, box=(10, 20, 30, 40))
    ignored = web.face(image, box=(200, 20, 30, 40))
    named = web.face(image, box=(400, 20, 30, 40))
    unknown = web.face(image, box=(600, 20, 30, 40))
    client.post(f"/api/faces/{named}/name", json={"name": "Ben"}).raise_for_status()
    client.post(f"/api/faces/{ignored}/ignore").raise_for_status()
    client.post(f"/api/faces/{unknown}/unknown").raise_for_status()
    item = client.get("/api/images").json()["items"][0]
    assert (item["width"], item["height"], item["status"], item["error"]) == (1000, 500, "done", None)
    frames = {f["id"]: f for f in item["faces"]}
    assert set(frames) == {unnamed, named, unknown}
    assert frames[unnamed]["box"] == [10, 20, 30, 40] and frames[unnamed]["state"] == "unnamed"
    assert frames[named]["state"] == "confirmed" and frames[named]["name"]["name"] == "Ben"
    assert frames[unknown]["state"] == "unknown" and frames[unknown]["name"] is None
    # the ignored face comes back with reset (its id still works)
    client.post(f"/api/faces/{ignored}/reset").raise_for_status()
    again = client.get(f"/api/images/{image}").json()
    assert ignored in {f["id"] for f in again["faces"]}


def test_a_broken_file_shows_its_error_instead_of_frames(web):
    owner = web.user("anna")
    client = web.login("anna")
    web.image(owner, error="the image is truncated: the file ends before its header is complete")
    item = client.get("/api/images").json()["items"][0]
    assert item["status"] == "error"
    assert item["error"] == "The image is truncated: the file ends before its header is complete."
    assert item["faces"] == []
    thumb = client.get(item["thumb_url"])
    assert thumb.status_code == 422 and "truncated" in thumb.json()["detail"]
    only_errors = client.get("/api/images", params={"status": "error"}).json()["items"]
    assert [i["id"] for i in only_errors] == [item["id"]]


def test_search_by_names_with_and_or_and_dates(web, day):
    owner = web.user("anna")
    client = web.login("anna")
    both = web.image(owner, taken_at=day)
    only_anna = web.image(owner, taken_at=day - timedelta(days=40))
    only_ben = web.image(owner, taken_at=day - timedelta(days=400))
    nobody = web.image(owner, taken_at=day - timedelta(days=1))
    web.face(nobody)

    def name(image, text):
        face = web.face(image, box=(10 + 50 * len(text), 10, 40, 40))
        return client.post(f"/api/faces/{face}/name", json={"name": text}).json()["face"]["name"]["id"]

    anna = name(both, "Anna")
    ben = name(both, "Ben")
    assert name(only_anna, "Anna") == anna
    assert name(only_ben, "Ben") == ben

    def ids(**params):
        answer = client.get("/api/images", params=params)
        assert answer.status_code == 200, answer.text
        return [i["id"] for i in answer.json()["items"]]

    assert ids(name=[anna, ben], match="all") == [both]
    assert ids(name=[anna, ben], match="any") == [both, only_anna, only_ben]
    assert ids(name=[ben]) == [both, only_ben]
    assert ids(**{"from": (day - timedelta(days=60)).date().isoformat()}) == [both, nobody, only_anna]
    assert ids(**{"from": (day - timedelta(days=60)).date().isoformat(),
                  "to": (day - timedelta(days=2)).date().isoformat()}) == [only_anna]
    assert ids(name=[ben], **{"to": (day - timedelta(days=1)).date().isoformat()}) == [only_ben]
    wrong_order = client.get("/api/images", params={"from": "2024-05-10", "to": "2024-05-01"})
    assert wrong_order.status_code == 400


def test_search_can_count_guesses(web, day):
    from tests.web.conftest import person_vectors

    owner = web.user("anna")
    client = web.login("anna")
    vectors = person_vectors(1, 2)
    first, second = web.image(owner, taken_at=day), web.image(owner, taken_at=day - timedelta(days=1))
    named = web.face(first, vector=vectors[0])
    guessed = web.face(second, vector=vectors[1])
    anna = client.post(f"/api/faces/{named}/name", json={"name": "Anna"}).json()["face"]["name"]["id"]
    assert client.get(f"/api/faces/{guessed}").json()["state"] == FaceState.GUESSED.value
    plain = [i["id"] for i in client.get("/api/images", params={"name": anna}).json()["items"]]
    with_guesses = [i["id"] for i in client.get("/api/images", params={"name": anna, "guesses": "true"}).json()["items"]]
    assert plain == [first]
    assert with_guesses == [first, second]


def test_batch_gives_current_frames_in_the_order_asked(web):
    owner = web.user("anna")
    client = web.login("anna")
    a, b = web.image(owner), web.image(owner)
    face = web.face(b)
    batch = client.get("/api/images/batch", params={"ids": f"{b},{a}"}).json()["items"]
    assert [i["id"] for i in batch] == [b, a]
    assert [f["id"] for f in batch[0]["faces"]] == [face]
    assert client.get("/api/images/batch", params={"ids": "1,x"}).status_code == 400


@pytest.mark.one_backend
def test_the_openapi_document_describes_the_api(web):
    paths = web.client().get("/api/openapi.json").json()["paths"]
    for path in ("/api/images", "/api/faces/{face_id}/name", "/api/names", "/api/groups", "/api/uploads",
                 "/api/detection", "/api/login"):
        assert path in paths
    assert "/" not in paths  # pages are not part of the API


