"""The change log, written by itself: every committed change of a face (box, state, name, rejected names,
embeddings), a name, an image mark or a permission adds one entry, in the same transaction, without the
code that made the change having to know (SQLAlchemy session events, registered when this module is
imported; ``faces.store.db.Store`` imports it).

How: ``after_flush`` notes which rows changed (ORM objects), ``do_orm_execute`` notes the rows that bulk
``update()`` / ``delete()`` statements touch (selected with the same WHERE before they run), and
``before_commit`` writes one entry per touched row with the row's state at commit time (``upsert``) or a
tombstone (``delete``). Guess and group updates change no synced field and write nothing.
Code that writes rows with Core statements, which these events do not see (a detection run's new faces and
finder marks), adds their entries itself with :func:`log_upserts`, from the values in hand.
A bulk delete of an owner's change log (``faces.sharing.deletion.delete_library_faces``: "delete all my data")
becomes one ``library`` deletion entry instead of a tombstone per face and name, and its sequence number stays
above every number used before, so that a clone's cursor never skips it.

Entries applied from a peer (:mod:`faces.portability.apply`) get the peer's server id as ``origin`` when the
local row ends exactly as the peer sent it, so they are not sent back to it; local changes have origin ``""``
(the pull endpoint answers with this server's id in its place).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache

from sqlalchemy import Insert, event, func, insert, select
from sqlalchemy.orm import Session, attributes

from faces.portability import records
from faces.store.models import (
    ChangeLogEntry, Embedding, Face, FaceState, Image, ImageFinder, Name, Permission, RejectedName, utcnow,
)

log = logging.getLogger(__name__)
_KEY = "faces_change_capture"
APPLIED = "faces_sync_applied"  # session.info: {(entity, key): (origin, canonical record)}
LIBRARY_DATA = "faces_sync_library"  # session.info: the record of a library deletion applied from a peer
SUPPRESS = "faces_change_suppress"  # session.info: True while writing the log itself

_FACE_FIELDS = {"x", "y", "w", "h", "score", "landmarks", "source", "state", "name_id", "decided_at", "image_id"}
_GUESS_ONLY = {"state", "guess_name_id", "guess_distance", "guess_finders", "guess_anchor_face_id", "guessed_at",
               "cluster_id", "updated_at"}


class _Pending:
    def __init__(self) -> None:
        self.faces: set[int] = set()
        self.face_tombs: dict[str, int] = {}
        self.names: set[int] = set()
        self.name_tombs: dict[str, int] = {}
        self.marks: set[tuple[int, str]] = set()
        self.perms: set[int] = set()
        self.perm_tombs: dict[str, int] = {}
        self.libraries: set[int] = set()
        self.seq_floor = 0

    def __bool__(self) -> bool:
        return bool(self.faces or self.face_tombs or self.names or self.name_tombs or self.marks or self.perms
                    or self.perm_tombs or self.libraries)


def _pending(session: Session) -> _Pending:
    found = session.info.get(_KEY)
    if found is None:
        found = session.info[_KEY] = _Pending()
    return found


def log_upserts(session: Session, entries: Sequence[tuple[int, str, str, dict]]) -> None:
    """Add change-log upserts made from values in hand, in this order, as local changes.

    For rows written with Core statements (which the automatic capture does not see) by code that has every
    field of their records at hand, e.g. a detection run's new faces and marks: no row is read back.

    Args:
        session: the session whose transaction wrote the rows (not one that deletes a change log).
        entries: ``(owner_id, entity, key, record)``, e.g. ``(7, "face", face_uuid, records.face_record(...))``.
    """
    if not entries:
        return
    now = utcnow()
    session.connection().execute(_insert_entries(), [
        {"owner_id": owner_id, "entity": entity, "entity_uuid": key, "op": "upsert", "data": data, "changed_at": now,
         "origin": ""} for owner_id, entity, key, data in entries])


@cache
def _insert_entries() -> Insert:
    return insert(ChangeLogEntry.__table__)


def _state_value(value) -> str | None:  # noqa: ANN001
    return value.value if isinstance(value, FaceState) else value


def _face_changed(face: Face) -> bool:
    state = attributes.instance_state(face)
    for key in _FACE_FIELDS:
        hist = state.attrs[key].history
        if not hist.has_changes():
            continue
        if key == "state":
            before = {_state_value(v) for v in hist.deleted} | {_state_value(v) for v in hist.unchanged}
            after = {_state_value(v) for v in hist.added}
            if before | after <= {"guessed", "unnamed"}:
                continue
        return True
    return False


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:  # noqa: ANN001
    if session.info.get(SUPPRESS):
        return
    p = None
    new = session.new  # each call builds a new set: once per flush, not per object
    for obj in list(new) + list(session.dirty):
        if isinstance(obj, Face):
            if obj in new or _face_changed(obj):
                p = p or _pending(session)
                p.faces.add(obj.id)
        elif isinstance(obj, (Embedding, RejectedName)):
            if obj.face_id is not None:
                p = p or _pending(session)
                p.faces.add(obj.face_id)
        elif isinstance(obj, Name):
            if obj in new or session.is_modified(obj, include_collections=False):
                p = p or _pending(session)
                p.names.add(obj.id)
        elif isinstance(obj, ImageFinder):
            if obj in new or session.is_modified(obj, include_collections=False):
                p = p or _pending(session)
                p.marks.add((obj.image_id, obj.finder))
        elif isinstance(obj, Permission):
            if obj in new or session.is_modified(obj, include_collections=False):
                p = p or _pending(session)
                p.perms.add(obj.id)
    for obj in session.deleted:
        if isinstance(obj, Face):
            p = p or _pending(session)
            p.face_tombs[obj.uuid] = obj.owner_id
        elif isinstance(obj, (Embedding, RejectedName)):
            p = p or _pending(session)
            p.faces.add(obj.face_id)
        elif isinstance(obj, Name):
            p = p or _pending(session)
            p.name_tombs[obj.uuid] = obj.owner_id
        elif isinstance(obj, Permission):
            p = p or _pending(session)
            p.perm_tombs[obj.uuid] = obj.owner_id


def _update_columns(statement) -> set[str] | None:  # noqa: ANN001
    values = getattr(statement, "_values", None)
    if not values:
        return None
    names = set()
    for column in values:
        names.add(getattr(column, "key", None) or getattr(column, "name", None) or str(column))
    return names


def _update_state_value(statement):  # noqa: ANN001
    for column, value in (getattr(statement, "_values", None) or {}).items():
        if getattr(column, "key", None) == "state":
            return _state_value(getattr(value, "value", value))
    return None


@event.listens_for(Session, "do_orm_execute")
def _bulk(orm_state) -> None:  # noqa: ANN001
    if not (orm_state.is_update or orm_state.is_delete) or orm_state.session.info.get(SUPPRESS):
        return
    mapper = orm_state.bind_mapper
    cls = mapper.class_ if mapper is not None else None
    if cls not in (Face, Name, ImageFinder, Permission, Embedding, RejectedName, ChangeLogEntry):
        return
    session = orm_state.session
    statement = orm_state.statement
    where = statement.whereclause

    def rows(*columns):  # noqa: ANN202
        query = select(*columns)
        if where is not None:
            query = query.where(where)
        session.info[SUPPRESS] = True
        try:
            return session.execute(query, execution_options={"synchronize_session": False}).all()
        finally:
            session.info.pop(SUPPRESS, None)

    p = _pending(session)
    if cls is Face:
        if orm_state.is_delete:
            for uuid, owner_id in rows(Face.uuid, Face.owner_id):
                p.face_tombs[uuid] = owner_id
        else:
            columns = _update_columns(statement)
            if columns is not None and columns <= _GUESS_ONLY:
                if "state" not in columns:
                    return  # guess or group fields only
                if _update_state_value(statement) in ("guessed", "unnamed"):
                    # a guess set or withdrawn; a decision only for rows that held one
                    for face_id, state in rows(Face.id, Face.state):
                        if _state_value(state) not in ("guessed", "unnamed"):
                            p.faces.add(face_id)
                    return
            p.faces.update(face_id for (face_id,) in rows(Face.id))
    elif cls in (Embedding, RejectedName):
        p.faces.update(face_id for (face_id,) in rows(cls.face_id))
    elif cls is Name:
        if orm_state.is_delete:
            for uuid, owner_id in rows(Name.uuid, Name.owner_id):
                p.name_tombs[uuid] = owner_id
        else:
            p.names.update(name_id for (name_id,) in rows(Name.id))
    elif cls is ImageFinder:
        if orm_state.is_update:
            p.marks.update((image_id, finder) for image_id, finder in rows(ImageFinder.image_id, ImageFinder.finder))
        # deleted marks do not travel: the image's faces do (an image deleted here stays processed on a clone)
    elif cls is Permission:
        if orm_state.is_delete:
            for uuid, owner_id in rows(Permission.uuid, Permission.owner_id):
                p.perm_tombs[uuid] = owner_id
        else:
            p.perms.update(perm_id for (perm_id,) in rows(Permission.id))
    elif cls is ChangeLogEntry and orm_state.is_delete:
        owners = {owner_id for (owner_id,) in rows(ChangeLogEntry.owner_id)}
        session.info[SUPPRESS] = True
        try:
            top = session.scalar(select(func.max(ChangeLogEntry.seq))) or 0
        finally:
            session.info.pop(SUPPRESS, None)
        p.seq_floor = max(p.seq_floor, top)
        # a deletion of the log of an owner without entries is still a library deletion when its faces go too
        p.libraries.update(owners or _owners_of(where))


def _owners_of(where) -> set[int]:  # noqa: ANN001
    """The owner ids an ``owner_id == N`` clause names (for a log deletion that found no rows)."""
    found: set[int] = set()
    right = getattr(where, "right", None)
    left = getattr(where, "left", None)
    if getattr(left, "key", None) == "owner_id" and getattr(right, "value", None) is not None:
        try:
            found.add(int(right.value))
        except (TypeError, ValueError):
            pass
    return found


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)
    session.info.pop(APPLIED, None)
    session.info.pop(LIBRARY_DATA, None)


@event.listens_for(Session, "before_commit")
def _write_log(session: Session) -> None:
    if _KEY not in session.info:
        return
    session.flush()
    p: _Pending = session.info.pop(_KEY)
    applied: dict = session.info.pop(APPLIED, {})
    if not p:
        return
    session.info[SUPPRESS] = True
    try:
        _write_entries(session, p, applied)
        session.flush()
    finally:
        session.info.pop(SUPPRESS, None)


def _write_entries(session: Session, p: _Pending, applied: dict) -> None:
    now = utcnow()
    entries: list[ChangeLogEntry] = []

    def add(owner_id: int, entity: str, key: str, op: str, data: dict | None) -> None:
        origin = ""
        got = applied.get((entity, key))
        if got is not None and got[1] == records.canonical(data):
            origin = got[0]
        entries.append(ChangeLogEntry(owner_id=owner_id, entity=entity, entity_uuid=key, op=op, data=data,
                                      changed_at=now, origin=origin))

    library = session.info.pop(LIBRARY_DATA, None) or {"deleted_at": records.iso(now)}
    for owner_id in sorted(p.libraries):
        add(owner_id, "library", "library", "delete", library)
    gone = p.libraries

    names = session.scalars(select(Name).where(Name.id.in_(sorted(p.names)))).all() if p.names else []
    live_names = set()
    for name in names:
        live_names.add(name.uuid)
        add(name.owner_id, "name", name.uuid, "upsert", records.name_record(session, name))
    for uuid, owner_id in sorted(p.name_tombs.items()):
        if owner_id in gone or uuid in live_names:
            continue
        if session.scalar(select(Name.id).where(Name.uuid == uuid)) is None:
            add(owner_id, "name", uuid, "delete", None)

    live_faces = records.load_faces(session, sorted(p.faces))
    rejected = records.rejected_names(session, [face.id for face, _ in live_faces])
    live_uuids = set()
    for face, content_hash in live_faces:
        live_uuids.add(face.uuid)
        add(face.owner_id, "face", face.uuid, "upsert",
            records.face_record(session, face, content_hash, rejected.get(face.id, [])))
    for uuid, owner_id in sorted(p.face_tombs.items()):
        if owner_id in gone or uuid in live_uuids:
            continue
        if session.scalar(select(Face.id).where(Face.uuid == uuid)) is None:
            add(owner_id, "face", uuid, "delete", None)

    for image_id, finder in sorted(p.marks):
        row = session.execute(select(ImageFinder, Image.content_hash, Image.owner_id)
                              .join(Image, Image.id == ImageFinder.image_id)
                              .where(ImageFinder.image_id == image_id, ImageFinder.finder == finder)).first()
        if row is None:
            continue
        mark, content_hash, owner_id = row
        data = records.mark_record(mark, content_hash)
        if data is not None:
            add(owner_id, "image_mark", records.mark_key(content_hash, finder), "upsert", data)

    perms = session.scalars(select(Permission).where(Permission.id.in_(sorted(p.perms)))).all() if p.perms else []
    live_perms = set()
    for perm in perms:
        data = records.permission_record(session, perm)
        live_perms.add(perm.uuid)
        if data is not None:
            add(perm.owner_id, "permission", perm.uuid, "upsert", data)
    for uuid, owner_id in sorted(p.perm_tombs.items()):
        if owner_id in gone or uuid in live_perms:
            continue
        if session.scalar(select(Permission.id).where(Permission.uuid == uuid)) is None:
            add(owner_id, "permission", uuid, "delete", None)

    if not entries:
        return
    if p.seq_floor and session.get_bind().dialect.name != "postgresql":
        # SQLite reuses the numbers of deleted rows: keep the sequence above every number a clone may have seen
        top = session.scalar(select(func.max(ChangeLogEntry.seq))) or 0
        if top <= p.seq_floor:
            entries[0].seq = p.seq_floor + 1
            session.add(entries[0])
            session.flush()
            entries = entries[1:]
    session.add_all(entries)

