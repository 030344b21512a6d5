"""The gallery's statements run on the DB-API cursor (faces.web.raw_rows) give exactly the JSON that SQLAlchemy's
execution of the same statements gives, for owners and for observers of a shared library, and pages that cross
photos of one moment (ties) show each photo once, newest first."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, Integer, bindparam, select

from faces.sharing.contacts import request_contact, respond
from faces.store.models import Face, FaceState, FinderStatus, Image, ImageFinder, Name, Visibility
from faces.web import raw_rows, views
from tests.web.conftest import PASSWORD


def _library(web, day):
    """Anna's library: every kind of frame and status, several photos of one moment; Ben is her contact."""
    anna, ben = web.user("anna"), web.user("ben")
    with web.store.session() as s:
        names = [Name(owner_id=anna, name=text) for text in ("Ada", 'Bo "the" <b>Best</b>', "Émile, Zoë", "Ünal\\")]
        s.add_all(names)
        s.flush()
        name_ids = [n.id for n in names]
    moment = day - timedelta(days=3)
    images = []
    for i in range(14):
        if i < 6:  # six photos of one moment (a folder uploaded at once): ties broken by id
            images.append(web.image(anna, added_at=moment.replace(tzinfo=timezone.utc)))
        elif i % 2:
            images.append(web.image(anna, taken_at=day - timedelta(days=i, microseconds=i * 1000)))
        else:
            images.append(web.image(anna, added_at=(day - timedelta(days=i)).replace(tzinfo=timezone.utc)))
    broken = web.image(anna, error="the file ends before its header is complete")
    states = [FaceState.UNNAMED, FaceState.CONFIRMED, FaceState.GUESSED, FaceState.UNKNOWN, FaceState.IGNORED,
              FaceState.REMOVED, FaceState.CONFIRMED, FaceState.GUESSED]
    with web.store.session() as s:
        for k, image in enumerate(images):
            for j in range(k % 4):
                state = states[(k + j) % len(states)]
                s.add(Face(image_id=image, owner_id=anna, x=10 + 100 * j if j != 2 else 10, y=20 + j, w=30, h=40,
                           score=0.9, state=state,
                           name_id=name_ids[(k + j) % 4] if state == FaceState.CONFIRMED else None,
                           guess_name_id=name_ids[(k + 2 * j) % 4] if state in (FaceState.GUESSED,
                                                                                  FaceState.UNKNOWN) else None))
        s.add(ImageFinder(image_id=images[7], finder="opencv", status=FinderStatus.PENDING))
        s.add(ImageFinder(image_id=images[8], finder="opencv", status=FinderStatus.ERROR, error="model missing"))
        s.add(ImageFinder(image_id=images[9], finder="opencv", status=FinderStatus.ERROR))
        s.get(Image, images[10]).visibility = Visibility.PRIVATE
        s.get(Image, images[11]).visibility = Visibility.PUBLIC
        s.execute(ImageFinder.__table__.delete().where(ImageFinder.image_id == images[12]))  # never looked at
    with web.store.session() as s:
        request = request_contact(s, anna, "ben")
        respond(s, ben, request.id, accept=True)
    return anna, ben, images + [broken], name_ids


def _pages(web, observer, owner, **filters):
    """Every page (3 photos each) as the JSON the route sends, and the photo ids in page order."""
    bodies, ids, cursor = [], [], None
    while True:
        with web.store.session() as db:
            page = views.gallery_page(db, observer, owner, limit=3, cursor=cursor, **filters)
        bodies.append(views.dumps(page))
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return bodies, ids


def test_pages_read_raw_are_the_pages_sqlalchemy_reads(web, day, monkeypatch):
    anna, ben, images, name_ids = _library(web, day)
    searches = [{}, {"name_ids": [name_ids[1]]}, {"name_ids": name_ids[:2], "match_all": False},
                {"name_ids": name_ids[:2], "match_all": False, "include_guesses": True},
                {"date_from": (day - timedelta(days=10)).date(), "date_to": (day - timedelta(days=3)).date()},
                {"status": "error"}]
    fast = {(who, i): _pages(web, who, anna, **search) for who in (anna, ben) for i, search in enumerate(searches)}
    monkeypatch.setattr(views, "FAST_ROWS", False)
    reference = {(who, i): _pages(web, who, anna, **search) for who in (anna, ben) for i, search in enumerate(searches)}
    assert fast == reference

    bodies, ids = fast[(anna, 0)]
    with web.store.session() as s:
        expected = [i for _, i in sorted(((s.get(Image, i).sort_at, i) for i in images), reverse=True)]
    assert ids == expected  # newest first, each photo once, ties (six photos of one moment) by id
    shown = b"".join(bodies)
    assert b'"state":"ignored"' not in shown and b'"state":"removed"' not in shown
    for text in (b'"state":"guessed"', b'"guess":{"id"', b'"state":"confirmed"', b'"name":{"id"', b'"status":"error"',
                 b'"status":"pending"', b'"finder_errors":["opencv: model missing"]', b'"opencv: failed"',
                 'Émile, Zoë'.encode(), b'Bo \\"the\\" <b>Best</b>', b'\\u00dcnal'.decode('unicode_escape').encode()):
        assert text in shown, text
    # the frames as the ORM objects say: hidden ones left out, left to right, the name of their state
    with web.store.session() as s:
        names = {n.id: n.name for n in s.scalars(select(Name))}
        for item in (item for body in bodies for item in json.loads(body)["items"]):
            faces = sorted((f for f in s.scalars(select(Face).where(Face.image_id == item["id"]))
                            if f.state not in (FaceState.IGNORED, FaceState.REMOVED)), key=lambda f: (f.x, f.id))
            assert item["faces"] == [{
                "id": f.id, "image_id": f.image_id, "box": [f.x, f.y, f.w, f.h], "state": f.state.value,
                "name": {"id": f.name_id, "name": names[f.name_id]} if f.state == FaceState.CONFIRMED else None,
                "guess": {"id": f.guess_name_id, "name": names[f.guess_name_id]}
                if f.state == FaceState.GUESSED else None,
                "thumb_url": f"/api/faces/{f.id}/thumb"} for f in faces]
    # Ben (a contact) sees the same frames and names on the photos he may see; never the private one
    assert images[10] not in fast[(ben, 0)][1] and images[11] in fast[(ben, 0)][1]
    assert set(fast[(ben, 0)][1]) == set(ids) - {images[10]}


def test_the_route_sends_the_page_gallery_page_makes(web, day):
    anna, ben, images, _ = _library(web, day)
    for username, observer in (("anna", anna), ("ben", ben)):
        client = web.login(username)
        cursor, pages = None, 0
        while True:
            params = {"limit": 3, "owner": anna} | ({"cursor": cursor} if cursor else {})
            answer = client.get("/api/images", params=params)
            with web.store.session() as db:
                expected = views.dumps(views.gallery_page(db, observer, anna, limit=3, cursor=cursor))
            assert answer.content == expected
            cursor, pages = answer.json()["next_cursor"], pages + 1
            if cursor is None:
                break
        assert pages == 5
    batch = web.login("anna").get("/api/images/batch", params={"ids": f"{images[3]},{images[0]}"}).json()["items"]
    with web.store.session() as db:
        assert batch == json.loads(views.dumps(views.image_dicts(db, [images[3], images[0]])))
    assert [i["id"] for i in batch] == [images[3], images[0]]


def test_raw_rows_are_the_rows_sqlalchemy_gives(web, day):
    anna = web.user("anna")
    taken = web.image(anna, taken_at=day)
    web.image(anna, added_at=datetime(2021, 3, 4, 5, 6, 7, 890, tzinfo=timezone.utc))
    statement = (select(Image.id, Image.taken_at, Image.added_at, Image.sort_at, Image.error)
                 .where(Image.owner_id == bindparam("owner", type_=Integer),
                        Image.sort_at < bindparam("before", type_=DateTime()))
                 .order_by(Image.id))
    params = {"owner": anna, "before": datetime(2030, 1, 1)}
    with web.store.session() as db:
        raw = raw_rows.rows(db, ("test", 1), lambda: statement, params)
        assert raw == [tuple(row) for row in db.connection().execute(statement, params).all()]
        assert raw[0][0] == taken and raw[0][1] == day and raw[1][1] is None
        in_list = select(Image.id).where(Image.id.in_([bindparam(f"id_{k}") for k in range(2)])).order_by(Image.id)
        assert raw_rows.rows(db, ("test", 2), lambda: in_list, raw_rows.id_params([taken, 10**6])) == [(taken,)]
    with pytest.raises(ValueError), web.store.session() as db:
        raw_rows.rows(db, ("test", 3), lambda: select(Image.id).where(Image.id.in_(bindparam("ids", expanding=True))),
                      {"ids": [1]})


def test_at_most_two_pages_are_built_at_once_and_every_page_is_answered(web, day, monkeypatch):
    """Twelve clients ask at once (the middleware's plain pages and the route's searches): pages are built two at
    a time, the others wait their turn, and every client gets its own page."""
    import asyncio
    import threading
    import time

    import httpx

    from faces.web.routes import images as image_routes

    anna = web.user("anna")
    for i in range(3):
        web.image(anna, taken_at=day - timedelta(days=i))
    building, most = 0, 0
    lock = threading.Lock()
    real_gallery_page = image_routes.gallery_page

    def slow_gallery_page(*args, **kwargs):
        nonlocal building, most
        with lock:
            building += 1
            most = max(most, building)
        time.sleep(0.05)  # long enough for every request to be waiting by now
        with lock:
            building -= 1
        return real_gallery_page(*args, **kwargs)

    monkeypatch.setattr(image_routes, "gallery_page", slow_gallery_page)

    async def twelve_clients() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=web.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            token = (await client.get("/api/session")).json()["csrf_token"]
            login = await client.post("/api/login", json={"username": "anna", "password": PASSWORD},
                                      headers={"X-CSRF-Token": token})
            assert login.status_code == 200
            queries = [{"limit": 1 + i} for i in range(6)] + [{"limit": 1 + i, "guesses": "true"} for i in range(6)]
            return await asyncio.gather(*(client.get("/api/images", params=q) for q in queries))

    answers = asyncio.run(twelve_clients())
    assert [a.status_code for a in answers] == [200] * 12
    assert [len(a.json()["items"]) for a in answers] == [1, 2, 3, 3, 3, 3] * 2
    assert most == image_routes.GALLERY_BUILDERS == 2
