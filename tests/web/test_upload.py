"""Uploading photos through the API, with the real pipeline: outcomes per file, detection by itself, busy runs."""

from __future__ import annotations

import time

import pytest

RD = "insightface_samples/inspireface_test_res/RD"


def _wait_for_detection(client, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/detection").json()
        if not status["running"] and status["pending"] == 0:
            return status
        time.sleep(0.5)
    pytest.fail(f"detection did not finish in {timeout} s: {status}")


def test_upload_adds_photos_and_detection_starts_by_itself(web, data_root):
    web.settings.workers = 1
    owner = web.user("anna")
    client = web.login("anna")
    d1 = (data_root / RD / "d1.jpeg").read_bytes()
    d2 = (data_root / RD / "d2.jpeg").read_bytes()
    files = [("files", ("d1.jpeg", d1, "image/jpeg")), ("files", ("../../etc/d2.jpeg", d2, "image/jpeg")),
             ("files", ("copy of d1.jpg", d1, "image/jpeg")),
             ("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")),
             ("files", ("notes.txt", b"hello", "text/plain")), ("files", ("empty.png", b"", "image/png"))]
    answer = client.post("/api/uploads", files=files)
    assert answer.status_code == 201, answer.text
    result = answer.json()
    outcomes = [(f["filename"], f["outcome"]) for f in result["files"]]
    assert outcomes == [("d1.jpeg", "added"), ("d2.jpeg", "added"), ("copy of d1.jpg", "duplicate"),
                        ("broken.jpg", "unreadable"), ("notes.txt", "rejected"), ("empty.png", "rejected")]
    assert result["files"][2]["image_id"] == result["files"][0]["image_id"]
    assert "truncated" in result["files"][3]["error"] or "not" in result["files"][3]["error"]
    assert result["detection_started"] is True
    kept = sorted(p.name for p in (web.settings.data_dir / "uploads" / str(owner)).iterdir())
    assert len(kept) == 3 and all(name.endswith(("_d1.jpeg", "_d2.jpeg", "_broken.jpg")) for name in kept)

    status = _wait_for_detection(client)
    assert status["images"] == 3 and status["unreadable"] == 1 and status["error"] is None
    items = {i["id"]: i for i in client.get("/api/images").json()["items"]}
    for f in result["files"][:2]:
        image = items[f["image_id"]]
        assert image["status"] == "done"
        assert len(image["faces"]) == 1  # one person per photo
        x, y, w, h = image["faces"][0]["box"]
        assert 0 <= x < x + w <= image["width"] and 0 <= y < y + h <= image["height"]
    broken = items[result["files"][3]["image_id"]]
    assert broken["status"] == "error" and broken["faces"] == [] and broken["error"]

    thumb = client.get(items[result["files"][0]["image_id"]]["thumb_url"], params={"size": 320})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    cached = client.get(items[result["files"][0]["image_id"]]["thumb_url"], params={"size": 320},
                        headers={"If-None-Match": thumb.headers["etag"]})
    assert cached.status_code == 304
    face = items[result["files"][1]["image_id"]]["faces"][0]
    face_thumb = client.get(face["thumb_url"])
    assert face_thumb.status_code == 200 and face_thumb.content[:2] == b"\xff\xd8"
    full = client.get(items[result["files"][1]["image_id"]]["full_url"])
    assert full.status_code == 200 and full.content == d2


def test_a_second_start_is_told_that_detection_is_busy(web):
    from faces.jobs import lock

    owner = web.user("anna")
    client = web.login("anna")
    held = lock.acquire(web.store, owner)  # a run of another process (faces scan) holds the library
    try:
        held.set_progress(total=10, done=3)
        held.beat()
        busy = client.post("/api/detection", json={})
        assert busy.status_code == 409
        assert busy.json()["detail"] == "Detection is still busy: 3 of 10 photos done."
        assert (busy.json()["done"], busy.json()["total"]) == (3, 10)
        opened = client.post("/api/detection", json={"auto": True})  # the page opening is not an error
        assert opened.status_code == 200 and opened.json()["running"] is True
        assert client.get("/api/detection").json()["message"] == "Detection is running: 3 of 10 photos done."
    finally:
        held.release()
    idle = client.get("/api/detection").json()
    assert idle["running"] is False and idle["message"] == "Every photo has been looked at."
