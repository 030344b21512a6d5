"""Library view/write lists (deny wins, defaults, admin defaults) and per-image visibility."""

import itertools

import pytest
from sqlalchemy import select

from faces.sharing import admin_settings, contacts, groups, permissions
from faces.sharing.errors import InvalidRequest, NotFound
from faces.sharing.permissions import AccessList
from faces.store.models import Image, Visibility

from .conftest import connect, make_image, make_user


@pytest.fixture
def people(db):
    owner, bob, cat, eve = (make_user(db, n) for n in ("owner", "bob", "cat", "eve"))
    connect(db, owner, bob)
    connect(db, cat, owner)
    return owner, bob, cat, eve


def view(db, who, owner):
    return permissions.can_view_library(db, who.id if who else None, owner.id)


def write(db, who, owner):
    return permissions.can_write_library(db, who.id if who else None, owner.id)


def test_defaults_view_contacts_write_owner(db, people):
    owner, bob, cat, eve = people
    assert view(db, owner, owner) and write(db, owner, owner)
    assert view(db, bob, owner) and view(db, cat, owner)
    assert not write(db, bob, owner) and not write(db, cat, owner)
    assert not view(db, eve, owner) and not write(db, eve, owner)
    assert not view(db, None, owner) and not write(db, None, owner)
    # contacts are not transitive: bob is not cat's contact
    assert not view(db, bob, cat)
    assert permissions.get_access_list(db, owner.id, "view").default


def test_deny_wins_over_allow(db, people):
    owner, bob, cat, eve = people
    family = groups.create_group(db, owner.id, "family")
    groups.add_member(db, owner.id, family.id, bob.id)
    groups.add_member(db, owner.id, family.id, cat.id)
    # all contacts allowed, bob denied
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, contacts="allow", deny_users=[bob.id]))
    assert not view(db, bob, owner) and view(db, cat, owner)
    # bob allowed by name, but his group is denied
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_users=[bob.id, cat.id],
                                                         deny_groups=[family.id]))
    assert not view(db, bob, owner) and not view(db, cat, owner)
    # the group allowed, all contacts denied: deny still wins
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, contacts="deny",
                                                         allow_groups=[family.id]))
    assert not view(db, bob, owner) and not view(db, cat, owner)
    # only the group allowed: its members see, nobody else
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_groups=[family.id]))
    groups.remove_member(db, owner.id, family.id, cat.id)
    assert view(db, bob, owner) and not view(db, cat, owner) and not view(db, eve, owner)


def test_write_list_implies_view_unless_view_denies(db, people):
    owner, bob, cat, eve = people
    permissions.set_access_list(db, owner.id, AccessList("view", default=False))  # owner only
    assert permissions.get_access_list(db, owner.id, "view").contacts == "deny"
    assert not view(db, bob, owner)
    permissions.set_access_list(db, owner.id, AccessList("write", default=False, allow_users=[bob.id]))
    # "owner only" on view is a deny of all contacts: it wins over bob's write permission
    assert not write(db, bob, owner) and not view(db, bob, owner)
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_users=[cat.id]))
    assert write(db, bob, owner) and view(db, bob, owner)  # write without a view entry still sees
    assert view(db, cat, owner) and not write(db, cat, owner)
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_users=[cat.id],
                                                         deny_users=[bob.id]))
    assert not write(db, bob, owner)
    permissions.set_access_list(db, owner.id, AccessList("view", default=True))
    assert permissions.get_access_list(db, owner.id, "view").default
    assert write(db, bob, owner)


def test_former_contact_and_non_contact_never_allowed(db, people):
    owner, bob, cat, eve = people
    permissions.set_access_list(db, owner.id, AccessList("write", default=False, allow_users=[bob.id]))
    assert write(db, bob, owner)
    contacts.remove_contact(db, owner.id, bob.id)
    assert not write(db, bob, owner) and not view(db, bob, owner)
    with pytest.raises(InvalidRequest, match="only your contacts"):
        permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_users=[eve.id]))


def test_access_list_validation(db, people):
    owner, bob, cat, eve = people
    theirs = groups.create_group(db, eve.id, "eve's")
    with pytest.raises(InvalidRequest, match="own groups"):
        permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_groups=[theirs.id]))
    with pytest.raises(InvalidRequest, match="both allowed and denied"):
        permissions.set_access_list(db, owner.id, AccessList("view", default=False, allow_users=[bob.id],
                                                             deny_users=[bob.id]))
    with pytest.raises(InvalidRequest, match="view or write"):
        permissions.get_access_list(db, owner.id, "admin")
    saved = permissions.set_access_list(db, owner.id, AccessList("write", default=False, contacts="allow",
                                                                 deny_users=[cat.id]))
    assert (saved.default, saved.contacts, saved.deny_users) == (False, "allow", [cat.id])
    assert permissions.get_access_list(db, owner.id, "view").default  # the other list is untouched


def test_admin_defaults_apply_to_libraries_without_entries(db, people):
    owner, bob, cat, eve = people
    admin_settings.set_setting(db, "default_view", "owner")
    admin_settings.set_setting(db, "default_write", "contacts")
    assert write(db, bob, owner) and view(db, bob, owner)  # write implies view
    admin_settings.set_setting(db, "default_write", "owner")
    assert not view(db, bob, owner)
    permissions.set_access_list(db, owner.id, AccessList("view", default=False, contacts="allow"))
    assert view(db, bob, owner)  # the library's own list beats the default


def test_image_visibility(db, people):
    owner, bob, cat, eve = people
    family = groups.create_group(db, owner.id, "family")
    groups.add_member(db, owner.id, family.id, bob.id)
    images = {v: make_image(db, owner, v) for v in (Visibility.PRIVATE, Visibility.CONTACTS, Visibility.PUBLIC)}
    images["group"] = make_image(db, owner, Visibility.GROUP, family.id)
    expected = {
        owner: {Visibility.PRIVATE, Visibility.CONTACTS, Visibility.PUBLIC, "group"},
        bob: {Visibility.CONTACTS, Visibility.PUBLIC, "group"},
        cat: {Visibility.CONTACTS, Visibility.PUBLIC},
        eve: {Visibility.PUBLIC},
        None: {Visibility.PUBLIC},
    }
    for who, keys in expected.items():
        uid = who.id if who else None
        seen = {k for k, img in images.items() if permissions.can_view_image(db, uid, img)}
        assert seen == keys, who
        listed = set(db.scalars(select(Image.id).where(permissions.visible_images_clause(db, uid, owner.id))))
        assert listed == {images[k].id for k in keys}, who
    groups.delete_group(db, owner.id, family.id)
    db.refresh(images["group"])
    assert images["group"].visibility == Visibility.PRIVATE
    assert not permissions.can_view_image(db, bob.id, images["group"])


def test_set_image_visibility_checks_owner_and_group(db, people):
    owner, bob, cat, eve = people
    image = make_image(db, owner, Visibility.PRIVATE)
    eves_group = groups.create_group(db, eve.id, "x")
    with pytest.raises(NotFound):
        permissions.set_image_visibility(db, eve.id, image.id, "public")
    with pytest.raises(NotFound):
        permissions.set_image_visibility(db, owner.id, image.id, "group", eves_group.id)
    with pytest.raises(InvalidRequest):
        permissions.set_image_visibility(db, owner.id, image.id, "everyone")
    with pytest.raises(InvalidRequest, match="choose the group"):
        permissions.set_image_visibility(db, owner.id, image.id, "group")
    permissions.set_image_visibility(db, owner.id, image.id, "public")
    assert permissions.can_view_image(db, None, image)


def test_every_combination_of_a_single_user_entry(db, people):
    """For one contact, every pair of (view entry, write entry) gives the documented answer."""
    owner, bob, cat, eve = people
    options = [None, True, False]  # no entry for bob, allow, deny
    for view_entry, write_entry in itertools.product(options, options):
        for kind, entry in (("view", view_entry), ("write", write_entry)):
            access = AccessList(kind, default=entry is None)
            if entry is True:
                access.allow_users = [bob.id]
            elif entry is False:
                access.deny_users = [bob.id]
            permissions.set_access_list(db, owner.id, access)
        may_write = write_entry is True and view_entry is not False
        may_view = view_entry is True or (view_entry is None) or may_write  # default view = contacts
        assert write(db, bob, owner) == may_write, (view_entry, write_entry)
        assert view(db, bob, owner) == may_view, (view_entry, write_entry)
        assert not view(db, eve, owner) and not write(db, eve, owner)
