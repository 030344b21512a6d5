"""Contacts: one user asks another to connect, the other accepts or declines (spec section 4).

One ``contacts`` row per pair of users, in the direction of the request; an accepted row works both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from faces.sharing.errors import InvalidRequest, NotFound
from faces.store.models import Contact, ContactGroup, ContactGroupMember, ContactStatus, User


@dataclass
class ContactInfo:
    """A user as shown in contact lists (never their e-mail or password hash)."""

    user_id: int
    username: str
    display_name: str
    request_id: int | None = None  # the contacts row, for accepting/declining requests


def _info(user: User, request_id: int | None = None) -> ContactInfo:
    return ContactInfo(user.id, user.username, user.display_name or user.username, request_id)


def _pair(session: Session, a: int, b: int) -> Contact | None:
    return session.scalar(select(Contact).where(or_(
        and_(Contact.user_id == a, Contact.contact_id == b),
        and_(Contact.user_id == b, Contact.contact_id == a))))


def request_contact(session: Session, user_id: int, other_username: str) -> Contact:
    """``user_id`` asks the user named ``other_username`` to connect.

    A request that the other side already sent us is accepted at once. Asking again after a decline
    makes the request pending again.
    Raises:
        NotFound: no such user.
        InvalidRequest: asking oneself, already connected, or already asked.
    """
    other = session.scalar(select(User).where(User.username == (other_username or "").strip()))
    if other is None:
        raise NotFound(f"there is no user named {other_username!r}")
    if other.id == user_id:
        raise InvalidRequest("you cannot add yourself as a contact")
    row = _pair(session, user_id, other.id)
    if row is None:
        row = Contact(user_id=user_id, contact_id=other.id, status=ContactStatus.PENDING)
        session.add(row)
    elif row.status == ContactStatus.ACCEPTED:
        raise InvalidRequest(f"{other.username} is already your contact")
    elif row.user_id == other.id:
        row.status = ContactStatus.ACCEPTED  # they asked us first: both want it
    elif row.status == ContactStatus.PENDING:
        raise InvalidRequest(f"you already asked {other.username}; the answer is pending")
    else:
        row.status = ContactStatus.PENDING
    session.flush()
    forget_cache(session)
    return row


def respond(session: Session, user_id: int, request_id: int, accept: bool) -> Contact:
    """``user_id`` accepts or declines the pending request ``request_id`` that was sent to them.

    Raises NotFound when there is no such pending request addressed to ``user_id``.
    """
    row = session.get(Contact, request_id)
    if row is None or row.contact_id != user_id or row.status != ContactStatus.PENDING:
        raise NotFound("there is no such contact request for you")
    row.status = ContactStatus.ACCEPTED if accept else ContactStatus.DECLINED
    session.flush()
    forget_cache(session)
    return row


def remove_contact(session: Session, user_id: int, other_user_id: int) -> None:
    """End the connection (or withdraw a request) between ``user_id`` and ``other_user_id``.

    Both leave each other's groups; permission entries naming the other no longer apply (they are not
    contacts any more). Raises NotFound when there is no connection or request between them.
    """
    row = _pair(session, user_id, other_user_id)
    if row is None:
        raise NotFound("that user is not your contact")
    session.delete(row)
    for owner, member in ((user_id, other_user_id), (other_user_id, user_id)):
        groups = select(ContactGroup.id).where(ContactGroup.owner_id == owner)
        session.execute(delete(ContactGroupMember).where(
            ContactGroupMember.user_id == member, ContactGroupMember.group_id.in_(groups)))
    session.flush()
    forget_cache(session)


def contact_ids(session: Session, user_id: int) -> set[int]:
    """The ids of ``user_id``'s accepted contacts."""
    cache = session.info.setdefault("faces_contact_ids", {})
    if user_id not in cache:
        rows = session.execute(select(Contact.user_id, Contact.contact_id).where(
            Contact.status == ContactStatus.ACCEPTED,
            or_(Contact.user_id == user_id, Contact.contact_id == user_id))).all()
        cache[user_id] = {b if a == user_id else a for a, b in rows}
    return set(cache[user_id])


def forget_cache(session: Session) -> None:
    """Drop the per-session caches of sharing (after contacts, groups or permissions change in this session)."""
    for key in ("faces_contact_ids", "faces_group_members", "faces_permission_entries"):
        session.info.pop(key, None)


def are_contacts(session: Session, a: int | None, b: int | None) -> bool:
    """True when users ``a`` and ``b`` are connected (an accepted request)."""
    if a is None or b is None or a == b:
        return False
    return b in contact_ids(session, a)


def list_contacts(session: Session, user_id: int) -> list[ContactInfo]:
    """``user_id``'s accepted contacts, sorted by display name."""
    ids = contact_ids(session, user_id)
    if not ids:
        return []
    users = session.scalars(select(User).where(User.id.in_(ids))).all()
    return sorted((_info(u) for u in users), key=lambda c: (c.display_name.lower(), c.username))


def pending_requests(session: Session, user_id: int) -> tuple[list[ContactInfo], list[ContactInfo]]:
    """(incoming, outgoing) pending requests of ``user_id``; incoming ones carry the request id to answer."""
    rows = session.execute(select(Contact, User).join(User, or_(
        and_(Contact.contact_id == user_id, User.id == Contact.user_id),
        and_(Contact.user_id == user_id, User.id == Contact.contact_id))).where(
        Contact.status == ContactStatus.PENDING)).all()
    incoming = [_info(u, c.id) for c, u in rows if c.contact_id == user_id]
    outgoing = [_info(u, c.id) for c, u in rows if c.user_id == user_id]
    return incoming, outgoing
