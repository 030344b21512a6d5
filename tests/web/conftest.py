"""Fixtures of the web tests: the real app on the real store (every backend), logged-in clients, and a way to
put photos and faces into a library without running detection (rows with synthetic embeddings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient

from faces.store.models import Embedding, Face, FaceState, FinderStatus, Image, ImageFinder
from faces.web.app import create_app
from faces.web.auth import create_user
from tests.conftest import BACKENDS

PASSWORD = "correct horse battery"


def pytest_configure(config):
    config.addinivalue_line("markers", "one_backend: the test does not depend on the database backend; "
                                       "it runs on the first backend of FACES_TEST_DATABASES only")


def pytest_collection_modifyitems(config, items):
    """Run ``one_backend`` tests once (sessions, headers, pages: no backend-specific SQL), to keep CI short."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        if item.get_closest_marker("one_backend") and backend is not None and backend != BACKENDS[0]:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@dataclass
class Web:
    """The app under test and helpers to make users, clients and library rows."""

    app: object
    store: object
    settings: object
    clients: list = field(default_factory=list)
    _hashes: int = 0

    def user(self, username: str, *, admin: bool = False, password: str = PASSWORD) -> int:
        with self.store.session() as s:
            return create_user(s, username, password, is_admin=admin).id

    def client(self, base_url: str = "http://testserver") -> TestClient:
        client = TestClient(self.app, base_url=base_url)
        self.clients.append(client)
        return client

    def login(self, username: str, password: str = PASSWORD) -> TestClient:
        """A client logged in as ``username``, sending its CSRF token with every request."""
        client = self.client()
        token = client.get("/api/session").json()["csrf_token"]
        answer = client.post("/api/login", json={"username": username, "password": password},
                             headers={"X-CSRF-Token": token})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        return client

    def image(self, owner_id: int, *, taken_at: datetime | None = None, added_at: datetime | None = None,
              error: str | None = None, size=(800, 600), path: str = "/nonexistent/photo.jpg") -> int:
        """An image row (no file needed unless a thumbnail is asked for)."""
        self._hashes += 1
        added = added_at or datetime.now(timezone.utc)
        with self.store.session() as s:
            image = Image(owner_id=owner_id, content_hash=f"{self._hashes:064x}", path=path, width=size[0],
                          height=size[1], format="JPEG", taken_at=taken_at, added_at=added,
                          sort_at=taken_at or added.replace(tzinfo=None),
                          error_code="truncated" if error else None, error=error)
            s.add(image)
            s.flush()
            if not error:
                s.add(ImageFinder(image_id=image.id, finder="dlib", status=FinderStatus.DONE))
            return image.id

    def face(self, image_id: int, *, vector: np.ndarray | None = None, box=(100, 100, 120, 120),
             state: FaceState = FaceState.UNNAMED) -> int:
        """A face row with a dlib embedding (``vector``, 128 floats) when given."""
        with self.store.session() as s:
            image = s.get(Image, image_id)
            face = Face(image_id=image_id, owner_id=image.owner_id, x=box[0], y=box[1], w=box[2], h=box[3],
                        score=0.99, state=state)
            s.add(face)
            s.flush()
            if vector is not None:
                s.add(Embedding(face_id=face.id, finder="dlib", model_version="dlib-hog",
                                vector=np.asarray(vector, np.float32).tobytes()))
            return face.id


def person_vectors(seed: int, count: int, spread: float = 0.02) -> list[np.ndarray]:
    """``count`` embeddings of one made-up person: a random unit vector plus small noise (dlib-like scale)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=128)
    base /= np.linalg.norm(base)
    return [(base + rng.normal(scale=spread, size=128)).astype(np.float32) for _ in range(count)]


@pytest.fixture
def web(settings, store):
    app = create_app(settings, store)
    helper = Web(app=app, store=store, settings=settings)
    with TestClient(app):  # runs the app's lifespan
        yield helper
    for client in helper.clients:
        client.close()
    app.state.faces.detection.shutdown()


@pytest.fixture
def day():
    """A fixed moment to build dates from."""
    return datetime(2024, 5, 17, 12, 0, 0)


__all__ = ["Web", "person_vectors", "PASSWORD", "timedelta"]
