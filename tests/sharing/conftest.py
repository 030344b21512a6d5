"""Small libraries built row by row (no detection needed): users, images, faces, names, contacts."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from faces.sharing import contacts
from faces.store.models import Embedding, Face, FaceState, Image, ImageFinder, FinderStatus, Name, User, Visibility

_counter = itertools.count(1)


def make_user(session, username: str, *, admin: bool = False, email: str = "") -> User:
    user = User(username=username, display_name=username.capitalize(), is_admin=admin, email=email,
                password_hash=None)
    session.add(user)
    session.flush()
    return user


def make_image(session, owner: User, visibility: Visibility = Visibility.CONTACTS, group_id: int | None = None,
               finders: dict[str, tuple[FinderStatus, float]] | None = None) -> Image:
    n = next(_counter)
    image = Image(owner_id=owner.id, content_hash=hashlib.sha256(f"img{n}".encode()).hexdigest(),
                  path=f"/photos/{owner.username}/{n}.jpg", width=800, height=600, format="JPEG",
                  visibility=visibility, visibility_group_id=group_id)
    session.add(image)
    session.flush()
    if finders is None:
        finders = {"dlib": (FinderStatus.DONE, 0.5)}
    for finder, (status, seconds) in finders.items():
        session.add(ImageFinder(image_id=image.id, finder=finder, status=status, seconds=seconds))
    session.flush()
    return image


def make_face(session, image: Image, *, name: Name | None = None, state: FaceState | None = None,
              guess: Name | None = None, x: int = 10) -> Face:
    if state is None:
        state = FaceState.CONFIRMED if name else (FaceState.GUESSED if guess else FaceState.UNNAMED)
    face = Face(image_id=image.id, owner_id=image.owner_id, x=x, y=20, w=100, h=120, score=0.9, state=state,
                name_id=name.id if name else None, guess_name_id=guess.id if guess else None)
    session.add(face)
    session.flush()
    vector = np.random.default_rng(face.id).normal(size=128).astype(np.float32)
    session.add(Embedding(face_id=face.id, finder="dlib", model_version="dlib-hog", vector=vector.tobytes()))
    session.flush()
    return face


def make_name(session, owner: User, name: str, contact: User | None = None) -> Name:
    row = Name(owner_id=owner.id, name=name, contact_user_id=contact.id if contact else None)
    session.add(row)
    session.flush()
    return row


def connect(session, a: User, b: User) -> None:
    """Make ``a`` and ``b`` contacts (a asks, b accepts)."""
    request = contacts.request_contact(session, a.id, b.username)
    contacts.respond(session, b.id, request.id, accept=True)


@pytest.fixture
def db(store):
    """One session in one transaction for a test that only needs rows (committed at the end)."""
    with store.session() as session:
        yield session
