"""A small synthetic library in the store: owners, images and faces with dlib-like embeddings."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from faces.store.models import Embedding, Face, FaceState, Image, Name, User
from tests.recognition.synthetic import people, photos_of

PEOPLE = people(10, seed=7)


def add_user(session, username: str) -> User:
    user = User(username=username, display_name=username.title())
    session.add(user)
    session.flush()
    return user


def add_image(session, owner: User, tag: str) -> Image:
    image = Image(owner_id=owner.id, content_hash=f"hash-{owner.id}-{tag}", path=f"/photos/{tag}.jpg",
                  width=640, height=480)
    session.add(image)
    session.flush()
    return image


def add_face(session, image: Image, vector: np.ndarray, finder: str = "dlib", x: int = 10) -> Face:
    face = Face(image_id=image.id, owner_id=image.owner_id, x=x, y=10, w=50, h=50, score=0.99)
    session.add(face)
    session.flush()
    session.add(Embedding(face_id=face.id, finder=finder, model_version=f"{finder}-test",
                          vector=np.asarray(vector, np.float32).tobytes()))
    session.flush()
    return face


def person_faces(session, owner: User, person: int, count: int, tag: str, spread: float = 0.3) -> list[Face]:
    """``count`` faces of synthetic person ``person``, each in its own new photo."""
    vectors = photos_of(PEOPLE[person], count, spread, seed=1000 * person + len(tag) + sum(map(ord, tag)))
    return [add_face(session, add_image(session, owner, f"{tag}{i}"), v) for i, v in enumerate(vectors)]


def snapshot(session, owner_id: int) -> dict[int, tuple]:
    """face id -> (state, confirmed name text, guessed name text, group) for an owner's faces."""
    names = dict(session.execute(select(Name.id, Name.name)).all())
    rows = session.execute(select(Face.id, Face.state, Face.name_id, Face.guess_name_id, Face.cluster_id)
                           .where(Face.owner_id == owner_id).order_by(Face.id)).all()
    return {fid: (FaceState(state), names.get(nid), names.get(gid), cid) for fid, state, nid, gid, cid in rows}
