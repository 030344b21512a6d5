"""A small in-process event bus, so that packages react to each other without importing each other.

Producers (naming, pipeline) call :func:`emit_after_commit`; the subscribers (metadata writing, tagging
notifications...) run only once the transaction that caused the event has committed, and never for a
rolled-back one. A subscriber that fails is logged and does not disturb the others or the producer.

Events (name: keyword arguments):
- ``images_added``: owner_id, image_ids (and store, settings: the emitter's, for subscribers)
- ``faces_detected``: owner_id, image_ids
- ``names_changed``: owner_id, image_ids (confirmed names of these images changed)
- ``face_tagged``: owner_id, face_id, contact_user_id, actor_id (a face was named after a user account)
- ``faces_deleted``: owner_id, face_ids, face_uuids, image_ids, content_hashes, data_dir (faces, and with
  image_ids images, were deleted; see faces.sharing.deletion)
"""

from __future__ import annotations

import contextvars
import importlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
_subscribers: dict[str, list[Callable[..., None]]] = defaultdict(list)
_PENDING = "faces_pending_events"
_bind: contextvars.ContextVar[Any] = contextvars.ContextVar("faces_event_bind", default=None)

# Modules that subscribe when imported; loaded once by load_subscribers().
SUBSCRIBER_MODULES: list[str] = ["faces.sharing.notifications", "faces.sharing.deletion",
                                   "faces.metadata.subscribers", "faces.portability.subscribers"]
_loaded = False


def subscribe(name: str, handler: Callable[..., None]) -> None:
    """Call ``handler(**payload)`` after every committed ``name`` event."""
    if handler not in _subscribers[name]:
        _subscribers[name].append(handler)


def load_subscribers() -> None:
    """Import every module listed in SUBSCRIBER_MODULES (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in SUBSCRIBER_MODULES:
        importlib.import_module(module)


def emit(name: str, **payload: Any) -> None:
    """Deliver ``name`` now to every subscriber (use emit_after_commit inside a transaction)."""
    load_subscribers()
    for handler in list(_subscribers.get(name, ())):
        try:
            handler(**payload)
        except Exception:  # noqa: BLE001 - one failing subscriber must not stop the others
            log.exception("event %s: subscriber %s failed", name, getattr(handler, "__qualname__", handler))


def emit_after_commit(session: Session, name: str, **payload: Any) -> None:
    """Queue ``name`` on ``session``; it is delivered after the session's transaction commits."""
    session.info.setdefault(_PENDING, []).append((name, payload))


def current_bind() -> Any:
    """The engine of the session whose commit is delivering the current event (None outside a delivery),
    so that a subscriber can open its own session on the same database: ``Session(events.current_bind())``."""
    return _bind.get()


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    bind = session.get_bind()
    token = _bind.set(getattr(bind, "engine", bind))
    try:
        for name, payload in pending:
            emit(name, **payload)
    finally:
        _bind.reset(token)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)
