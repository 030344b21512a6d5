"""Groups of look-alike unnamed faces: list them, name a whole group in one action, take faces out of one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from faces.naming import actions
from faces.store.models import Face, FaceState
from faces.web.deps import DbSession, LoggedInUser, State, face_for, owner_library, settings_for
from faces.web.routes.faces import naming_error
from faces.web.routes.names import PersonOut, people

router = APIRouter(tags=["groups"])

GROUPED_STATES = (FaceState.UNNAMED, FaceState.GUESSED)


class GroupFace(BaseModel):
    id: int
    image_id: int
    thumb_url: str


class GroupOut(BaseModel):
    """A group of look-alike faces without a confirmed name: ``size`` faces, the first ``faces`` of them."""

    id: int
    size: int
    images: int
    faces: list[GroupFace]


class GroupPage(BaseModel):
    groups: list[GroupOut]
    total: int


class GroupNameIn(BaseModel):
    owner: int | None = None
    name: str | None = Field(default=None, max_length=200)
    name_id: int | None = None


class GroupRemoveIn(BaseModel):
    owner: int | None = None
    face_ids: list[int] = Field(min_length=1, max_length=500)


class GroupNamed(BaseModel):
    person: PersonOut
    faces: int


@router.get("/api/groups", response_model=GroupPage)
def list_groups(user: LoggedInUser, db: DbSession,
                owner: Annotated[int | None, Query()] = None,
                min_size: Annotated[int, Query(ge=1, le=1000)] = 2,
                offset: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=200)] = 50,
                per_group: Annotated[int, Query(ge=1, le=200)] = 24) -> GroupPage:
    """The groups of look-alike unnamed faces of a library, largest first."""
    library = owner_library(db, user, owner if owner is not None else user.id)
    where = (Face.owner_id == library.id, Face.cluster_id.is_not(None), Face.state.in_(GROUPED_STATES))
    sizes = (select(Face.cluster_id, func.count().label("size"), func.count(func.distinct(Face.image_id)))
             .where(*where).group_by(Face.cluster_id).having(func.count() >= min_size))
    rows = db.execute(sizes).all()
    rows.sort(key=lambda r: (-r[1], r[0]))
    page = rows[offset:offset + limit]
    members: dict[int, list[GroupFace]] = {r[0]: [] for r in page}
    if page:
        for face_id, image_id, cluster_id in db.execute(
                select(Face.id, Face.image_id, Face.cluster_id)
                .where(*where, Face.cluster_id.in_(list(members))).order_by(Face.cluster_id, Face.id)):
            if len(members[cluster_id]) < per_group:
                members[cluster_id].append(GroupFace(id=face_id, image_id=image_id,
                                                     thumb_url=f"/api/faces/{face_id}/thumb"))
    return GroupPage(total=len(rows), groups=[GroupOut(id=cid, size=size, images=images, faces=members[cid])
                                              for cid, size, images in page])


@router.post("/api/groups/{group_id}/name", response_model=GroupNamed)
def name_group(group_id: int, body: GroupNameIn, user: LoggedInUser, db: DbSession, state: State) -> GroupNamed:
    """Give every face of the group one confirmed name (undo reverts it)."""
    library = owner_library(db, user, body.owner if body.owner is not None else user.id, write=True)
    text = (body.name or "").strip() or None
    if text is None and body.name_id is None:
        raise HTTPException(400, "Type a name for this group.")
    try:
        outcome = actions.name_group(db, settings_for(db, state), library.id, user.id, group_id, text,
                                     name_id=body.name_id)
    except actions.NamingError as exc:
        raise naming_error(exc) from None
    db.flush()
    return GroupNamed(person=people(db, library.id, name_ids=[outcome.name_id])[0], faces=len(outcome.face_ids))


@router.post("/api/groups/{group_id}/remove", response_model=GroupOut)
def remove_from_group(group_id: int, body: GroupRemoveIn, user: LoggedInUser, db: DbSession,
                      state: State) -> GroupOut:
    """Take faces out of the group (they will not fall back into it); answers the group as it is now."""
    library = owner_library(db, user, body.owner if body.owner is not None else user.id, write=True)
    for face_id in body.face_ids:
        face = face_for(db, user, face_id, write=True)
        if face.owner_id != library.id or face.cluster_id != group_id:
            raise HTTPException(404, f"Face {face_id} is not in this group.")
    try:
        actions.split_group(db, settings_for(db, state), library.id, user.id, body.face_ids)
    except actions.NamingError as exc:
        raise naming_error(exc) from None
    db.flush()
    faces = db.execute(select(Face.id, Face.image_id).where(
        Face.owner_id == library.id, Face.cluster_id == group_id, Face.state.in_(GROUPED_STATES))
        .order_by(Face.id)).all()
    return GroupOut(id=group_id, size=len(faces), images=len({i for _, i in faces}),
                    faces=[GroupFace(id=f, image_id=i, thumb_url=f"/api/faces/{f}/thumb") for f, i in faces[:24]])
