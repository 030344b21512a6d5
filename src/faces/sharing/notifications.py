"""Notifications: "you were tagged" messages for users, in the page (with an unread count) and by e-mail.

This module subscribes to the ``face_tagged`` event (see :mod:`faces.events`): when a face is named after a
contact's account, the contact gets a notification with a link to the photos where they were tagged, and an
e-mail when SMTP is configured (``[smtp] host`` ...) and the user has an e-mail address.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from faces import events
from faces.config import SmtpSettings
from faces.sharing.errors import NotFound
from faces.store.models import Face, FaceState, Name, Notification, User, utcnow

log = logging.getLogger(__name__)
TAGGED = "tagged"
PHOTOS_OF_ME = "/me/photos"


@dataclass
class NotificationView:
    """A notification as the page shows it; ``text`` is plain text (the page escapes it)."""

    id: int
    kind: str
    text: str
    link: str
    created_at: datetime
    read: bool


def notify_tagged(session: Session, owner_id: int, face_id: int, contact_user_id: int,
                  actor_id: int | None) -> Notification | None:
    """Create the "you were tagged" notification for ``contact_user_id`` (in the caller's transaction).

    Nothing is created when the face is no longer confirmed as that user, when the user tagged themselves,
    when the user is not a contact of the owner (nobody gets messages from strangers), or when an unread
    notification for the same face already waits.
    """
    from faces.sharing.contacts import are_contacts

    face = session.get(Face, face_id)
    if face is None or face.owner_id != owner_id or face.state != FaceState.CONFIRMED or face.name_id is None:
        return None
    name = session.get(Name, face.name_id)
    if name is None or name.contact_user_id != contact_user_id or contact_user_id == actor_id:
        return None
    if not are_contacts(session, owner_id, contact_user_id):
        return None
    existing = session.scalars(select(Notification).where(
        Notification.user_id == contact_user_id, Notification.kind == TAGGED,
        Notification.read_at.is_(None))).all()
    if any(n.payload.get("face_id") == face_id for n in existing):
        return None
    note = Notification(user_id=contact_user_id, kind=TAGGED, payload={
        "owner_id": owner_id, "actor_id": actor_id, "face_id": face_id, "image_id": face.image_id,
        "link": f"{PHOTOS_OF_ME}#face-{face_id}"})
    session.add(note)
    session.flush()
    return note


def _display(user: User | None) -> str:
    if user is None:
        return "someone"
    return user.display_name or user.username


def _text(session: Session, note: Notification) -> str:
    if note.kind == TAGGED:
        owner = session.get(User, note.payload.get("owner_id") or 0)
        actor_id = note.payload.get("actor_id")
        actor = session.get(User, actor_id) if actor_id else owner
        if actor is not None and owner is not None and actor.id != owner.id:
            return f"{_display(actor)} tagged you in a photo of {_display(owner)}."
        return f"{_display(owner)} tagged you in a photo."
    return note.payload.get("text", note.kind)


def list_notifications(session: Session, user_id: int, limit: int = 50) -> list[NotificationView]:
    """``user_id``'s latest notifications, newest first."""
    rows = session.scalars(select(Notification).where(Notification.user_id == user_id)
                           .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)).all()
    return [NotificationView(n.id, n.kind, _text(session, n), n.payload.get("link", PHOTOS_OF_ME), n.created_at,
                             n.read_at is not None) for n in rows]


def unread_count(session: Session, user_id: int) -> int:
    """How many of ``user_id``'s notifications are unread."""
    return session.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))) or 0


def mark_read(session: Session, user_id: int, notification_id: int | None = None) -> int:
    """Mark one notification (or, with None, all of them) of ``user_id`` read; returns how many changed.
    Raises NotFound for a notification of someone else."""
    if notification_id is not None:
        note = session.get(Notification, notification_id)
        if note is None or note.user_id != user_id:
            raise NotFound("there is no such notification for you")
    query = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    return session.execute(query.values(read_at=utcnow())).rowcount or 0


def delete_face_notifications(session: Session, face_ids: set[int], user_id: int | None = None) -> int:
    """Delete the tagging notifications that point at ``face_ids`` (of ``user_id`` only, if given)."""
    if not face_ids:
        return 0
    query = select(Notification).where(Notification.kind == TAGGED)
    if user_id is not None:
        query = query.where(Notification.user_id == user_id)
    count = 0
    for note in session.scalars(query).all():
        if note.payload.get("face_id") in face_ids:
            session.delete(note)
            count += 1
    session.flush()
    return count


# --- e-mail ------------------------------------------------------------------------------------------------


def send_email(smtp: SmtpSettings, to: str, subject: str, body: str) -> None:
    """Send one plain-text e-mail through ``smtp`` (STARTTLS when set and offered). Raises on failure."""
    message = EmailMessage()
    message["From"] = smtp.sender or f"faces@{smtp.host}"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
        client.ehlo()
        if smtp.starttls and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.send_message(message)


def tagged_email(base_url: str, text: str) -> tuple[str, str]:
    """(subject, body) of the e-mail for a tagging notification ``text``."""
    link = f"{base_url.rstrip('/')}{PHOTOS_OF_ME}" if base_url else f"the page {PHOTOS_OF_ME} of your faces server"
    body = (f"{text}\n\nSee the photos where you were tagged, and remove yourself from any of them, at:\n{link}\n")
    return "You were tagged in a photo", body


def _send_in_background(smtp: SmtpSettings, to: str, subject: str, body: str) -> threading.Thread:
    def run() -> None:
        try:
            send_email(smtp, to, subject, body)
        except Exception as exc:  # noqa: BLE001 - a mail server problem must not disturb naming
            log.warning("tagging e-mail not sent: %s", type(exc).__name__)

    thread = threading.Thread(target=run, name="faces-mail", daemon=True)
    thread.start()
    return thread


last_mail_thread: threading.Thread | None = None  # for tests: the latest e-mail sender thread


def on_face_tagged(owner_id: int, face_id: int, contact_user_id: int, actor_id: int | None = None,
                   **_ignored: object) -> None:
    """Subscriber of ``face_tagged``: notify the contact (runs after the naming transaction committed)."""
    global last_mail_thread
    from faces.sharing.admin_settings import base_settings

    bind = events.current_bind()
    if bind is None:
        log.warning("face_tagged delivered outside a commit; no notification created")
        return
    with Session(bind) as session, session.begin():
        note = notify_tagged(session, owner_id, face_id, contact_user_id, actor_id)
        if note is None:
            return
        user = session.get(User, contact_user_id)
        email = user.email if user else ""
        text = _text(session, note)
    settings = base_settings()
    if settings.smtp.host and email:
        subject, body = tagged_email(settings.base_url, text)
        last_mail_thread = _send_in_background(settings.smtp, email, subject, body)


events.subscribe("face_tagged", on_face_tagged)
