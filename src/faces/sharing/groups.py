"""Groups: named sets of an owner's contacts, used in permissions and image visibility."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from faces.sharing.contacts import ContactInfo, are_contacts, forget_cache, list_contacts
from faces.sharing.errors import InvalidRequest, NotFound
from faces.store.models import ContactGroup, ContactGroupMember, Image, Permission, Visibility

MAX_NAME = 200


@dataclass
class GroupInfo:
    """A group with its members (only members who are still contacts)."""

    id: int
    name: str
    members: list[ContactInfo] = field(default_factory=list)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise InvalidRequest("a group needs a name")
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"a group name has at most {MAX_NAME} characters")
    return name


def get_group(session: Session, owner_id: int, group_id: int) -> ContactGroup:
    """``owner_id``'s group ``group_id``. Raises NotFound for a missing group or another owner's group."""
    group = session.get(ContactGroup, group_id)
    if group is None or group.owner_id != owner_id:
        raise NotFound("there is no such group")
    return group


def create_group(session: Session, owner_id: int, name: str) -> ContactGroup:
    """A new group of ``owner_id``. Raises InvalidRequest for an empty or already used name."""
    name = _clean_name(name)
    if session.scalar(select(ContactGroup.id).where(ContactGroup.owner_id == owner_id, ContactGroup.name == name)):
        raise InvalidRequest(f"you already have a group named {name!r}")
    group = ContactGroup(owner_id=owner_id, name=name)
    session.add(group)
    session.flush()
    return group


def rename_group(session: Session, owner_id: int, group_id: int, name: str) -> ContactGroup:
    """Give ``owner_id``'s group a new name."""
    group = get_group(session, owner_id, group_id)
    name = _clean_name(name)
    if name != group.name and session.scalar(select(ContactGroup.id).where(
            ContactGroup.owner_id == owner_id, ContactGroup.name == name)):
        raise InvalidRequest(f"you already have a group named {name!r}")
    group.name = name
    session.flush()
    return group


def delete_group(session: Session, owner_id: int, group_id: int) -> None:
    """Delete a group, its permission entries, and make the images only it could see private."""
    group = get_group(session, owner_id, group_id)
    session.execute(delete(Permission).where(Permission.owner_id == owner_id, Permission.subject_type == "group",
                                             Permission.subject_id == group_id))
    session.execute(update(Image).where(Image.owner_id == owner_id, Image.visibility_group_id == group_id)
                    .values(visibility=Visibility.PRIVATE, visibility_group_id=None))
    session.execute(delete(ContactGroupMember).where(ContactGroupMember.group_id == group_id))
    session.delete(group)
    session.flush()
    forget_cache(session)


def add_member(session: Session, owner_id: int, group_id: int, user_id: int) -> None:
    """Put contact ``user_id`` into ``owner_id``'s group (nothing happens when already in it).

    Raises NotFound for another owner's group and InvalidRequest when the user is not a contact.
    """
    get_group(session, owner_id, group_id)
    if not are_contacts(session, owner_id, user_id):
        raise InvalidRequest("only your contacts can be put into your groups")
    if session.get(ContactGroupMember, (group_id, user_id)) is None:
        session.add(ContactGroupMember(group_id=group_id, user_id=user_id))
        session.flush()
    forget_cache(session)


def remove_member(session: Session, owner_id: int, group_id: int, user_id: int) -> None:
    """Take ``user_id`` out of ``owner_id``'s group."""
    get_group(session, owner_id, group_id)
    session.execute(delete(ContactGroupMember).where(ContactGroupMember.group_id == group_id,
                                                     ContactGroupMember.user_id == user_id))
    session.flush()
    forget_cache(session)


def group_ids_of_member(session: Session, owner_id: int, user_id: int) -> set[int]:
    """The ids of ``owner_id``'s groups that hold ``user_id``."""
    cache = session.info.setdefault("faces_group_members", {})
    key = (owner_id, user_id)
    if key not in cache:
        cache[key] = set(session.scalars(select(ContactGroupMember.group_id).join(
            ContactGroup, ContactGroup.id == ContactGroupMember.group_id).where(
            ContactGroup.owner_id == owner_id, ContactGroupMember.user_id == user_id)).all())
    return set(cache[key])


def list_groups(session: Session, owner_id: int) -> list[GroupInfo]:
    """``owner_id``'s groups, sorted by name, each with its members who are still contacts."""
    contacts = {c.user_id: c for c in list_contacts(session, owner_id)}
    groups = session.scalars(select(ContactGroup).where(ContactGroup.owner_id == owner_id)).all()
    members: dict[int, list[int]] = {}
    if groups:
        for gid, uid in session.execute(select(ContactGroupMember.group_id, ContactGroupMember.user_id).where(
                ContactGroupMember.group_id.in_([g.id for g in groups]))).all():
            members.setdefault(gid, []).append(uid)
    result = [GroupInfo(g.id, g.name, sorted((contacts[u] for u in members.get(g.id, []) if u in contacts),
                                             key=lambda c: c.display_name.lower()))
              for g in groups]
    return sorted(result, key=lambda g: g.name.lower())
