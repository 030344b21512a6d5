"""Validation of records that come from outside (export files, a clone's answers): every field checked for
kind and size before anything is applied, so that a corrupt or hostile input is refused with a plain message."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from faces.naming.actions import NamingError, clean_name

Uuid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Hash = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_.:-]{8,128}$")]
FinderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]
Time = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")]
Pixel = Annotated[int, Field(ge=-100_000, le=1_000_000)]
MAX_VECTOR_BYTES = 16384  # 4096 float32
MAX_TEXT = 2000


class InvalidRecord(ValueError):
    """A record does not have the expected form; the message says where and what."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _name_text(value: str) -> str:
    try:
        cleaned = clean_name(value)
    except NamingError as exc:
        raise ValueError(str(exc)) from None
    if not cleaned:
        raise ValueError("a name is empty")
    return cleaned


class RejectedRecord(_Strict):
    uuid: Uuid | None = None
    name: str

    _check = field_validator("name")(staticmethod(_name_text))


class EmbeddingRecord(_Strict):
    model_version: Annotated[str, StringConstraints(max_length=64)] = ""
    score: float = 0.0
    vector: Annotated[str, StringConstraints(max_length=MAX_VECTOR_BYTES * 4 // 3 + 8)]

    @field_validator("vector")
    @classmethod
    def _vector(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("an embedding is not valid base64") from None
        if not raw or len(raw) % 4:
            raise ValueError("an embedding must be a whole number of float32 values")
        return value


class FaceRecord(_Strict):
    image: Hash
    box: Annotated[list[Pixel], Field(min_length=4, max_length=4)]
    score: float = 0.0
    landmarks: Annotated[list[Annotated[list[float], Field(min_length=2, max_length=3)]], Field(max_length=128)] | None = None
    source: Annotated[str, StringConstraints(max_length=16)] = "detected"
    state: Literal["unnamed", "confirmed", "unknown", "ignored", "removed"]
    name: Uuid | None = None
    name_text: str | None = None
    rejected: Annotated[list[RejectedRecord], Field(max_length=1000)] = []
    decided_at: Time | None = None
    embeddings: Annotated[dict[FinderName, EmbeddingRecord], Field(max_length=16)] = {}

    @field_validator("box")
    @classmethod
    def _box(cls, value: list[int]) -> list[int]:
        if value[2] <= 0 or value[3] <= 0:
            raise ValueError("a face box needs a positive width and height")
        return value

    @field_validator("name_text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _name_text(value)

    def model_post_init(self, _context) -> None:  # noqa: ANN001
        if self.state == "confirmed" and not self.name_text:
            raise ValueError("a confirmed face needs its name")


class NameRecord(_Strict):
    name: str
    contact: Annotated[str, StringConstraints(max_length=64)] | None = None
    updated_at: Time | None = None

    _check = field_validator("name")(staticmethod(_name_text))


class MarkRecord(_Strict):
    image: Hash
    finder: FinderName
    status: Literal["done", "no_face", "error"]
    model_version: Annotated[str, StringConstraints(max_length=64)] = ""
    error: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = None
    processed_at: Time | None = None


class PermissionRecord(_Strict):
    kind: Literal["view", "write"]
    subject_type: Literal["user", "group", "contacts"]
    subject: Annotated[str, StringConstraints(max_length=200)] | None = None
    allow: bool


class LibraryRecord(_Strict):
    deleted_at: Time | None = None


MODELS = {"face": FaceRecord, "name": NameRecord, "image_mark": MarkRecord, "permission": PermissionRecord,
          "library": LibraryRecord}


def plain_error(exc: ValidationError, where: str) -> str:
    """A one-line description of the first problem pydantic found."""
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}{'.' + location if location else ''}: {message}"


def check(entity: str, data: object, where: str) -> dict:
    """``data`` validated as a record of ``entity`` (names cleaned); raises InvalidRecord with a plain message."""
    model = MODELS.get(entity)
    if model is None:
        raise InvalidRecord(f"{where}: unknown kind of record {str(entity)[:40]!r}")
    if not isinstance(data, dict):
        raise InvalidRecord(f"{where}: expected an object")
    try:
        clean = model.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise InvalidRecord(plain_error(exc, where)) from None
    for key in TIME_FIELDS:
        if clean.get(key):
            clean[key] = normal_time(clean[key], f"{where}.{key}")
    return clean


TIME_FIELDS = ("decided_at", "updated_at", "processed_at", "deleted_at")


def normal_time(text: str, where: str) -> str:
    """``text`` in the one fixed-width UTC form records use (so that times compare as text)."""
    from faces.portability.records import iso, parse_time

    try:
        return iso(parse_time(text))
    except (ValueError, OverflowError):
        raise InvalidRecord(f"{where}: not a valid date and time") from None
