"""Contacts and groups: requests, answers, removal, group membership only for contacts."""

import pytest

from faces.sharing import contacts, groups
from faces.sharing.errors import InvalidRequest, NotFound
from faces.store.models import ContactStatus

from .conftest import connect, make_user


def test_request_accept_makes_contacts_both_ways(db):
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    request = contacts.request_contact(db, ann.id, "bob")
    assert not contacts.are_contacts(db, ann.id, bob.id)
    incoming, outgoing = contacts.pending_requests(db, bob.id)
    assert [c.username for c in incoming] == ["ann"] and outgoing == []
    assert [c.username for c in contacts.pending_requests(db, ann.id)[1]] == ["bob"]
    contacts.respond(db, bob.id, request.id, accept=True)
    assert contacts.are_contacts(db, ann.id, bob.id) and contacts.are_contacts(db, bob.id, ann.id)
    assert [c.username for c in contacts.list_contacts(db, ann.id)] == ["bob"]
    assert [c.username for c in contacts.list_contacts(db, bob.id)] == ["ann"]


def test_only_the_asked_user_answers(db):
    ann, bob, eve = make_user(db, "ann"), make_user(db, "bob"), make_user(db, "eve")
    request = contacts.request_contact(db, ann.id, "bob")
    with pytest.raises(NotFound):
        contacts.respond(db, eve.id, request.id, accept=True)
    with pytest.raises(NotFound):
        contacts.respond(db, ann.id, request.id, accept=True)  # the asker cannot accept their own request
    assert not contacts.are_contacts(db, ann.id, bob.id)


def test_decline_then_ask_again_and_mutual_request(db):
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    request = contacts.request_contact(db, ann.id, "bob")
    contacts.respond(db, bob.id, request.id, accept=False)
    assert request.status == ContactStatus.DECLINED
    assert not contacts.are_contacts(db, ann.id, bob.id)
    with pytest.raises(NotFound):
        contacts.respond(db, bob.id, request.id, accept=True)  # not pending any more
    again = contacts.request_contact(db, ann.id, "bob")
    assert again.status == ContactStatus.PENDING
    with pytest.raises(InvalidRequest, match="pending"):
        contacts.request_contact(db, ann.id, "bob")
    contacts.request_contact(db, bob.id, "ann")  # bob asks back: both want it
    assert contacts.are_contacts(db, ann.id, bob.id)
    with pytest.raises(InvalidRequest, match="already your contact"):
        contacts.request_contact(db, ann.id, "bob")


def test_bad_requests(db):
    ann = make_user(db, "ann")
    with pytest.raises(NotFound, match="no user named"):
        contacts.request_contact(db, ann.id, "nobody")
    with pytest.raises(InvalidRequest, match="yourself"):
        contacts.request_contact(db, ann.id, "ann")


def test_groups_hold_only_contacts_and_removal_leaves_groups(db):
    ann, bob, eve = make_user(db, "ann"), make_user(db, "bob"), make_user(db, "eve")
    connect(db, ann, bob)
    family = groups.create_group(db, ann.id, "  Family  ")
    assert family.name == "Family"
    with pytest.raises(InvalidRequest, match="already have a group"):
        groups.create_group(db, ann.id, "Family")
    with pytest.raises(InvalidRequest, match="needs a name"):
        groups.create_group(db, ann.id, "   ")
    groups.add_member(db, ann.id, family.id, bob.id)
    with pytest.raises(InvalidRequest, match="only your contacts"):
        groups.add_member(db, ann.id, family.id, eve.id)
    with pytest.raises(NotFound):
        groups.add_member(db, eve.id, family.id, bob.id)  # eve cannot touch ann's group
    assert [(g.name, [m.username for m in g.members]) for g in groups.list_groups(db, ann.id)] == [
        ("Family", ["bob"])]
    assert groups.group_ids_of_member(db, ann.id, bob.id) == {family.id}
    contacts.remove_contact(db, bob.id, ann.id)  # either side may end it
    assert not contacts.are_contacts(db, ann.id, bob.id)
    assert groups.group_ids_of_member(db, ann.id, bob.id) == set()
    assert groups.list_groups(db, ann.id)[0].members == []
    with pytest.raises(NotFound):
        contacts.remove_contact(db, bob.id, ann.id)


def test_rename_and_delete_group(db):
    ann, eve = make_user(db, "ann"), make_user(db, "eve")
    a = groups.create_group(db, ann.id, "A")
    groups.create_group(db, ann.id, "B")
    with pytest.raises(InvalidRequest):
        groups.rename_group(db, ann.id, a.id, "B")
    groups.rename_group(db, ann.id, a.id, "Friends")
    with pytest.raises(NotFound):
        groups.delete_group(db, eve.id, a.id)
    groups.delete_group(db, ann.id, a.id)
    assert [g.name for g in groups.list_groups(db, ann.id)] == ["B"]
