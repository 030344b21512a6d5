"""The web page in a real browser: Playwright drives Debian's Chromium against a real ``faces serve`` (SQLite).

Screenshots of the main pages go to ``$FACES_ARTIFACTS`` (scripts/test.sh sets it; default: a temporary folder).
"""

from __future__ import annotations

import base64
import csv
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IDENTITY = "robert_downey_jr"
XSS = "<img src=x onerror=alert(1)>"


def _artifacts() -> Path:
    folder = Path(os.environ.get("FACES_ARTIFACTS") or Path(tempfile.gettempdir()) / "faces-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _photos_of_one_person(data_root: Path, count: int) -> list[Path]:
    with (data_root / "identities.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["identity"] == IDENTITY]
    paths = sorted(data_root / row["path_from_data_root"] for row in rows)
    assert len(paths) >= count, f"identities.csv has {len(paths)} photos of {IDENTITY}"
    return paths[:count]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``faces serve`` on a free port with a fresh data directory; yields (url, admin password)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("served")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    env.update(FACES_DATA_DIR=str(data_dir / "data"), FACES_WORKERS="1", PYTHONUNBUFFERED="1")
    log = (data_dir / "server.out").open("w+")
    process = subprocess.Popen([sys.executable, "-c", "from faces.cli import main; main()", "serve", "--port",
                                str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    password = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"faces serve exited: {log.read()}")
        log.seek(0)
        found = re.search(r"with the password: (\S+)", log.read())
        if found:
            password = found.group(1)
            try:
                if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("faces serve did not start in 60 s")
    _server_files.append(data_dir)
    yield url, password
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A logged-in page (a fresh browser context), failing the test on any JavaScript error or alert."""
    url, password = server
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"JavaScript error: {exc}"))
    page.on("dialog", lambda dialog: (problems.append(f"a dialog opened: {dialog.message}"), dialog.dismiss()))
    page.goto("/")
    assert page.url.endswith("/login?next=%2F")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("#auth-submit")
    page.wait_for_url(url + "/")
    page.problems = problems
    yield page
    context.close()
    assert problems == []


_server_files: list[Path] = []


def wait_until(page, expression: str, timeout: float = 30_000) -> None:
    """Wait until the JavaScript ``expression`` is true; on timeout, fail with the server's log and the
    detection status (detection runs in the server, so that is where a slow or failed run shows)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {expression}", timeout=timeout)
    except PlaywrightTimeout:
        status = page.evaluate("async () => (await fetch('/api/detection')).text()")
        logs = ""
        for folder in _server_files:
            for name in ("server.out", "data/faces.log"):
                if (folder / name).exists():
                    logs += f"--- {name}\n" + (folder / name).read_text()[-4000:]
        pytest.fail(f"timed out after {timeout / 1000:.0f} s waiting for {expression}\n"
                    f"detection: {status}\n{logs}")


def shot(page, name: str) -> None:
    page.wait_for_timeout(300)  # let images fade in
    page.screenshot(path=str(_artifacts() / f"{name}.png"))


def _frames(page, selector: str = ".tile .frame"):
    return page.locator(selector)


def test_upload_name_guess_confirm_people_and_search(page, server, data_root):
    url, _ = server
    photos = _photos_of_one_person(data_root, 4)
    shot(page, "01-empty-gallery")

    page.set_input_files("#file-input", [str(p) for p in photos])
    page.wait_for_selector("#upload-title:has-text('4 photos added')", timeout=60_000)
    assert page.locator("#upload-list li.ok").count() == 4
    # detection starts by itself; the page shows its progress and then the frames
    wait_until(page, "document.querySelectorAll('.tile .frame').length >= 4", 180_000)
    page.wait_for_selector("#detection-pill", state="hidden", timeout=60_000)
    assert _frames(page).count() == 4
    assert _frames(page, ".tile .frame.unnamed").count() == 4
    shot(page, "02-gallery-frames")

    # name one face in place
    first = _frames(page).first
    first.click()
    page.wait_for_selector(".editor")
    page.fill("#face-name-input", "Robert")
    shot(page, "03-editor")
    page.keyboard.press("Enter")
    page.wait_for_selector(".editor", state="detached")
    page.wait_for_selector(".tile .frame.confirmed .frame-label:text-is('Robert')")
    # the guesses appear on the other photos without reloading the page
    wait_until(page, "document.querySelectorAll('.tile .frame.guessed').length === 3", 30_000)
    labels = page.locator(".tile .frame.guessed .frame-label").all_inner_texts()
    assert labels == ["Robert?"] * 3
    shot(page, "04-gallery-guesses")

    # confirm one guess
    page.locator(".tile .frame.guessed").first.click()
    page.wait_for_selector("#face-confirm")
    shot(page, "05-editor-guess")
    page.click("#face-confirm")
    wait_until(page, "document.querySelectorAll('.tile .frame.confirmed').length === 2")
    assert page.locator(".tile .frame.guessed").count() == 2

    # full size with a double-click
    page.locator(".tile").first.dblclick(position={"x": 10, "y": 10})
    page.wait_for_selector(".lightbox-figure img")
    wait_until(page, "document.querySelector('.lightbox-figure img').naturalWidth > 0")
    assert page.locator(".lightbox .frame").count() == 1
    shot(page, "06-full-size")
    page.click("#lightbox-close")

    # hide the frames with the switch
    page.locator("label.switch:has(#show-frames)").click()
    assert not page.locator(".tile .frame").first.is_visible()
    page.locator("label.switch:has(#show-frames)").click()
    assert page.locator(".tile .frame").first.is_visible()

    # zoom: one photo a row
    page.locator("#zoom").fill("1")
    assert page.locator(".gallery-row").first.locator(".tile").count() == 1
    page.locator("#zoom").fill("4")

    # the person on the people page
    page.click("nav >> text=People")
    card = page.locator(".person", has_text="Robert")
    card.wait_for()
    assert "2 photos" in card.inner_text() and "2 guessed" in card.inner_text()
    shot(page, "07-people")
    card.locator("a.name").click()
    page.wait_for_selector("#person-name:text-is('Robert')")
    wait_until(page, "document.querySelectorAll('.tile').length === 2")
    shot(page, "08-person")

    # search by name
    page.goto("/search")
    page.fill("#search-name-input", "rob")
    page.locator(".suggestions li", has_text="Robert").click()
    page.click("#search-submit")
    page.wait_for_selector("#result-count:has-text('2 photos found')")
    assert page.locator(".tile").count() == 2
    shot(page, "09-search")

    # groups page renders (the two guessed faces may form a group)
    page.goto("/groups")
    page.wait_for_selector(".group-card, #groups-empty:not([hidden])")
    shot(page, "10-groups")


def test_a_name_with_markup_stays_text(page):
    page.wait_for_selector(".tile .frame")
    frame = page.locator(".tile .frame").last
    frame.click()
    page.fill("#face-name-input", XSS)
    page.keyboard.press("Enter")
    label = page.locator(".tile .frame.confirmed .frame-label", has_text="onerror")
    label.wait_for()
    assert label.inner_text() == XSS
    assert page.locator("img[src='x']").count() == 0
    page.goto("/people")
    page.locator(".person .name", has_text="onerror").wait_for()
    assert page.locator(".person .name", has_text="onerror").inner_text() == XSS
    assert page.locator("img[src='x']").count() == 0
    shot(page, "11-xss-name-as-text")
    # put the face back to unnamed for the other tests
    page.goto("/")
    page.locator(".tile .frame.confirmed", has_text="onerror").click()
    page.click("#face-reset")
    page.wait_for_selector(".tile .frame-label:has-text('onerror')", state="detached")


def test_a_state_change_without_the_csrf_token_is_refused(page):
    page.wait_for_selector(".tile .frame")
    face_id = page.locator(".tile .frame").first.get_attribute("data-face-id")
    result = page.evaluate("""async (id) => {
        const bare = await fetch(`/api/faces/${id}/ignore`, {method: "POST"});
        const forged = await fetch(`/api/faces/${id}/ignore`, {method: "POST", headers: {"X-CSRF-Token": "forged"}});
        const face = await (await fetch(`/api/faces/${id}`)).json();
        return {bare: bare.status, forged: forged.status, detail: (await bare.json()).detail, state: face.state};
    }""", face_id)
    assert result["bare"] == 403 and result["forged"] == 403
    assert "CSRF" in result["detail"]
    assert result["state"] != "ignored"


def test_drop_a_photo_on_the_page(page, data_root):
    photo = _photos_of_one_person(data_root, 5)[4]
    data = base64.b64encode(photo.read_bytes()).decode()
    page.wait_for_selector(".tile")
    before = page.locator(".tile").count()
    page.evaluate("""([name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
        document.dispatchEvent(new DragEvent("dragenter", {dataTransfer: transfer, bubbles: true}));
        document.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [photo.name, data])
    page.wait_for_selector("#upload-title:has-text('1 photo added')", timeout=60_000)
    wait_until(page, f"document.querySelectorAll('.tile').length === {before + 1}")
    # its face is found and guessed like the others
    wait_until(page, "document.querySelectorAll('.tile .frame').length >= 5", 180_000)


def test_the_gallery_on_a_phone(browser, server):
    url, password = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True,
                                  is_mobile=True, base_url=url)
    page = context.new_page()
    page.goto("/login")
    shot(page, "12-phone-login")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("#auth-submit")
    page.wait_for_selector(".tile .frame")
    shot(page, "13-phone-gallery")
    page.locator(".tile .frame").first.tap()
    page.wait_for_selector(".editor")
    box = page.locator(".editor").bounding_box()
    assert box["width"] == pytest.approx(390, abs=2)  # a sheet across the bottom of the screen
    shot(page, "14-phone-editor")
    context.close()
