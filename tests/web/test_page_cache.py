"""Kept gallery pages: never stale after a write by anyone (the data version), per user, with ETag and 304; and
the plain-page fast path answers exactly as the FastAPI route does."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, text, update

from faces.store.data_version import read_version, writes_gallery
from faces.store.db import Store
from faces.store.models import Face, Image, Name
from faces.web.auth import create_user
from faces.web.page_cache import PageCache, page_of
from faces.web.routes.images import plain_page_params


def _version(store) -> int:
    with store.engine.connect() as connection:
        return read_version(connection)


def _page(client, **params) -> tuple[dict, str]:
    answer = client.get("/api/images", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json(), answer.headers["etag"]


def _frames(page: dict) -> dict[int, dict]:
    return {face["id"]: face for item in page["items"] for face in item["faces"]}


def test_every_kind_of_write_changes_the_version_and_a_rollback_does_not(store):
    with store.session() as s:
        owner = create_user(s, "anna", "long enough password").id
    steps = [
        lambda s: s.add(Name(owner_id=owner, name="Ben")),  # ORM flush
        lambda s: s.execute(update(Name).values(name="Bea")),  # bulk ORM statement
        lambda s: s.connection().execute(update(Name.__table__).values(name="Cai")),  # Core on the connection
        lambda s: s.execute(text("DELETE FROM names WHERE name = 'Cai'")),  # text SQL
        lambda s: s.execute(insert(Name), [{"owner_id": owner, "name": f"N{i}", "uuid": f"{i:032x}"}
                                           for i in range(3)]),  # bulk insert of many rows
        lambda s: s.connection().exec_driver_sql("DELETE FROM names"),  # plain DBAPI string, no parameters
    ]
    for step in steps:
        before = _version(store)
        with store.session() as s:
            step(s)
        assert _version(store) == before + 1
    before = _version(store)
    with pytest.raises(RuntimeError), store.session() as s:
        s.execute(update(Name).values(name="never"))
        raise RuntimeError("rolled back")
    with store.session() as s:  # a savepoint that commits: counted once, when the transaction commits
        with s.begin_nested():
            s.add(Name(owner_id=owner, name="Dee"))
        assert _version(store) == before
    assert _version(store) == before + 1
    before = _version(store)
    with store.session() as s:  # reads, and writes to other tables, leave it alone
        s.execute(text("SELECT count(*) FROM faces")).scalar()
        s.execute(text("UPDATE users SET display_name = 'x'"))
    assert _version(store) == before


@pytest.mark.one_backend
def test_which_statements_count_as_gallery_writes():
    assert writes_gallery("INSERT INTO faces (id) VALUES (?)")
    assert writes_gallery("UPDATE image_finders SET status=%(status)s")
    assert writes_gallery("DELETE FROM images WHERE images.id = ?")
    assert writes_gallery("  update `names` set name = 1")
    assert writes_gallery("WITH x AS (SELECT 1) UPDATE faces SET x = 1")
    assert not writes_gallery("SELECT * FROM faces")
    assert not writes_gallery("UPDATE users SET display_name = ?")
    assert not writes_gallery("INSERT INTO rejected_names (face_id) VALUES (?)")
    assert not writes_gallery("INSERT INTO change_log (entity) VALUES (?)")


def test_a_kept_page_is_never_stale_whoever_writes(web, settings):
    owner = web.user("anna")
    client = web.login("anna")
    image = web.image(owner)
    face = web.face(image)
    first, etag = _page(client)
    again, same = _page(client)
    assert again == first and same == etag
    assert client.get("/api/images", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/api/images", headers={"If-None-Match": '"other"'}).status_code == 200

    client.post(f"/api/faces/{face}/name", json={"name": "Ben"}).raise_for_status()  # a naming action
    named, etag_named = _page(client)
    assert _frames(named)[face]["name"]["name"] == "Ben" and etag_named != etag
    assert client.get("/api/images", headers={"If-None-Match": etag}).status_code == 200

    # writers that are not this web app: another process's store (another --workers process, a scan, clone sync)
    other = Store(settings.resolved_database_url, run_migrations=False)
    try:
        with other.session() as s:
            s.execute(update(Name).where(Name.owner_id == owner).values(name="Benedict"))
        assert _frames(_page(client)[0])[face]["name"]["name"] == "Benedict"
        with other.session() as s:  # plain Core on the session's connection, as the guess refresh writes
            s.connection().execute(update(Face.__table__).where(Face.__table__.c.id == face).values(x=7))
        assert _frames(_page(client)[0])[face]["box"][0] == 7
        newer = web.image(owner)
        assert [item["id"] for item in _page(client)[0]["items"]] == [newer, image]
        with other.session() as s:
            s.execute(delete(Image).where(Image.id == newer))
        assert [item["id"] for item in _page(client)[0]["items"]] == [image]
    finally:
        other.dispose()


def test_kept_pages_belong_to_their_user_and_the_session_is_checked_every_time(web):
    anna, ben = web.user("anna"), web.user("ben")
    annas = web.login("anna")
    bens = web.login("ben")
    web.face(web.image(anna))
    web.image(ben)
    anna_page, _ = _page(annas)
    ben_page, _ = _page(bens)
    assert anna_page != ben_page
    assert {item["owner_id"] for item in ben_page["items"]} == {ben}
    assert bens.get("/api/images", params={"owner": anna}).status_code == 404  # not a contact: another's library
    assert web.client().get("/api/images").status_code == 401  # nobody logged in
    annas.post("/api/logout").raise_for_status()
    assert annas.get("/api/images").status_code == 401  # the kept page needs a live session


def test_plain_pages_answer_as_the_route_does(web):
    owner = web.user("anna")
    client = web.login("anna")
    for _ in range(5):
        web.face(web.image(owner))
    plain = client.get("/api/images", params={"limit": 2})
    routed = client.get("/api/images", params={"limit": 2, "match": "all"})  # a filter: FastAPI's route answers
    assert plain.content == routed.content
    assert plain.headers["etag"] == routed.headers["etag"]
    assert plain.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert plain.headers["content-security-policy"] == routed.headers["content-security-policy"]
    cursor = plain.json()["next_cursor"]
    assert (client.get("/api/images", params={"limit": 2, "cursor": cursor}).content
            == client.get("/api/images", params={"limit": 2, "cursor": cursor, "guesses": "false"}).content)
    assert client.get("/api/images", params={"limit": 0}).status_code == 422
    assert client.get("/api/images", params={"limit": "x"}).status_code == 422
    assert client.get("/api/images", params={"cursor": "bad"}).status_code == 400
    assert client.get("/api/images", params={"owner": owner, "limit": 1}).json()["items"] == plain.json()["items"][:1]


@pytest.mark.one_backend
def test_which_query_strings_are_plain():
    assert plain_page_params(b"") == {"owner": None, "cursor": None, "limit": 60}
    assert plain_page_params(b"limit=20&cursor=abc%3D&owner=3") == {"owner": 3, "cursor": "abc=", "limit": 20}
    for query in (b"limit=0", b"limit=201", b"limit=-1", b"limit=%D9%A3", b"limit=1&limit=2", b"cursor=",
                  b"owner=x", b"name=1", b"from=2024-01-01", b"limit=99999999999"):
        assert plain_page_params(query) is None, query


@pytest.mark.one_backend
def test_the_cache_keeps_pages_per_version_and_drops_the_oldest():
    entry = len(repr("a")) + PageCache.ENTRY_BYTES
    cache = PageCache(max_bytes=4 * (90 + entry))
    cache.put("a", page_of(b"a" * 90, 1))
    assert cache.get("a", 1).body == b"a" * 90
    assert cache.get("a", 2) is None and cache.get("a", None) is None
    cache.put("b", page_of(b"b" * 90, None))  # no version: not kept
    assert cache.get("b", None) is None and len(cache) == 1
    for key in "cdef":
        cache.put(key, page_of(key.encode() * 90, 1))
    assert cache.get("a", 1) is None and cache.get("f", 1) is not None and len(cache) == 4  # four fit
    short, long = PageCache(max_bytes=4000), PageCache(max_bytes=4000)
    for i in range(20):  # a long key (a query with many name ids) takes room too
        short.put(i, page_of(b"x", 1))
        long.put((i, "n" * 500), page_of(b"x", 1))
    assert 0 < len(long) < len(short) / 2
    assert page_of(b"x", 1).etag == page_of(b"x", 2).etag != page_of(b"y", 1).etag
