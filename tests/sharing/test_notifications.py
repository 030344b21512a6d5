"""Tagging a contact notifies them after the naming transaction commits; optionally by e-mail."""

import socketserver
import threading

import pytest
from sqlalchemy import select

from faces import events
from faces.sharing import admin_settings, notifications
from faces.sharing.errors import NotFound
from faces.store.models import Name, Notification

from .conftest import connect, make_face, make_image, make_name, make_user


def tag(store, owner, contact, actor=None):
    """Name a face of ``owner`` after ``contact`` and emit face_tagged the way the naming actions do."""
    with store.session() as s:
        name = s.scalar(select(Name).where(Name.owner_id == owner.id, Name.contact_user_id == contact.id))
        name = name or make_name(s, owner, contact.username.capitalize(), contact)
        face = make_face(s, make_image(s, owner), name=name)
        events.emit_after_commit(s, "face_tagged", owner_id=owner.id, face_id=face.id,
                                 contact_user_id=contact.id, actor_id=(actor or owner).id)
    return face


@pytest.fixture
def pair(store):
    with store.session() as s:
        owner, bob = make_user(s, "owner"), make_user(s, "bob", email="bob@example.org")
        connect(s, owner, bob)
    return owner, bob


def test_tagging_creates_one_unread_notification_after_commit(store, pair):
    owner, bob = pair
    face = tag(store, owner, bob)
    with store.session() as s:
        assert notifications.unread_count(s, bob.id) == 1
        [note] = notifications.list_notifications(s, bob.id)
        assert note.text == "Owner tagged you in a photo."
        assert note.link == f"/me/photos#face-{face.id}" and not note.read
        assert notifications.unread_count(s, owner.id) == 0
    # the same face tagged again while unread: still one notification
    with store.session() as s:
        events.emit_after_commit(s, "face_tagged", owner_id=owner.id, face_id=face.id, contact_user_id=bob.id,
                                 actor_id=owner.id)
    with store.session() as s:
        assert notifications.unread_count(s, bob.id) == 1


def test_rolled_back_tagging_sends_nothing(store, pair):
    owner, bob = pair
    with pytest.raises(RuntimeError):
        with store.session() as s:
            name = make_name(s, owner, "Bob", bob)
            face = make_face(s, make_image(s, owner), name=name)
            events.emit_after_commit(s, "face_tagged", owner_id=owner.id, face_id=face.id,
                                     contact_user_id=bob.id, actor_id=owner.id)
            raise RuntimeError("naming failed")
    with store.session() as s:
        assert notifications.unread_count(s, bob.id) == 0


def test_event_about_a_face_not_named_after_that_user_is_ignored(store, pair):
    owner, bob = pair
    with store.session() as s:
        eve = make_user(s, "eve")
        face = make_face(s, make_image(s, owner), name=make_name(s, owner, "Bob", bob))
        events.emit_after_commit(s, "face_tagged", owner_id=owner.id, face_id=face.id, contact_user_id=eve.id,
                                 actor_id=owner.id)
    with store.session() as s:
        assert notifications.unread_count(s, eve.id) == 0


def test_strangers_get_no_notification(store, pair):
    owner, _ = pair
    with store.session() as s:
        eve = make_user(s, "eve")
    tag(store, owner, eve)  # eve's account linked to a name, but eve is not owner's contact
    with store.session() as s:
        assert notifications.unread_count(s, eve.id) == 0


def test_mark_read_only_own(store, pair):
    owner, bob = pair
    tag(store, owner, bob)
    tag(store, owner, bob)
    with store.session() as s:
        first, second = notifications.list_notifications(s, bob.id)
        with pytest.raises(NotFound):
            notifications.mark_read(s, owner.id, first.id)
        assert notifications.mark_read(s, bob.id, first.id) == 1
        assert notifications.unread_count(s, bob.id) == 1
        assert notifications.mark_read(s, bob.id) == 1
        assert notifications.unread_count(s, bob.id) == 0


def test_writer_tagging_names_the_writer(store, pair):
    owner, bob = pair
    with store.session() as s:
        cat = make_user(s, "cat")
        connect(s, owner, cat)
    tag(store, owner, bob, actor=cat)
    with store.session() as s:
        assert notifications.list_notifications(s, bob.id)[0].text == "Cat tagged you in a photo of Owner."


class _SMTPHandler(socketserver.StreamRequestHandler):
    """A minimal SMTP server: enough of RFC 5321 for smtplib to deliver one message."""

    def handle(self):
        def say(line):
            self.wfile.write(line.encode() + b"\r\n")

        say("220 test ready")
        data = False
        lines = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if data:
                if line == ".":
                    data = False
                    self.server.messages.append("\n".join(lines))
                    say("250 queued")
                else:
                    lines.append(line)
                continue
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                say("250 test")
            elif verb == "DATA":
                data = True
                say("354 go on")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")


def test_tagging_sends_an_email_when_smtp_is_set(store, pair, settings):
    owner, bob = pair
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = settings
    base.smtp.host, base.smtp.port, base.smtp.sender = "127.0.0.1", server.server_address[1], "faces@example.org"
    base.base_url = "https://faces.example.org"
    try:
        with store.session() as s:
            admin_settings.effective_settings(s, base)  # the web app does this; it makes base the process's
        tag(store, owner, bob)
        notifications.last_mail_thread.join(10)
    finally:
        server.shutdown()
        server.server_close()
    [message] = server.messages
    assert "To: bob@example.org" in message
    assert "Owner tagged you in a photo." in message
    assert "https://faces.example.org/me/photos" in message
    with store.session() as s:
        assert s.scalar(select(Notification.kind)) == "tagged"
