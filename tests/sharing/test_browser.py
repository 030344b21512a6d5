"""In a real browser (Debian's Chromium): the owner tags a contact, the contact sees the notification, opens
"photos of me", removes themselves, and the owner can no longer tag that face. Screenshots go to
$FACES_ARTIFACTS (or the test's temporary folder)."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from faces.sharing import contacts
from faces.store.models import Face, FaceState, Image, Notification, Visibility

from .webapp import PASSWORD, WebLibrary

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(settings, store, data_root):
    """The app served by uvicorn on a free local port, in a thread."""
    import uvicorn

    settings.finders["dlib"].enabled = False
    settings.finders["opencv"].enabled = False
    web = WebLibrary(settings, store, data_root / "public_domain_faces" / "astronaut.png")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(web.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the web server did not start")
        time.sleep(0.05)
    web.base_url = f"http://127.0.0.1:{port}"
    yield web
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("FACES_ARTIFACTS") or tmp_path) / "sharing"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _login(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#auth-submit")
    page.wait_for_url(re.compile(r".*/$"))


@pytest.mark.browser
def test_tag_notify_photos_of_me_remove(server, artifacts, database_url):
    if not database_url.startswith("sqlite") and len(os.environ.get("FACES_TEST_DATABASES", "sqlite").split(",")) > 1:
        pytest.skip("the browser flow runs once, on SQLite; the permission logic runs on every backend")
    from playwright.sync_api import expect, sync_playwright

    web = server
    owner_id, bob_id = web.user("owner", display_name="Owner"), web.user("bob", display_name="Bob")
    with web.store.session() as s:
        request = contacts.request_contact(s, owner_id, "bob")
        contacts.respond(s, bob_id, request.id, True)
    face_id = web.face(owner_id)  # the astronaut's face, unnamed, in a photo bob may view (contacts)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            owner = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
            _login(owner, web.base_url, "owner")
            frame = owner.locator(f'button.frame[data-face-id="{face_id}"]')
            frame.click()
            owner.fill("#face-name-input", "bo")
            option = owner.locator('[role="option"]', has_text="contact @bob")
            expect(option).to_be_visible()
            owner.screenshot(path=str(artifacts / "1-owner-picks-contact.png"))
            option.dispatch_event("pointerdown")
            expect(frame).to_have_class(re.compile(r"\bconfirmed\b"))
            expect(frame).to_contain_text("Bob")
            owner.screenshot(path=str(artifacts / "2-owner-tagged-bob.png"))
            with web.store.session() as s:
                face = s.get(Face, face_id)
                assert face.state == FaceState.CONFIRMED and face.name.contact_user_id == bob_id

            bob = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
            _login(bob, web.base_url, "bob")
            badge = bob.locator('.mainnav a[href="/me/photos"] .sharing-badge')
            expect(badge).to_have_text("1")
            bob.screenshot(path=str(artifacts / "3-bob-sees-unread-count.png"))
            bob.click('.mainnav a[href="/me/photos"]')
            expect(bob.locator("#notes li.unread")).to_contain_text("Owner tagged you in a photo.")
            card = bob.locator(f"#face-{face_id}")
            expect(card).to_contain_text("In a photo of Owner")
            expect(card.locator("img")).to_have_js_property("complete", True)
            assert card.locator("img").evaluate("img => img.naturalWidth") > 0  # bob may view it: his face
            bob.screenshot(path=str(artifacts / "4-bob-photos-of-me.png"), full_page=True)
            card.get_by_role("button", name="Remove me").click()
            expect(bob.locator("#remove-dialog")).to_be_visible()
            bob.screenshot(path=str(artifacts / "5-bob-confirms-removal.png"))
            bob.click("#remove-confirm")
            expect(card).to_have_count(0)
            expect(bob.locator("#photos")).to_contain_text("Nobody has tagged you")
            bob.screenshot(path=str(artifacts / "6-bob-removed.png"), full_page=True)

            owner.reload()
            expect(owner.locator(".tile").first).to_be_visible()
            expect(owner.locator(f'button.frame[data-face-id="{face_id}"]')).to_have_count(0)
            answer = owner.evaluate("""async (faceId) => {
                const token = document.querySelector('meta[name="csrf-token"]').content;
                const r = await fetch(`/api/faces/${faceId}/name`, {method: "POST", headers: {
                    "Content-Type": "application/json", "X-CSRF-Token": token}, body: JSON.stringify({name: "Bob"})});
                return {status: r.status, body: await r.json()};
            }""", face_id)
            owner.screenshot(path=str(artifacts / "7-owner-face-gone.png"))
        finally:
            browser.close()
    assert answer["status"] == 409, answer
    assert "removed themselves" in answer["body"]["detail"]
    with web.store.session() as s:
        face = s.get(Face, face_id)
        assert face.state == FaceState.REMOVED and face.name_id is None
        assert s.query(Notification).filter_by(user_id=bob_id).count() == 0


@pytest.mark.browser
def test_lock_dialog_shows_what_is_set_and_admin_page(server, artifacts, database_url):
    if not database_url.startswith("sqlite") and len(os.environ.get("FACES_TEST_DATABASES", "sqlite").split(",")) > 1:
        pytest.skip("the browser flow runs once, on SQLite; the permission logic runs on every backend")
    from playwright.sync_api import expect, sync_playwright

    from faces.sharing import permissions

    web = server
    owner_id = web.user("owner", display_name="Owner", admin=True)
    bob_id, cat_id = web.user("bob", display_name="Bob"), web.user("cat", display_name="Cat")
    with web.store.session() as s:
        for other, other_id in (("bob", bob_id), ("cat", cat_id)):
            contacts.respond(s, other_id, contacts.request_contact(s, owner_id, other).id, True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            _login(page, web.base_url, "owner")
            page.goto(f"{web.base_url}/sharing")
            expect(page.locator("#contacts")).to_contain_text("Bob")
            page.fill("#group-name", "Family")
            page.click("#group-form button[type=submit]")
            expect(page.locator("#groups")).to_contain_text("Family")
            expect(page.locator("#lock-write-summary")).to_have_text("default")
            page.click("#lock-write")
            page.select_option(f'#lock-rows select[name="user-{bob_id}"]', "allow")
            page.select_option(f'#lock-rows select[name="user-{cat_id}"]', "deny")
            page.screenshot(path=str(artifacts / "8-owner-write-lock-dialog.png"))
            page.click("#lock-save")
            expect(page.locator("#lock-dialog")).to_be_hidden()
            expect(page.locator("#lock-write-summary")).to_have_text("1 allowed, 1 denied")
            page.reload()
            page.click("#lock-write")
            expect(page.locator(f'#lock-rows select[name="user-{bob_id}"]')).to_have_value("allow")
            expect(page.locator(f'#lock-rows select[name="user-{cat_id}"]')).to_have_value("deny")
            expect(page.locator("#mode-custom")).to_be_checked()
            page.click("#lock-cancel")
            page.screenshot(path=str(artifacts / "9-owner-sharing-page.png"), full_page=True)
            with web.store.session() as s:
                assert permissions.can_write_library(s, bob_id, owner_id)
                assert not permissions.can_write_library(s, cat_id, owner_id)

            # the photo visibility control that pages mount for the owner's own photos
            image_id = web.image(owner_id)
            page.evaluate("""async (imageId) => {
                const {visibilityControl} = await import("/static/js/sharing_visibility.js");
                document.querySelector("main").prepend(visibilityControl(imageId));
            }""", image_id)
            control = page.get_by_label("Who may view this photo")
            expect(control).to_be_enabled()
            expect(control).to_have_value("contacts")
            control.select_option(label="Group: Family")
            expect(page.locator(".toast").last).to_contain_text("Saved")
            with web.store.session() as s:
                image = s.get(Image, image_id)
                assert image.visibility == Visibility.GROUP and image.visibility_group_id is not None

            page.goto(f"{web.base_url}/admin")
            expect(page.locator('[data-finder="dlib"]')).to_be_visible()
            min_size = page.locator('input[name="finders.dlib.min_face_size"]')
            min_size.fill("48")
            page.click("#admin-save")
            expect(page.locator(".toast")).to_contain_text("apply now")
            page.screenshot(path=str(artifacts / "10-admin-page.png"), full_page=True)
            page.reload()
            expect(page.locator('input[name="finders.dlib.min_face_size"]')).to_have_value("48")
        finally:
            browser.close()
    from faces.sharing.admin_settings import effective_settings

    with web.store.session() as s:
        assert effective_settings(s, web.settings).finders["dlib"].min_face_size == 48
