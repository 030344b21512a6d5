"""A scan killed with SIGKILL half way resumes at the next start: no duplicate faces, no lost images, and
exactly the faces of one uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from faces.config import load_settings
from faces.store.models import FinderStatus, ImageFinder
from tests.cli.conftest import FACES, clean_env

PHOTO_NAMES = ["faceapi_bbt/scenes/*.jpg", "dlib_faces_gt/dev/200*.jpg"]  # 16 small photos, 1 to 7 faces


def photos(data_root: Path) -> list[Path]:
    files = sorted(p for pattern in PHOTO_NAMES for p in data_root.glob(pattern))
    assert 15 <= len(files) <= 20
    return files


def faces_per_image(env: dict) -> dict[str, list]:
    """content hash -> sorted [(box, finders)] of the library, from the JSON outputs."""
    run = lambda *a: json.loads(subprocess.run([FACES, *a], env=env, capture_output=True, text=True,  # noqa: E731
                                               check=True).stdout)
    hashes = {i["id"]: i["content_hash"] for i in run("images", "--json")}
    result: dict[str, list] = {h: [] for h in hashes.values()}
    for face in run("faces", "--json"):
        result[hashes[face["image_id"]]].append((tuple(face["box"]), tuple(face["finders"])))
    return {h: sorted(v) for h, v in result.items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root) -> dict[str, list]:
    """The faces of one uninterrupted scan of the photos (SQLite), to compare with."""
    base = tmp_path_factory.mktemp("uninterrupted")
    settings = load_settings(base / "data", environ={})
    env = clean_env(settings, FACES_WORKERS="1")
    subprocess.run([FACES, "scan", *map(str, photos(data_root))], env=env, capture_output=True, check=True)
    return faces_per_image(env)


def _processed(store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(ImageFinder)
                              .where(ImageFinder.status != FinderStatus.PENDING)) or 0


def test_killed_scan_resumes_with_exactly_the_faces_of_one_run(settings, store, data_root, uninterrupted):
    files = photos(data_root)
    env = clean_env(settings, FACES_WORKERS="1")
    scan = subprocess.Popen([FACES, "scan", "--json", *map(str, files)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _processed(store) < 2 * 3:  # three images written with both finders
        assert scan.poll() is None, f"the scan ended before it could be killed: {scan.stderr.read()!r}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(scan.pid, signal.SIGKILL)
    scan.wait()
    done_at_kill = _processed(store)
    assert done_at_kill < 2 * len(files), "the scan had finished: nothing was interrupted"

    resumed = json.loads(subprocess.run([FACES, "scan", "--json", *map(str, files)], env=env, capture_output=True,
                                        text=True, check=True).stdout)
    assert resumed["added"] == 0 and resumed["duplicates"] == len(files)  # nothing lost, nothing added twice
    assert 0 < resumed["images"] < len(files)  # only what was still pending
    assert resumed["errors"] == 0
    assert faces_per_image(env) == uninterrupted
    assert _processed(store) == 2 * len(files)
