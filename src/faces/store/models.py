"""The database schema: SQLAlchemy 2 models for every table faces keeps.

One library = one owner (a user). Boxes are integer pixels of the upright (EXIF-oriented) full-resolution image.
Embeddings are float32 vectors stored as bytes. Stable UUIDs on faces and names let clones and imports match rows.
Change the schema only together with a new Alembic revision in ``store/migrations/versions``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(timezone.utc)


def new_uuid() -> str:
    """A new random UUID as 32 hex characters."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Base of all models."""


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (VARCHAR + CHECK), the same on SQLite, PostgreSQL and MariaDB.
    return Enum(cls, name=name, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class FinderStatus(str, enum.Enum):
    """Result of one finder on one image."""

    PENDING = "pending"
    DONE = "done"  # faces found
    NO_FACE = "no_face"  # looked at, no face: never looked at again
    ERROR = "error"  # error message in ImageFinder.error


class FaceState(str, enum.Enum):
    """Where a face stands with its name (spec section 3)."""

    UNNAMED = "unnamed"
    GUESSED = "guessed"  # a guess (guess_name_id) waits for confirmation
    CONFIRMED = "confirmed"  # name_id set by someone with write permission
    UNKNOWN = "unknown"  # do not guess again
    IGNORED = "ignored"  # not a face, or not of interest
    REMOVED = "removed"  # the tagged person removed themselves: never taggable again


class Visibility(str, enum.Enum):
    """Who may view one image."""

    PRIVATE = "private"
    CONTACTS = "contacts"
    GROUP = "group"
    PUBLIC = "public"


class ContactStatus(str, enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class User(Base):
    """An account; every user owns one library (their images, faces and names)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None: cannot log in
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    write_names_to_files: Mapped[bool] = mapped_column(Boolean, default=True)  # per-owner opt-out (metadata)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Image(Base):
    """One image file of one owner. The same content added twice is one image (owner, content_hash)."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("owner_id", "content_hash", name="uq_images_owner_hash"),
        Index("ix_images_owner_sort_id", "owner_id", "sort_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int] = mapped_column(Integer, default=0)  # upright
    height: Mapped[int] = mapped_column(Integer, default=0)  # upright
    orientation: Mapped[int] = mapped_column(Integer, default=1)  # EXIF orientation of the stored file
    format: Mapped[str] = mapped_column(String(16), default="")
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # EXIF date, camera local time
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sort_at: Mapped[datetime] = mapped_column(DateTime, default=lambda: utcnow().replace(tzinfo=None))  # taken, else added
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the file itself cannot be read
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility, "visibility"), default=Visibility.CONTACTS)
    visibility_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_groups.id", ondelete="SET NULL"), nullable=True)

    faces: Mapped[list[Face]] = relationship(back_populates="image", cascade="all, delete-orphan",
                                             passive_deletes=True)
    finder_results: Mapped[list[ImageFinder]] = relationship(back_populates="image", cascade="all, delete-orphan",
                                                             passive_deletes=True)


class ImageFinder(Base):
    """The result of one finder on one image: pending, done, no face, or error (with its message)."""

    __tablename__ = "image_finders"
    __table_args__ = (Index("ix_image_finders_finder_status", "finder", "status"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    finder: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[FinderStatus] = mapped_column(_enum(FinderStatus, "finder_status"), default=FinderStatus.PENDING)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # time this finder spent on this image
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    image: Mapped[Image] = relationship(back_populates="finder_results")


class Name(Base):
    """A person's name, given by an owner; optionally linked to a user account (a contact)."""

    __tablename__ = "names"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_names_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Face(Base):
    """One region of one image that holds a face, with its name state. One face may have an embedding per finder."""

    __tablename__ = "faces"
    __table_args__ = (
        Index("ix_faces_owner_state", "owner_id", "state"),
        Index("ix_faces_name", "name_id"),
        Index("ix_faces_guess_name", "guess_name_id"),
        Index("ix_faces_cluster", "owner_id", "cluster_id"),
        Index("ix_faces_owner_updated", "owner_id", "updated_at"),  # the guess refresh reads recent changes
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # = image.owner_id
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    landmarks: Mapped[list | None] = mapped_column(JSON, nullable=True)  # [[x, y], ...] upright full-res pixels
    source: Mapped[str] = mapped_column(String(16), default="detected")  # detected | file | import

    state: Mapped[FaceState] = mapped_column(_enum(FaceState, "face_state"), default=FaceState.UNNAMED)
    name_id: Mapped[int | None] = mapped_column(ForeignKey("names.id", ondelete="SET NULL"), nullable=True)
    guess_name_id: Mapped[int | None] = mapped_column(ForeignKey("names.id", ondelete="SET NULL"), nullable=True)
    guess_distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    guess_finders: Mapped[str | None] = mapped_column(String(64), nullable=True)  # comma-separated finder names
    guess_anchor_face_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # nearest confirmed face
    guessed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cluster_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # group of look-alike unnamed faces
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # last human decision
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship(back_populates="faces")
    name: Mapped[Name | None] = relationship(foreign_keys=[name_id])
    guess_name: Mapped[Name | None] = relationship(foreign_keys=[guess_name_id])
    embeddings: Mapped[list[Embedding]] = relationship(back_populates="face", cascade="all, delete-orphan",
                                                       passive_deletes=True)

    @property
    def box(self) -> list[int]:
        """``[x, y, w, h]`` in upright full-resolution pixels."""
        return [self.x, self.y, self.w, self.h]


class Embedding(Base):
    """The vector one finder computed for one face (float32 bytes)."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("face_id", "finder", name="uq_embeddings_face_finder"),
                      Index("ix_embeddings_finder", "finder"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    finder: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(64), default="")
    score: Mapped[float] = mapped_column(Float, default=0.0)  # this finder's detection score
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    face: Mapped[Face] = relationship(back_populates="embeddings")


class RejectedName(Base):
    """A guess the owner rejected: that name is never guessed again for that face."""

    __tablename__ = "rejected_names"

    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    name_id: Mapped[int] = mapped_column(ForeignKey("names.id", ondelete="CASCADE"), primary_key=True)
    rejected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UndoEntry(Base):
    """One undoable action of an owner (a merge, a group naming...), with what is needed to revert it."""

    __tablename__ = "undo_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunLock(Base):
    """The one detection run of a library. A holder whose heartbeat is too old is considered dead."""

    __tablename__ = "run_locks"

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))  # host:pid:random
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    phase: Mapped[str] = mapped_column(String(32), default="detecting")


class RevokedSession(Base):
    """A login session ended by logging out: its cookie is refused until it would have expired anyway."""

    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)  # the session cookie's random id
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Run(Base):
    """A finished (or interrupted) detection run, for statistics: what it did and how long it took."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    images: Mapped[int] = mapped_column(Integer, default=0)
    faces: Mapped[int] = mapped_column(Integer, default=0)
    no_face: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Setting(Base):
    """A setting changed by the admin in the web page; applied on top of the file/environment settings."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict | list | str | int | float | bool | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- sharing (spec section 4) ---------------------------------------------------------------------------------


class Contact(Base):
    """A connection request from ``user_id`` to ``contact_id``; accepted connections go both ways."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("user_id", "contact_id", name="uq_contacts_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[ContactStatus] = mapped_column(_enum(ContactStatus, "contact_status"),
                                                  default=ContactStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ContactGroup(Base):
    """A named set of an owner's contacts, used in permissions."""

    __tablename__ = "contact_groups"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_contact_groups_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class ContactGroupMember(Base):
    __tablename__ = "contact_group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("contact_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Permission(Base):
    """One entry of a library's view or write list: allow or deny a contact, a group, or all contacts.

    ``subject_type`` is ``user``, ``group`` or ``contacts`` (all the owner's contacts; ``subject_id`` unused).
    Deny wins over allow. Without any entry: view = the owner's contacts, write = the owner only.
    """

    __tablename__ = "permissions"
    __table_args__ = (
        UniqueConstraint("owner_id", "kind", "subject_type", "subject_id", name="uq_permissions_entry"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # view | write
    subject_type: Mapped[str] = mapped_column(String(16))  # user | group | contacts
    subject_id: Mapped[int] = mapped_column(Integer, default=0)
    allow: Mapped[bool] = mapped_column(Boolean, default=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)


class Notification(Base):
    """A message for a user, e.g. 'you were tagged'; ``payload`` holds what the page needs (links, ids)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- portability and clones (spec section 6) -------------------------------------------------------------------


class ChangeLogEntry(Base):
    """One change of a library, in a monotonic sequence, for clones to pull (``entity_uuid`` is stable)."""

    __tablename__ = "change_log"
    __table_args__ = (Index("ix_change_log_owner_seq", "owner_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))  # face | name | image_mark | permission | library
    entity_uuid: Mapped[str] = mapped_column(String(80))
    op: Mapped[str] = mapped_column(String(16))  # upsert | delete
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    origin: Mapped[str] = mapped_column(String(64), default="")  # server id where the change was made


class SyncPeer(Base):
    """Another server holding a clone of an owner's library, and how far we have pulled from it."""

    __tablename__ = "sync_peers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    token: Mapped[str] = mapped_column(String(255))  # the peer's token, presented when we pull from it
    cursor: Mapped[int] = mapped_column(Integer, default=0)  # last seq applied from the peer
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SyncToken(Base):
    """A token an owner created so that a clone may pull their library; only its hash is kept."""

    __tablename__ = "sync_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingImport(Base):
    """Faces and marks imported for an image that is not in the library yet; attached when it arrives."""

    __tablename__ = "pending_imports"
    __table_args__ = (UniqueConstraint("owner_id", "content_hash", name="uq_pending_imports_owner_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DataVersion(Base):
    """One row (id 1) whose ``version`` every committed write to images, image_finders, faces or names raises
    (:mod:`faces.store.data_version`): what the web server's cache of gallery pages checks."""

    __tablename__ = "data_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


import faces.store.data_version  # noqa: E402, F401 - registers the hooks that raise DataVersion.version
