"""Settings the admin changes in the web page, stored in the ``settings`` table and applied without restart.

``effective_settings(session, base)`` is the settings to use right now: the file/environment settings ``base``
with the admin's values on top. The pipeline, the guessing and the web call it whenever they start work, so
a change applies to the next request or run in every process (web, scanner, Celery workers).

Keys (and what they accept):
- ``finders.<name>.enabled`` (bool), ``.min_face_size`` (int 1..10000), ``.score_threshold`` (float -10..10),
  ``.tolerance`` (float, above 0 up to 2), ``.model`` (a variant the finder knows, see MODELS)
- ``metadata.write_names``, ``metadata.sidecar``, ``metadata.read_regions`` (bool; exiftool on or off)
- ``log_level`` (DEBUG, INFO, WARNING, ERROR)
- ``default_view`` (contacts, owner), ``default_write`` (owner, contacts),
  ``default_image_visibility`` (private, contacts, public)
- ``registration_open`` (bool)
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from faces.config import ConfigError, FinderSettings, Settings, load_settings
from faces.sharing.errors import InvalidRequest
from faces.store.models import Setting, utcnow

log = logging.getLogger(__name__)

# model variants a finder accepts; a finder not listed accepts any short word
MODELS: dict[str, tuple[str, ...]] = {"dlib": ("hog", "cnn")}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CHOICES: dict[str, tuple[str, ...]] = {
    "log_level": LOG_LEVELS,
    "default_view": ("contacts", "owner"),
    "default_write": ("owner", "contacts"),
    "default_image_visibility": ("private", "contacts", "public"),
}
BOOLS = ("registration_open", "metadata.write_names", "metadata.sidecar", "metadata.read_regions")
FINDER_FIELDS = ("enabled", "min_face_size", "score_threshold", "tolerance", "model")
_CACHE = "faces_admin_overrides"
_base: Settings | None = None


def set_base_settings(settings: Settings) -> None:
    """Tell this process which file/environment settings it runs with (the web app and the command line do,
    once); subscribers that get no settings with their event (e-mail, thumbnails) use them."""
    global _base
    _base = settings


def base_settings() -> Settings:
    """The file/environment settings of this process: the last ones given to :func:`effective_settings`
    (the web app and the command line do so first), else freshly loaded ones."""
    global _base
    if _base is None:
        try:
            _base = load_settings()
        except ConfigError:
            _base = Settings()
    return _base


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidRequest(f"{key} must be on or off, not {value!r}")


def _number(key: str, value: Any, kind: type, low: float, high: float, low_open: bool = False) -> int | float:
    try:
        number = kind(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise InvalidRequest(f"{key} must be {what}, not {value!r}") from None
    if number != number or number > high or number < low or (low_open and number == low):  # NaN too
        raise InvalidRequest(f"{key} must be {'above' if low_open else 'at least'} {low} and at most {high}")
    return number


def validate(key: str, value: Any, finder_names: list[str] | None = None) -> Any:
    """The cleaned value of admin setting ``key``. Raises InvalidRequest with a plain message when the key
    is unknown or the value does not fit."""
    if key in BOOLS:
        return _bool(key, value)
    if key in CHOICES:
        text = str(value).strip()
        text = text.upper() if key == "log_level" else text.lower()
        if text not in CHOICES[key]:
            raise InvalidRequest(f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}")
        return text
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "finders" and parts[2] in FINDER_FIELDS:
        name, field = parts[1], parts[2]
        known = finder_names if finder_names is not None else list(base_settings().finders)
        if name not in known:
            raise InvalidRequest(f"there is no finder named {name!r}")
        if field == "enabled":
            return _bool(key, value)
        if field == "min_face_size":
            return _number(key, value, int, 1, 10000)
        if field == "score_threshold":
            return _number(key, value, float, -10.0, 10.0)
        if field == "tolerance":
            return _number(key, value, float, 0.0, 2.0, low_open=True)
        text = str(value).strip().lower()
        allowed = MODELS.get(name)
        if allowed is not None and text not in allowed:
            raise InvalidRequest(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
        if not text or len(text) > 32 or not all(ch.isalnum() or ch in "-_." for ch in text):
            raise InvalidRequest(f"{key} must be a short model name, not {value!r}")
        return text
    raise InvalidRequest(f"there is no admin setting named {key!r}")


def overrides(session: Session) -> dict[str, Any]:
    """The admin's stored values, key -> value (cached for the life of ``session``)."""
    if _CACHE not in session.info:
        session.info[_CACHE] = {row.key: row.value for row in session.scalars(select(Setting)).all()}
    return dict(session.info[_CACHE])


def set_setting(session: Session, key: str, value: Any, base: Settings | None = None) -> Any:
    """Store the admin's ``value`` for ``key`` (validated; returns the stored value). ``None`` removes the
    admin's value so that the file/environment value applies again. A new log level applies at once here."""
    base = base or base_settings()
    if value is None:
        session.execute(delete(Setting).where(Setting.key == key))
    else:
        value = validate(key, value, list(base.finders))
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=value, updated_at=utcnow()))
        else:
            row.value = value
            row.updated_at = utcnow()
    session.flush()
    session.info.pop(_CACHE, None)
    if key == "log_level":
        apply_log_level(value or base.log_level)
    return value


def apply_log_level(level: str) -> None:
    """Set the level of the ``faces`` loggers in this process."""
    logging.getLogger("faces").setLevel(getattr(logging, str(level).upper(), logging.INFO))


def apply_stored_log_level(store) -> None:  # noqa: ANN001 - faces.store.db.Store
    """At start: apply the log level the admin chose in the page, if any (it outlives restarts)."""
    with store.session() as session:
        level = overrides(session).get("log_level")
    if level:
        apply_log_level(level)


def effective_settings(session: Session, base_settings: Settings) -> Settings:
    """A copy of ``base_settings`` with the admin's stored values applied on top.

    Stored values that no longer fit (a finder that was removed, a value out of range) are skipped with a
    warning, so a bad row never stops the service.
    """
    global _base
    _base = base_settings
    result = copy.deepcopy(base_settings)
    names = list(result.finders)
    for key, value in sorted(overrides(session).items()):
        try:
            value = validate(key, value, names)
        except InvalidRequest as exc:
            log.warning("admin setting ignored: %s", exc)
            continue
        parts = key.split(".")
        if parts[0] == "finders":
            finder = result.finders.setdefault(parts[1], FinderSettings())
            setattr(finder, parts[2], value)
        elif parts[0] == "metadata":
            setattr(result.metadata, parts[1], value)
        else:
            setattr(result, key, value)
    return result
