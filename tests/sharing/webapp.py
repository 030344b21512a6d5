"""The real web app on the test store, with users that log in and rows put straight into libraries."""

from __future__ import annotations

import itertools
from pathlib import Path

from fastapi.testclient import TestClient
from starlette.routing import Mount

from faces.store.models import Face, FaceState, Image, ImageFinder, FinderStatus, Name, Visibility
from faces.web.app import create_app
from faces.web.auth import create_user

PASSWORD = "correct horse battery"
_n = itertools.count(1)


def app_routes(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every (method, path) the app answers, found by walking its routers (HEAD left out; /static skipped)."""
    found: set[tuple[str, str]] = set()

    def walk(routes, prefix: str) -> None:  # noqa: ANN001
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers as branches
                walk(route.original_router.routes, prefix + (route.include_context.prefix or ""))
            elif isinstance(route, Mount):
                continue
            else:
                for method in route.methods - {"HEAD"}:
                    found.add((method, prefix + route.path))

    walk(app.routes, "")
    return found


class WebLibrary:
    """Helpers over one app: users, logged-in clients, images and faces in a library."""

    def __init__(self, settings, store, photo: Path):  # noqa: ANN001
        self.settings, self.store, self.photo = settings, store, photo
        self.app = create_app(settings, store)
        self.clients: list[TestClient] = []

    def user(self, username: str, *, admin: bool = False, email: str = "", display_name: str = "") -> int:
        with self.store.session() as s:
            user = create_user(s, username, PASSWORD, is_admin=admin)
            user.email = email
            user.display_name = display_name or username
            return user.id

    def client(self) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)
        self.clients.append(client)
        client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf_token"]
        return client

    def login(self, username: str) -> TestClient:
        client = self.client()
        answer = client.post("/api/login", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        return client

    def image(self, owner_id: int, visibility: Visibility = Visibility.CONTACTS) -> int:
        with self.store.session() as s:
            image = Image(owner_id=owner_id, content_hash=f"{next(_n):064x}", path=str(self.photo), width=512,
                          height=512, format="PNG", visibility=visibility)
            s.add(image)
            s.flush()
            s.add(ImageFinder(image_id=image.id, finder="dlib", status=FinderStatus.DONE))
            return image.id

    def name(self, owner_id: int, text: str | None = None, contact_user_id: int | None = None) -> int:
        with self.store.session() as s:
            name = Name(owner_id=owner_id, name=text or f"Person {next(_n)}", contact_user_id=contact_user_id)
            s.add(name)
            s.flush()
            return name.id

    def face(self, owner_id: int, *, state: FaceState = FaceState.UNNAMED, name_id: int | None = None,
             guess_name_id: int | None = None, cluster_id: int | None = None, image_id: int | None = None,
             visibility: Visibility = Visibility.CONTACTS) -> int:
        image_id = image_id or self.image(owner_id, visibility)
        with self.store.session() as s:
            face = Face(image_id=image_id, owner_id=owner_id, x=180, y=90, w=130, h=160, score=0.99, state=state,
                        name_id=name_id, guess_name_id=guess_name_id, cluster_id=cluster_id)
            s.add(face)
            s.flush()
            return face.id
