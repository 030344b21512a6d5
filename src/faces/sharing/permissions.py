"""Who may see and do what (spec section 4). Every web request asks these functions.

``observer_id`` is the logged-in user's id, or None for nobody logged in.

A library has a **view** list and a **write** list (``permissions`` rows of its owner). Each entry allows or
denies one contact (``user``), one of the owner's groups (``group``) or all the owner's contacts
(``contacts``). Deny wins over allow. Only accepted contacts can be allowed: someone who stops being a contact
loses access. A list without any entry falls back to the admin's default (``default_view``: the owner's
contacts, or the owner only; ``default_write``: the owner only, or the contacts). Write implies view,
unless the view list denies that observer. The owner always may everything.

Every image has its own visibility (private, contacts, one group, public). An observer sees an image and its
frames only if :func:`can_view_image` *and* :func:`can_view_library`; names only with :func:`can_view_library`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, delete, false, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from faces.sharing import admin_settings
from faces.sharing.contacts import are_contacts, contact_ids
from faces.sharing.errors import InvalidRequest, NotFound
from faces.sharing.groups import get_group, group_ids_of_member
from faces.store.models import Image, Permission, Visibility

KINDS = ("view", "write")
_ENTRIES = "faces_permission_entries"


@dataclass
class AccessList:
    """One list of a library, as the lock dialog shows and sets it.

    ``contacts`` is "allow", "deny" or None (no entry for all contacts). ``default`` is True when the list
    has no entry at all, so that the admin's default applies.
    """

    kind: str
    default: bool = True
    contacts: str | None = None
    allow_users: list[int] = field(default_factory=list)
    deny_users: list[int] = field(default_factory=list)
    allow_groups: list[int] = field(default_factory=list)
    deny_groups: list[int] = field(default_factory=list)


def _entries(session: Session, owner_id: int) -> list[tuple[str, str, int, bool]]:
    cache = session.info.setdefault(_ENTRIES, {})
    if owner_id not in cache:
        cache[owner_id] = [tuple(r) for r in session.execute(
            select(Permission.kind, Permission.subject_type, Permission.subject_id, Permission.allow)
            .where(Permission.owner_id == owner_id)).all()]
    return cache[owner_id]


def _default(session: Session, kind: str) -> str:
    key = f"default_{kind}"
    value = admin_settings.overrides(session).get(key)
    if value not in admin_settings.CHOICES[key]:
        value = getattr(admin_settings.base_settings(), key, "contacts" if kind == "view" else "owner")
    return value


def _decide(session: Session, kind: str, observer_id: int, owner_id: int) -> str:
    """'allow', 'deny' or 'none' for a non-owner logged-in observer on one list."""
    entries = [e for e in _entries(session, owner_id) if e[0] == kind]
    is_contact = are_contacts(session, owner_id, observer_id)
    if not entries:
        return "allow" if is_contact and _default(session, kind) == "contacts" else "none"
    groups = group_ids_of_member(session, owner_id, observer_id) if is_contact else set()
    allowed = denied = False
    for _, subject_type, subject_id, allow in entries:
        matches = ((subject_type == "user" and subject_id == observer_id)
                   or (subject_type == "group" and subject_id in groups)
                   or (subject_type == "contacts" and is_contact))
        if matches:
            if allow:
                allowed = True
            else:
                denied = True
    if denied:
        return "deny"
    return "allow" if allowed and is_contact else "none"


def can_view_library(session: Session, observer_id: int | None, owner_id: int) -> bool:
    """May ``observer_id`` see the faces and names of ``owner_id``'s library?"""
    if observer_id is None:
        return False
    if observer_id == owner_id:
        return True
    view = _decide(session, "view", observer_id, owner_id)
    if view == "allow":
        return True
    return view == "none" and _decide(session, "write", observer_id, owner_id) == "allow"


def can_write_library(session: Session, observer_id: int | None, owner_id: int) -> bool:
    """May ``observer_id`` set names on faces of ``owner_id``'s library?"""
    if observer_id is None:
        return False
    if observer_id == owner_id:
        return True
    return (_decide(session, "write", observer_id, owner_id) == "allow"
            and _decide(session, "view", observer_id, owner_id) != "deny")


def can_view_image(session: Session, observer_id: int | None, image: Image) -> bool:
    """May ``observer_id`` see this image itself (its pixels)?"""
    if observer_id is not None and observer_id == image.owner_id:
        return True
    visibility = image.visibility
    if visibility == Visibility.PUBLIC:
        return True
    if observer_id is None or not are_contacts(session, image.owner_id, observer_id):
        return False
    if visibility == Visibility.CONTACTS:
        return True
    if visibility == Visibility.GROUP and image.visibility_group_id is not None:
        return image.visibility_group_id in group_ids_of_member(session, image.owner_id, observer_id)
    return False


def is_owner(observer_id: int | None, owner_id: int) -> bool:
    """Only the owner changes permissions and deletes data."""
    return observer_id is not None and observer_id == owner_id


def visible_images_clause(session: Session, observer_id: int | None, owner_id: int) -> ColumnElement[bool]:
    """A WHERE clause on ``Image`` that keeps the images of ``owner_id`` that ``observer_id`` may view
    (the same rule as :func:`can_view_image`, for list queries)."""
    mine = Image.owner_id == owner_id
    if observer_id is not None and observer_id == owner_id:
        return and_(mine, true())
    allowed = [Image.visibility == Visibility.PUBLIC]
    if observer_id is not None and are_contacts(session, owner_id, observer_id):
        allowed.append(Image.visibility == Visibility.CONTACTS)
        groups = group_ids_of_member(session, owner_id, observer_id)
        if groups:
            allowed.append(and_(Image.visibility == Visibility.GROUP, Image.visibility_group_id.in_(groups)))
    return and_(mine, or_(*allowed) if allowed else false())


# --- reading and changing the lists (owner only; the web checks is_owner first) -------------------------------


def get_access_list(session: Session, owner_id: int, kind: str) -> AccessList:
    """The ``kind`` list of ``owner_id``'s library as the lock dialog shows it."""
    if kind not in KINDS:
        raise InvalidRequest(f"permission kind must be view or write, not {kind!r}")
    result = AccessList(kind)
    for entry_kind, subject_type, subject_id, allow in _entries(session, owner_id):
        if entry_kind != kind:
            continue
        result.default = False
        if subject_type == "contacts":
            result.contacts = "allow" if allow else "deny"
        elif subject_type == "user":
            (result.allow_users if allow else result.deny_users).append(subject_id)
        elif subject_type == "group":
            (result.allow_groups if allow else result.deny_groups).append(subject_id)
    for values in (result.allow_users, result.deny_users, result.allow_groups, result.deny_groups):
        values.sort()
    return result


def set_access_list(session: Session, owner_id: int, access: AccessList) -> AccessList:
    """Replace the ``access.kind`` list of ``owner_id``'s library. ``access.default`` True removes every entry
    (the admin's default applies); otherwise the entries are exactly the ones given, and an otherwise empty
    list means "the owner only". Users must be contacts and groups the owner's own; a subject both allowed and
    denied is refused, so that the dialog always shows what applies.
    """
    if access.kind not in KINDS:
        raise InvalidRequest(f"permission kind must be view or write, not {access.kind!r}")
    if access.contacts not in (None, "allow", "deny"):
        raise InvalidRequest("all contacts must be allowed, denied, or left out")
    entries: list[tuple[str, int, bool]] = []
    if not access.default:
        known = contact_ids(session, owner_id)
        for user_id in set(access.allow_users) | set(access.deny_users):
            if user_id not in known:
                raise InvalidRequest("only your contacts can be allowed or denied")
        for group_id in set(access.allow_groups) | set(access.deny_groups):
            try:
                get_group(session, owner_id, group_id)
            except NotFound:
                raise InvalidRequest("only your own groups can be allowed or denied") from None
        if set(access.allow_users) & set(access.deny_users) or set(access.allow_groups) & set(access.deny_groups):
            raise InvalidRequest("the same contact or group cannot be both allowed and denied")
        entries += [("user", u, True) for u in sorted(set(access.allow_users))]
        entries += [("user", u, False) for u in sorted(set(access.deny_users))]
        entries += [("group", g, True) for g in sorted(set(access.allow_groups))]
        entries += [("group", g, False) for g in sorted(set(access.deny_groups))]
        if access.contacts is not None:
            entries.append(("contacts", 0, access.contacts == "allow"))
        if not entries:
            entries.append(("contacts", 0, False))  # nobody but the owner
    session.execute(delete(Permission).where(Permission.owner_id == owner_id, Permission.kind == access.kind))
    session.flush()
    for subject_type, subject_id, allow in entries:
        session.add(Permission(owner_id=owner_id, kind=access.kind, subject_type=subject_type,
                               subject_id=subject_id, allow=allow))
    session.flush()
    session.info.pop(_ENTRIES, None)
    return get_access_list(session, owner_id, access.kind)


def set_image_visibility(session: Session, owner_id: int, image_id: int, visibility: str,
                         group_id: int | None = None) -> Image:
    """Set who may view one image of ``owner_id``: "private", "contacts", "group" (with ``group_id``, one of
    the owner's groups) or "public". Raises NotFound for another owner's image or group."""
    image = session.get(Image, image_id)
    if image is None or image.owner_id != owner_id:
        raise NotFound("there is no such image in your library")
    try:
        value = Visibility(visibility)
    except ValueError:
        raise InvalidRequest("visibility must be private, contacts, group or public") from None
    if value == Visibility.GROUP:
        if group_id is None:
            raise InvalidRequest("choose the group that may view the image")
        get_group(session, owner_id, group_id)
        image.visibility_group_id = group_id
    else:
        image.visibility_group_id = None
    image.visibility = value
    session.flush()
    return image
