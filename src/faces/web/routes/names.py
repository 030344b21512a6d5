"""People: the names of a library with counts and a face, suggestions while typing, rename, merge, undo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from faces.naming import actions
from faces.store.models import Face, FaceState, Name, UndoEntry, User
from faces.web.deps import DbSession, LoggedInUser, State, name_for, owner_library, settings_for
from faces.web.routes.faces import naming_error

router = APIRouter(tags=["people"])


class PersonOut(BaseModel):
    """One name of a library: ``confirmed`` faces, ``guessed`` faces, ``images`` with a confirmed face, and a
    face to show (``thumb_url``, null when no face is confirmed yet)."""

    id: int
    name: str
    confirmed: int
    guessed: int
    images: int
    face_id: int | None
    thumb_url: str | None
    contact_user_id: int | None = None


class Suggestion(BaseModel):
    """A name offered while typing: an existing name (``name_id``) or a contact not yet named (``contact_user_id``)."""

    label: str
    name_id: int | None = None
    contact_user_id: int | None = None
    detail: str = ""


class RenameIn(BaseModel):
    name: str = Field(max_length=200)


class MergeIn(BaseModel):
    """Merge name ``other`` into name ``keep``: every face of ``other`` gets ``keep``; ``other`` disappears."""

    keep: int
    other: int


class UndoIn(BaseModel):
    owner: int | None = None


class UndoOut(BaseModel):
    """The action that undo would revert (null: nothing), or the sentence saying what was undone."""

    available: bool
    action: str | None = None
    message: str | None = None


def people(db: Session, owner_id: int, name_ids: list[int] | None = None, q: str | None = None,
           limit: int | None = None) -> list[PersonOut]:
    """The names of ``owner_id`` with their counts, sorted by name (case-insensitive)."""
    confirmed = func.sum(case((Face.state == FaceState.CONFIRMED, 1), else_=0))
    counts_q = (select(Face.name_id, confirmed, func.count(func.distinct(Face.image_id)))
                .where(Face.owner_id == owner_id, Face.name_id.is_not(None), Face.state == FaceState.CONFIRMED)
                .group_by(Face.name_id))
    guessed_q = (select(Face.guess_name_id, func.count())
                 .where(Face.owner_id == owner_id, Face.state == FaceState.GUESSED, Face.guess_name_id.is_not(None))
                 .group_by(Face.guess_name_id))
    ranked = (select(Face.name_id.label("name_id"), Face.id.label("face_id"),
                     func.row_number().over(partition_by=Face.name_id,
                                            order_by=(Face.w.desc(), Face.id.desc())).label("rank"))
              .where(Face.owner_id == owner_id, Face.state == FaceState.CONFIRMED, Face.name_id.is_not(None))
              .subquery())
    names_q = select(Name).where(Name.owner_id == owner_id)
    if name_ids is not None:
        names_q = names_q.where(Name.id.in_(name_ids))
        counts_q = counts_q.where(Face.name_id.in_(name_ids))
    if q:
        like = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        names_q = names_q.where(func.lower(Name.name).like(like, escape="\\"))
    counts = {nid: (c, i) for nid, c, i in db.execute(counts_q)}
    guessed = dict(db.execute(guessed_q).all())
    faces = dict(db.execute(select(ranked.c.name_id, ranked.c.face_id).where(ranked.c.rank == 1)).all())
    result = []
    for name in db.scalars(names_q):
        c, i = counts.get(name.id, (0, 0))
        face_id = faces.get(name.id)
        result.append(PersonOut(id=name.id, name=name.name, confirmed=c or 0, guessed=guessed.get(name.id, 0),
                                images=i or 0, face_id=face_id,
                                thumb_url=f"/api/faces/{face_id}/thumb" if face_id else None,
                                contact_user_id=name.contact_user_id))
    result.sort(key=lambda p: (p.name.casefold(), p.id))
    return result[:limit] if limit else result


@router.get("/api/names", response_model=list[PersonOut])
def list_names(user: LoggedInUser, db: DbSession,
               owner: Annotated[int | None, Query(description="The library; default: your own.")] = None,
               q: Annotated[str | None, Query(max_length=200, description="Part of the name.")] = None
               ) -> list[PersonOut]:
    """Every name of a library (the people page), with counts and a face."""
    library = owner_library(db, user, owner if owner is not None else user.id)
    return people(db, library.id, q=q.strip() if q else None)


@router.get("/api/names/suggest", response_model=list[Suggestion])
def suggest(user: LoggedInUser, db: DbSession,
            q: Annotated[str, Query(max_length=200)] = "",
            owner: Annotated[int | None, Query()] = None,
            limit: Annotated[int, Query(ge=1, le=50)] = 8) -> list[Suggestion]:
    """Names offered while typing: the library's names that start with (then contain) ``q``, most used first,
    and the owner's contacts that have no name yet."""
    library = owner_library(db, user, owner if owner is not None else user.id)
    text = " ".join(q.split()).casefold()
    found = people(db, library.id, q=text or None)
    found.sort(key=lambda p: (not p.name.casefold().startswith(text), -(p.confirmed + p.guessed),
                              p.name.casefold()))
    out = [Suggestion(label=p.name, name_id=p.id,
                      detail=(f"{p.images} photo" if p.images == 1 else f"{p.images} photos") if p.images else "")
           for p in found[:limit]]
    try:
        from faces.sharing.contacts import contact_ids
    except ImportError:
        return out
    linked = set(db.scalars(select(Name.contact_user_id).where(Name.owner_id == library.id,
                                                               Name.contact_user_id.is_not(None))))
    ids = contact_ids(db, library.id) - linked
    if ids and len(out) < limit:
        users = db.scalars(select(User).where(User.id.in_(ids))).all()
        for contact in sorted(users, key=lambda u: (u.display_name or u.username).casefold()):
            label = contact.display_name or contact.username
            if text and text not in label.casefold() and text not in contact.username:
                continue
            out.append(Suggestion(label=label, contact_user_id=contact.id, detail=f"contact @{contact.username}"))
            if len(out) >= limit:
                break
    return out


@router.get("/api/names/{name_id}", response_model=PersonOut)
def get_name(name_id: int, user: LoggedInUser, db: DbSession) -> PersonOut:
    """One name with its counts."""
    name = name_for(db, user, name_id)
    return people(db, name.owner_id, name_ids=[name.id])[0]


@router.patch("/api/names/{name_id}", response_model=PersonOut)
def rename(name_id: int, body: RenameIn, user: LoggedInUser, db: DbSession, state: State) -> PersonOut:
    """Rename a name (to merge two names, use merge)."""
    name = name_for(db, user, name_id, write=True)
    try:
        actions.rename(db, settings_for(db, state), name.owner_id, user.id, name.id, body.name)
    except actions.NamingError as exc:
        raise naming_error(exc) from None
    db.flush()
    return people(db, name.owner_id, name_ids=[name.id])[0]


@router.post("/api/names/merge", response_model=PersonOut)
def merge(body: MergeIn, user: LoggedInUser, db: DbSession, state: State) -> PersonOut:
    """Merge name ``other`` into ``keep`` (undo reverts it)."""
    keep = name_for(db, user, body.keep, write=True)
    other = name_for(db, user, body.other, write=True)
    if keep.owner_id != other.owner_id:
        raise HTTPException(400, "Only two names of the same library can be merged.")
    try:
        actions.merge(db, settings_for(db, state), keep.owner_id, user.id, keep.id, other.id)
    except actions.NamingError as exc:
        raise naming_error(exc) from None
    db.flush()
    return people(db, keep.owner_id, name_ids=[keep.id])[0]


_UNDO_LABELS = {"merge": "the last merge of two names", "name_group": "the last naming of a group"}


@router.get("/api/undo", response_model=UndoOut)
def undo_available(user: LoggedInUser, db: DbSession, owner: int | None = None) -> UndoOut:
    """What undo would revert in a library (a merge or a group naming), if anything."""
    library = owner_library(db, user, owner if owner is not None else user.id, write=True)
    entry = db.scalar(select(UndoEntry).where(UndoEntry.owner_id == library.id)
                      .order_by(UndoEntry.id.desc()).limit(1))
    if entry is None:
        return UndoOut(available=False)
    return UndoOut(available=True, action=_UNDO_LABELS.get(entry.action, entry.action))


@router.post("/api/undo", response_model=UndoOut)
def undo(body: UndoIn, user: LoggedInUser, db: DbSession, state: State) -> UndoOut:
    """Undo the library's last merge or group naming."""
    library = owner_library(db, user, body.owner if body.owner is not None else user.id, write=True)
    try:
        message = actions.undo(db, settings_for(db, state), library.id, user.id)
    except actions.NothingToUndo:
        raise HTTPException(409, "There is nothing to undo.") from None
    except actions.NamingError as exc:
        raise naming_error(exc) from None
    return UndoOut(available=False, message=message[:1].upper() + message[1:] + ".")


