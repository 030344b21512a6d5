"""Applying portable records (from a clone's change log or an export file) to a library, so that both sides
end equal whatever the order in which they see each other's changes.

Rules:
- names: matched by uuid, else by text (two servers that created the same name independently end with one
  name: the smaller uuid); a rename wins when its ``updated_at`` is later (ties: the greater text).
- faces: matched by uuid, else by image content hash and box overlap (two servers that detected the same
  image independently end with one face: the smaller uuid, with that face's box). Embeddings are merged per
  finder (embeddings of a finder or model this server does not have are kept). The decision (state, name,
  rejected names) follows the latest ``decided_at``; ties go to the greater decision text, so both sides pick
  the same. A face removed by its tagged person stays removed. Guesses are recomputed here, never copied.
- marks: a finder's result per content hash; done > no face > error > pending, later ``processed_at`` on ties.
- faces and marks of an image this library does not have yet wait in ``pending_imports`` and are attached by
  :func:`attach_pending` when the image arrives (``images_added`` event).
- deletions: tombstones delete by uuid; a library deletion deletes all the owner's faces and names, and later
  records older than it are ignored.
Applying the same record twice changes nothing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from faces import events
from faces.jobs.matching import iou, same_face
from faces.portability import changes, records
from faces.store.models import (
    ChangeLogEntry, ContactGroup, Embedding, Face, FaceState, FinderStatus, Image, ImageFinder, Name, PendingImport,
    Permission, RejectedName, User, utcnow,
)

_RANK = {"pending": 0, "error": 1, "no_face": 2, "done": 3}


@dataclass
class ApplyResult:
    """What applying changed: counts per kind, and records parked for images not here yet."""

    faces: int = 0
    names: int = 0
    marks: int = 0
    permissions: int = 0
    deleted: int = 0
    pending: int = 0
    skipped: int = 0
    touched_faces: set[int] = field(default_factory=set)
    named_images: set[int] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {"faces": self.faces, "names": self.names, "marks": self.marks, "permissions": self.permissions,
                "deleted": self.deleted, "pending": self.pending, "skipped": self.skipped}


class Applier:
    """Applies records to ``owner_id``'s library inside ``session`` (the caller's transaction).

    ``origin`` is the server id the records come from ("" for an import): a row that ends exactly as the
    record says is logged with that origin, so it is not sent back there. ``ties_keep_local`` (imports): a
    decision made at the same time as the local one does not replace it (clones need the symmetric tie-break).
    """

    def __init__(self, session: Session, owner_id: int, origin: str = "", *, ties_keep_local: bool = False):
        self.session = session
        self.ties_keep_local = ties_keep_local  # imports: a decision of the same time (MariaDB: second) stays
        self.owner_id = owner_id
        self.origin = origin
        self.result = ApplyResult()
        self._deleted_at = self._library_deleted_at()
        self._maybe_unused: set[int] = set()  # names that may have lost their last face
        self._image_ids: dict[str, int] | None = None  # content hash -> image id, loaded on first use
        self._with_faces: set[int] | None = None  # images that have faces
        self._faces: dict[str, Face] = {}  # prefetched faces by uuid
        self._absent: set[str] = set()  # prefetched uuids that have no face here
        self._touched: list[Face] = []  # changed faces (ids known after the next flush)
        self._new_marks: dict[tuple[int, str], ImageFinder] = {}

    # --- helpers --------------------------------------------------------------------------------------------

    def _library_deleted_at(self) -> str | None:
        row = self.session.execute(select(ChangeLogEntry.data, ChangeLogEntry.changed_at).where(
            ChangeLogEntry.owner_id == self.owner_id, ChangeLogEntry.entity == "library")
            .order_by(ChangeLogEntry.seq.desc()).limit(1)).first()
        if row is None:
            return None
        return (row.data or {}).get("deleted_at") or records.iso(row.changed_at)

    def _note(self, entity: str, key: str, data: dict | None) -> None:
        if self.origin:
            self.session.info.setdefault(changes.APPLIED, {})[(entity, key)] = (self.origin, records.canonical(data))

    def too_old(self, changed_at: str | None) -> bool:
        """Was a record changed before this library was deleted (so it must not bring rows back)?"""
        return bool(self._deleted_at and changed_at and changed_at < self._deleted_at)

    def _image_id(self, content_hash: str) -> int | None:
        if self._image_ids is None:
            self._image_ids = dict(self.session.execute(select(Image.content_hash, Image.id).where(
                Image.owner_id == self.owner_id)).all())
            self._with_faces = set(self.session.scalars(select(Face.image_id).where(
                Face.owner_id == self.owner_id).distinct()))
        return self._image_ids.get(content_hash)

    def prefetch_faces(self, uuids: list[str]) -> None:
        """Load the faces of many uuids at once (an import), so that :meth:`face` asks the database less."""
        for start in range(0, len(uuids), 500):
            chunk = uuids[start:start + 500]
            found = self.session.scalars(select(Face).where(Face.uuid.in_(chunk))
                                         .options(selectinload(Face.embeddings))).all()
            self._faces.update((f.uuid, f) for f in found)
            self._absent.update(set(chunk) - {f.uuid for f in found})

    def _park(self, content_hash: str, kind: str, key: str, data: dict | None) -> None:
        row = self.session.scalar(select(PendingImport).where(PendingImport.owner_id == self.owner_id,
                                                              PendingImport.content_hash == content_hash))
        if row is None:
            row = PendingImport(owner_id=self.owner_id, content_hash=content_hash, payload={"faces": {}, "marks": {}})
            self.session.add(row)
        payload = {"faces": dict((row.payload or {}).get("faces", {})),
                   "marks": dict((row.payload or {}).get("marks", {}))}
        before = records.canonical(payload)
        if data is None:
            payload[kind].pop(key, None)
        else:
            payload[kind][key] = data
        if records.canonical(payload) != before or row.id is None:
            row.payload = payload
            self.result.pending += 1

    # --- names ----------------------------------------------------------------------------------------------

    def name(self, uuid: str, data: dict) -> Name | None:
        """Apply a name record; returns the local name it is now."""
        self._note("name", uuid, data)
        s = self.session
        found = s.scalar(select(Name).where(Name.uuid == uuid))
        if found is not None and found.owner_id != self.owner_id:
            self.result.skipped += 1
            return None
        text = data["name"]
        if found is None:
            same = s.scalar(select(Name).where(Name.owner_id == self.owner_id, Name.name == text))
            if same is not None:
                if uuid < same.uuid:
                    same.uuid = uuid  # both servers keep the smaller uuid
                    self.result.names += 1
                if data.get("updated_at") and data["updated_at"] < (records.iso(same.updated_at) or ""):
                    same.updated_at = records.parse_time(data["updated_at"])
                self._contact(same, data)
                return same
            created = Name(uuid=uuid, owner_id=self.owner_id, name=text,
                           updated_at=records.parse_time(data.get("updated_at")) or utcnow())
            self._contact(created, data)
            s.add(created)
            s.flush()
            self.result.names += 1
            return created
        if (data.get("updated_at") or "", text) > (records.iso(found.updated_at) or "", found.name) \
                and text != found.name:
            taken = s.scalar(select(Name.id).where(Name.owner_id == self.owner_id, Name.name == text,
                                                   Name.id != found.id))
            if taken is None:
                found.name = text
                found.updated_at = records.parse_time(data.get("updated_at")) or utcnow()
                self.result.names += 1
        elif text == found.name and data.get("updated_at") and data["updated_at"] < (records.iso(found.updated_at) or ""):
            found.updated_at = records.parse_time(data["updated_at"])  # the same name on both sides: the older date
        self._contact(found, data)
        return found

    def _contact(self, name: Name, data: dict) -> None:
        username = data.get("contact")
        if username and name.contact_user_id is None:
            user_id = self.session.scalar(select(User.id).where(User.username == username))
            if user_id is not None:
                name.contact_user_id = user_id

    def _name_for(self, uuid: str | None, text: str | None, when: str | None = None) -> Name | None:
        if not uuid and not text:
            return None
        found = self.session.scalar(select(Name).where(Name.uuid == uuid)) if uuid else None
        if found is not None and found.owner_id == self.owner_id:
            return found
        if text:
            same = self.session.scalar(select(Name).where(Name.owner_id == self.owner_id, Name.name == text))
            if same is not None:
                return same
            return self.name(uuid or records.new_uuid_hex(), {"name": text, "contact": None, "updated_at": when})
        return None

    def delete_name(self, uuid: str, again: bool = True) -> None:
        """Delete a name unless a face here still has it (then it is looked at again in :meth:`finish`)."""
        found = self.session.scalar(select(Name).where(Name.uuid == uuid, Name.owner_id == self.owner_id))
        if found is None:
            return
        used = self.session.scalar(select(Face.id).where(Face.name_id == found.id).limit(1))
        if used is not None:
            if again:
                self._maybe_unused.add(found.id)  # its faces' records (later in the batch) move them; look again then
            return
        self.session.execute(update(Face).where(Face.guess_name_id == found.id, Face.state == FaceState.GUESSED)
                             .values(state=FaceState.UNNAMED, guess_name_id=None, guess_distance=None,
                                     guess_finders=None, guess_anchor_face_id=None, guessed_at=None))
        self.session.execute(update(Face).where(Face.guess_name_id == found.id).values(guess_name_id=None))
        self.session.delete(found)
        self.session.flush()
        self.result.deleted += 1

    # --- faces ----------------------------------------------------------------------------------------------

    def face(self, uuid: str, data: dict) -> Face | None:
        """Apply a face record; returns the local face (None when parked or skipped)."""
        self._note("face", uuid, data)
        s = self.session
        if uuid in self._absent:
            face = None
        else:
            face = self._faces.get(uuid) or s.scalar(select(Face).where(Face.uuid == uuid)
                                                    .options(selectinload(Face.embeddings)))
        if face is not None and face.owner_id != self.owner_id:
            self.result.skipped += 1
            return None
        take_geometry = False
        created = False
        if face is None:
            image_id = self._image_id(data["image"])
            if image_id is None:
                self._park(data["image"], "faces", uuid, data)
                return None
            face = self._match(image_id, data["box"]) if image_id in self._with_faces else None
            if face is None:
                face = Face(uuid=uuid, owner_id=self.owner_id, image_id=image_id, x=0, y=0, w=0, h=0,
                            source=data.get("source") or "import", state=FaceState.UNNAMED)
                s.add(face)
                self._with_faces.add(image_id)
                take_geometry = created = True
            elif uuid < face.uuid:
                changes._pending(s).face_tombs[face.uuid] = self.owner_id
                self._faces.pop(face.uuid, None)
                face.uuid = uuid
                take_geometry = True
        else:
            mine = records.canonical([face.box, round(float(face.score or 0), 4), face.landmarks])
            theirs = records.canonical([data["box"], data.get("score", 0.0), data.get("landmarks")])
            take_geometry = theirs > mine
        changed = False
        if take_geometry:
            face.x, face.y, face.w, face.h = (int(v) for v in data["box"])
            face.score = float(data.get("score") or 0.0)
            face.landmarks = data.get("landmarks")
            changed = True
        changed |= self._embeddings(face, data.get("embeddings") or {})
        if not created:
            s.flush()
        self._absent.discard(uuid)
        self._faces[face.uuid] = face
        if self._decision(face, data, created):
            changed = True
        if changed:
            face.updated_at = utcnow()
            self.result.faces += 1
            self._touched.append(face)
        return face

    def _match(self, image_id: int, box: list[int]) -> Face | None:
        best = None
        with self.session.no_autoflush:  # faces made by this same import are other faces of the file
            faces = self.session.scalars(select(Face).where(Face.image_id == image_id)
                                         .options(selectinload(Face.embeddings))).all()
        for face in faces:
            if same_face(box, face.box):
                overlap = iou(box, face.box)
                if best is None or overlap > best[0]:
                    best = (overlap, face)
        return best[1] if best else None

    def _embeddings(self, face: Face, remote: dict) -> bool:
        changed = False
        have = {e.finder: e for e in face.embeddings}
        for finder, item in sorted(remote.items()):
            vector = base64.b64decode(item["vector"])
            theirs = (item.get("model_version") or "", item["vector"])
            local = have.get(finder)
            if local is None:
                face.embeddings.append(Embedding(finder=finder, model_version=theirs[0],
                                                 score=float(item.get("score") or 0.0), vector=vector))
                changed = True
            elif theirs > (local.model_version or "", base64.b64encode(local.vector).decode("ascii")):
                local.model_version, local.vector = theirs[0], vector
                local.score = float(item.get("score") or 0.0)
                changed = True
        return changed

    @staticmethod
    def _decision_key(decided_at: str | None, state: str, name: str | None, rejected: list[str]) -> tuple:
        return (decided_at or "", records.canonical([state, name, sorted(rejected)]))

    def _decision(self, face: Face, data: dict, created: bool = False) -> bool:
        s = self.session
        if created:
            mine = self._decision_key(None, "unnamed", None, [])
            if data["state"] == "unnamed" and not data.get("decided_at") and not data.get("rejected"):
                return False
        else:
            local_rejected = s.execute(select(Name.uuid).join(RejectedName, RejectedName.name_id == Name.id)
                                       .where(RejectedName.face_id == face.id)).scalars().all()
            local_state = records.state_of(face)
            named = s.get(Name, face.name_id) if face.name_id is not None else None
            local_name = named.uuid if named is not None else None
            mine = self._decision_key(records.iso(face.decided_at), local_state, local_name, list(local_rejected))
            if local_state == "removed":
                return False
        theirs = self._decision_key(data.get("decided_at"), data["state"], data.get("name"),
                                    [r["uuid"] for r in data.get("rejected") or []])
        if theirs <= mine:
            return False
        if self.ties_keep_local and theirs[0] == mine[0]:
            return False
        name = self._name_for(data.get("name"), data.get("name_text"), data.get("decided_at")) if data["state"] == "confirmed" or \
            data.get("name") else None
        before = face.name_id if face.state == FaceState.CONFIRMED else None
        if face.name_id is not None:
            self._maybe_unused.add(face.name_id)
        face.state = FaceState(data["state"])
        face.name_id = name.id if name is not None else None
        face.guess_name_id = face.guess_distance = face.guess_finders = face.guess_anchor_face_id = None
        face.guessed_at = None
        if data["state"] != "unnamed":
            face.cluster_id = None
        face.decided_at = records.parse_time(data.get("decided_at"))
        face.decided_by = None
        if data.get("rejected") or not created:
            s.flush()
        wanted = []
        for item in data.get("rejected") or []:
            rejected = self._name_for(item.get("uuid"), item.get("name"))
            if rejected is not None:
                wanted.append(rejected.id)
        have = {} if created else {r.name_id: r for r in s.scalars(select(RejectedName).where(
            RejectedName.face_id == face.id))}
        for name_id, row in have.items():
            if name_id not in wanted:
                s.delete(row)
        for name_id in wanted:
            if name_id not in have:
                s.add(RejectedName(face_id=face.id, name_id=name_id))
        after = face.name_id if face.state == FaceState.CONFIRMED else None
        if before != after:
            self.result.named_images.add(face.image_id)
        return True

    def delete_face(self, uuid: str) -> None:
        face = self.session.scalar(select(Face).where(Face.uuid == uuid, Face.owner_id == self.owner_id))
        if face is None:
            self._drop_parked_face(uuid)
            return
        if face.state == FaceState.CONFIRMED:
            self.result.named_images.add(face.image_id)
        self.session.execute(update(Face).where(Face.guess_anchor_face_id == face.id)
                             .values(guess_anchor_face_id=None))
        self._faces.pop(uuid, None)
        self.session.delete(face)
        self.session.flush()
        self.result.deleted += 1

    def _drop_parked_face(self, uuid: str) -> None:
        for row in self.session.scalars(select(PendingImport).where(PendingImport.owner_id == self.owner_id)):
            faces = dict((row.payload or {}).get("faces", {}))
            if uuid in faces:
                faces.pop(uuid)
                row.payload = {"faces": faces, "marks": dict((row.payload or {}).get("marks", {}))}

    # --- marks and permissions ------------------------------------------------------------------------------

    def mark(self, data: dict) -> None:
        key = records.mark_key(data["image"], data["finder"])
        self._note("image_mark", key, data)
        image_id = self._image_id(data["image"])
        if image_id is None:
            self._park(data["image"], "marks", data["finder"], data)
            return
        row = self._new_marks.get((image_id, data["finder"]))
        if row is None:
            with self.session.no_autoflush:
                row = self.session.get(ImageFinder, (image_id, data["finder"]))
        theirs = (_RANK.get(data["status"], 0), data.get("processed_at") or "")
        if row is None:
            row = ImageFinder(image_id=image_id, finder=data["finder"], status=FinderStatus.PENDING)
            self.session.add(row)
            self._new_marks[(image_id, data["finder"])] = row
            mine = (0, "")
        else:
            status = row.status.value if isinstance(row.status, FinderStatus) else str(row.status)
            mine = (_RANK.get(status, 0), records.iso(row.processed_at) or "")
        if theirs <= mine:
            return
        row.status = FinderStatus(data["status"])
        row.model_version = data.get("model_version") or ""
        row.error = data.get("error")
        row.processed_at = records.parse_time(data.get("processed_at"))
        self.result.marks += 1

    def permission(self, uuid: str, data: dict) -> None:
        self._note("permission", uuid, data)
        s = self.session
        subject_id = 0
        if data["subject_type"] == "user":
            subject_id = s.scalar(select(User.id).where(User.username == data.get("subject")))
        elif data["subject_type"] == "group":
            subject_id = s.scalar(select(ContactGroup.id).where(ContactGroup.owner_id == self.owner_id,
                                                                ContactGroup.name == data.get("subject")))
        if subject_id is None:
            self.result.skipped += 1  # that account or group does not exist on this server
            return
        row = s.scalar(select(Permission).where(Permission.uuid == uuid))
        if row is not None and row.owner_id != self.owner_id:
            self.result.skipped += 1
            return
        if row is None:
            row = s.scalar(select(Permission).where(
                Permission.owner_id == self.owner_id, Permission.kind == data["kind"],
                Permission.subject_type == data["subject_type"], Permission.subject_id == subject_id))
            if row is None:
                s.add(Permission(uuid=uuid, owner_id=self.owner_id, kind=data["kind"],
                                 subject_type=data["subject_type"], subject_id=subject_id, allow=bool(data["allow"])))
                self.result.permissions += 1
                return
            if uuid < row.uuid:
                changes._pending(s).perm_tombs[row.uuid] = self.owner_id
                row.uuid = uuid
        if bool(row.allow) != bool(data["allow"]):
            row.allow = bool(data["allow"])
            self.result.permissions += 1

    def delete_permission(self, uuid: str) -> None:
        row = self.session.scalar(select(Permission).where(Permission.uuid == uuid,
                                                           Permission.owner_id == self.owner_id))
        if row is not None:
            self.session.delete(row)
            self.session.flush()
            self.result.deleted += 1

    def delete_library(self, data: dict | None, settings) -> None:  # noqa: ANN001
        """Delete every face and name of the library (as the owner's "delete all my data" did on the peer)."""
        from faces.sharing.deletion import delete_library_faces

        data = {"deleted_at": (data or {}).get("deleted_at") or records.iso(utcnow())}
        self._note("library", "library", data)
        self.session.info[changes.LIBRARY_DATA] = data
        delete_library_faces(self.session, self.owner_id, settings)
        self._faces, self._absent, self._image_ids, self._with_faces = {}, set(), None, None
        self._new_marks = {}
        self._deleted_at = data["deleted_at"]
        self.result.deleted += 1

    # --- one entry ------------------------------------------------------------------------------------------

    def entry(self, entity: str, key: str, op: str, data: dict | None, changed_at: str | None, settings) -> None:  # noqa: ANN001
        """Apply one change-log entry (already validated)."""
        if entity == "library":
            deleted_at = (data or {}).get("deleted_at") or changed_at
            if op == "delete" and not (self._deleted_at and deleted_at and deleted_at <= self._deleted_at):
                self.delete_library(data, settings)
            return
        if op == "upsert" and self.too_old(changed_at):
            self.result.skipped += 1
            return
        if entity == "face":
            self.face(key, data) if op == "upsert" else self.delete_face(key)
        elif entity == "name":
            self.name(key, data) if op == "upsert" else self.delete_name(key)
        elif entity == "image_mark":
            if op == "upsert":
                self.mark(data)
        elif entity == "permission":
            self.permission(key, data) if op == "upsert" else self.delete_permission(key)

    def finish(self, settings) -> ApplyResult:  # noqa: ANN001
        """Recompute the guesses the applied decisions affect and queue ``names_changed``."""
        from faces.naming.refresh import refresh_guesses

        self.session.flush()
        self.result.touched_faces.update(f.id for f in self._touched if f.id is not None)
        self._touched.clear()
        for name_id in sorted(self._maybe_unused):
            name = self.session.get(Name, name_id)
            if name is not None and name.owner_id == self.owner_id:
                self.delete_name(name.uuid, again=False)
        self._maybe_unused.clear()
        if self.result.touched_faces and settings is not None:
            existing = [f for f in self.session.scalars(select(Face.id).where(
                Face.id.in_(sorted(self.result.touched_faces))))]
            refresh_guesses(self.session, settings, self.owner_id, existing)
        if self.result.named_images:
            events.emit_after_commit(self.session, "names_changed", owner_id=self.owner_id,
                                     image_ids=sorted(self.result.named_images))
        return self.result


def attach_pending(session: Session, settings, owner_id: int, image_ids: list[int]) -> ApplyResult:  # noqa: ANN001
    """Attach the faces and marks waiting in ``pending_imports`` for these newly added images."""
    applier = Applier(session, owner_id)
    hashes = session.execute(select(Image.content_hash).where(Image.id.in_(image_ids),
                                                              Image.owner_id == owner_id)).scalars().all()
    if not hashes:
        return applier.result
    rows = session.scalars(select(PendingImport).where(PendingImport.owner_id == owner_id,
                                                       PendingImport.content_hash.in_(hashes))).all()
    for row in rows:
        payload = row.payload or {}
        session.delete(row)
        session.flush()
        for data in (payload.get("marks") or {}).values():
            applier.mark(data)
        for uuid, data in sorted((payload.get("faces") or {}).items()):
            applier.face(uuid, data)
    applier.result.pending = 0
    return applier.finish(settings)


def decode_vector(text: str) -> bytes:
    """Base64 text to bytes; raises ValueError for text that is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("an embedding is not valid base64") from exc
