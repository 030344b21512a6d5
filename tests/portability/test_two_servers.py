"""Clone sync between two real ``faces serve`` processes on loopback (two data directories, two free ports,
SQLite): A has no finder at all and is used to name faces, B detects (OpenCV only, one worker).

Every scenario ends by comparing the two libraries' export documents: equal faces (uuids, boxes, embeddings,
states, names, rejected names), names, finder marks and permissions.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from typer.testing import CliRunner

from faces.cli import app
from faces.config import load_settings
from faces.sharing import deletion
from faces.store.db import Store
from faces.store.models import ChangeLogEntry, Image, User

FACES = shutil.which("faces") or str(Path(sys.executable).parent / "faces")
PHOTOS = ["deepface_unit/img1.jpg", "deepface_unit/img2.jpg", "deepface_unit/img26.jpg"]
NO_FINDER = {"FACES_FINDERS__DLIB__ENABLED": "false", "FACES_FINDERS__OPENCV__ENABLED": "false"}
OPENCV_ONLY = {"FACES_FINDERS__DLIB__ENABLED": "false"}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One faces installation: a data directory, its command line, and its ``faces serve`` process."""

    def __init__(self, root: Path, name: str, env: dict[str, str]):
        self.name = name
        self.data_dir = root / name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
        self.env_overrides = {"FACES_WORKERS": "1", "FACES_DATABASE_URL": "", **env}
        self.env.update(self.env_overrides)
        self.process: subprocess.Popen | None = None

    def run(self, *args: str, ok: bool = True) -> Result:
        """The command line, in this process (the servers are real processes; the CLI starts in 3 s here)."""
        env = {k: None for k in os.environ if k.startswith("FACES_")}
        env.update(self.env_overrides)
        result = CliRunner().invoke(app, ["--data-dir", str(self.data_dir), *args], env=env)
        done = Result(result.exit_code, result.stdout, result.stderr)
        if ok:
            assert done.returncode == 0, f"{self.name}: faces {' '.join(args)}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json").stdout)

    def start(self) -> None:
        log = open(self.data_dir.parent / f"{self.name}-serve.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([FACES, "--data-dir", str(self.data_dir), "serve", "--port", str(self.port)],
                                        env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} did not start: see {log.name}"
            try:
                if httpx.get(f"{self.url}/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not answer within 90 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def export(self) -> dict:
        out = self.data_dir.parent / f"{self.name}-export.json.gz"
        self.run("export", str(out))
        document = json.loads(gzip.decompress(out.read_bytes()))
        for key in ("exported_at", "server_id"):
            document.pop(key)
        return document

    def faces(self) -> dict[str, dict]:
        return {f["uuid"]: f for f in self.json("faces")}

    def store(self) -> Store:
        return Store(f"sqlite:///{(self.data_dir / 'faces.db').resolve()}")

    def sync(self) -> None:
        self.run("sync", "now")


def _link(a: Server, b: Server) -> None:
    """Each pulls from the other with a token the other created."""
    for puller, source in ((a, b), (b, a)):
        token = source.run("sync", "token", "--label", puller.name).stdout.strip()
        puller.run("sync", "add-peer", source.url, token)


def _log(server: Server) -> list:
    store = server.store()
    with store.session() as s:
        rows = [(e.seq, e.entity, e.entity_uuid, e.op, e.origin, str(e.changed_at),
                 (e.data or {}).get("name") or (e.data or {}).get("name_text"), (e.data or {}).get("decided_at"))
                for e in s.scalars(select(ChangeLogEntry).order_by(ChangeLogEntry.seq))]
    store.dispose()
    return rows


def _converge(a: Server, b: Server, rounds: int = 3) -> None:
    for _ in range(rounds):
        a.sync()
        b.sync()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, data_root):
    """A's and B's data directories after adding the photos (done once; each test works on copies)."""
    root = tmp_path_factory.mktemp("scanned")
    a = Server(root, "a", NO_FINDER)
    b = Server(root, "b", OPENCV_ONLY)
    photos = [str(data_root / p) for p in PHOTOS]
    added = a.run("scan", *photos, ok=False)  # no finder here: the images are kept, detection waits
    assert "no finder" in added.stderr
    b.run("scan", *photos)
    return root


@pytest.fixture
def pair(scanned, tmp_path):
    shutil.copytree(scanned / "a", tmp_path / "a")
    shutil.copytree(scanned / "b", tmp_path / "b")
    a = Server(tmp_path, "a", NO_FINDER)
    b = Server(tmp_path, "b", OPENCV_ONLY)
    a.start()
    b.start()
    _link(a, b)
    yield a, b
    a.stop()
    b.stop()


def test_name_on_a_detect_on_b_both_see_both(pair):
    a, b = pair
    assert a.faces() == {}
    a.sync()
    seen_a, seen_b = a.faces(), b.faces()
    assert seen_a and seen_a.keys() == seen_b.keys()  # the detections of B, with B's uuids
    assert all(f["finders"] == ["opencv"] for f in seen_a.values())
    marks = {img["path"].rsplit("/", 1)[-1]: img["finders"] for img in a.json("images")}
    assert all(m.get("opencv", {}).get("status", m.get("opencv")) in ("done", "no_face") for m in marks.values()), marks
    first = sorted(seen_a.values(), key=lambda f: (f["image"], f["box"]))[0]
    a.run("name", str(first["id"]), "Angelina")  # the finderless clone names
    b.sync()
    named = b.faces()[first["uuid"]]
    assert named["state"] == "confirmed" and named["name"] == "Angelina"
    a.sync()  # nothing comes back: no echo
    assert a.export() == b.export()
    status = a.json("sync", "status")
    assert status["peers"][0]["last_error"] is None and status["peers"][0]["cursor"] > 0


def test_delete_on_one_gone_on_both(pair):
    a, b = pair
    _converge(a, b, 1)
    faces = b.faces()
    victim = sorted(faces.values(), key=lambda f: f["image"])[0]
    store = b.store()
    with store.session() as s:
        owner = s.scalar(select(User.id).where(User.username == "admin"))
        deletion.delete_image(s, owner, victim["image_id"], load_settings(b.data_dir, environ={}))
    store.dispose()
    a.sync()
    assert victim["uuid"] not in a.faces()
    assert a.faces().keys() == b.faces().keys()
    # "delete all my data" on A travels as one library deletion, and B's older changes do not bring it back
    store = a.store()
    with store.session() as s:
        owner = s.scalar(select(User.id).where(User.username == "admin"))
        deletion.delete_library_faces(s, owner, load_settings(a.data_dir, environ={}))
    store.dispose()
    _converge(a, b, 2)
    assert a.faces() == {} and b.faces() == {}
    ea, eb = a.export(), b.export()
    assert ea["names"] == eb["names"] == {} and ea["marks"] == eb["marks"] == []
    # photos are files of each machine: the image deleted on B is still A's photo, without faces
    assert len(ea.pop("images")) == len(eb.pop("images")) + 1
    assert ea == eb


def test_concurrent_conflicting_names_converge(pair):
    a, b = pair
    _converge(a, b, 1)
    faces = sorted(a.faces().values(), key=lambda f: (f["image"], f["box"]))
    one, two = faces[0], faces[1]
    # both sides name the same faces differently before they hear of each other
    a.run("name", str(one["id"]), "Ann")
    b_ids = {f["uuid"]: f["id"] for f in b.faces().values()}
    b.run("name", str(b_ids[one["uuid"]]), "Anna")
    b.run("name", str(b_ids[two["uuid"]]), "Ann")  # the same new name created on both sides: one name
    a.run("ignore", str(two["id"]))
    _converge(a, b, 2)
    fa, fb = a.faces(), b.faces()
    assert fa[one["uuid"]]["name"] == fb[one["uuid"]]["name"]
    assert fa[two["uuid"]]["state"] == fb[two["uuid"]]["state"]
    assert a.export() == b.export()
    names = a.export()["names"]
    assert len({n["name"] for n in names.values()}) == len(names)  # no name twice


def test_kill_9_mid_sync_restart_converge(pair):
    a, b = pair
    # A syncs by itself every second; B keeps changing names while A is killed at random moments
    a.stop()
    a.env["FACES_SYNC_INTERVAL"] = "1"
    a.start()
    _converge(a, b, 1)
    b_faces = sorted(b.faces().values(), key=lambda f: f["id"])
    rng = random.Random(8)
    for round_ in range(4):
        for face in b_faces:
            b.run("name", str(face["id"]), f"Person {rng.randrange(3)} {round_}")
        time.sleep(rng.uniform(0.2, 1.5))
        a.kill()
        if round_ == 2:
            b.kill()  # the other side dies too
            b.start()
        a.start()
    b.run("name", str(b_faces[0]["id"]), "Final")
    _converge(a, b, 2)
    ea, eb = a.export(), b.export()
    if ea != eb:  # say what differs, and where it came from
        (a.data_dir.parent / "diff.json").write_text(json.dumps({"a": ea, "b": eb, "log_a": _log(a), "log_b": _log(b)},
                                                                indent=1))
    assert ea == eb
    assert a.faces()[b_faces[0]["uuid"]]["name"] == "Final"


def test_export_from_one_import_into_a_third(pair, tmp_path, data_root):
    a, b = pair
    _converge(a, b, 1)
    face = sorted(a.faces().values(), key=lambda f: f["id"])[0]
    a.run("name", str(face["id"]), "Angelina")
    a.run("sync", "now")
    out = tmp_path / "library.json.gz"
    a.run("export", str(out))
    c = Server(tmp_path, "c", NO_FINDER)
    c.run("scan", *(str(data_root / p) for p in PHOTOS[:2]), ok=False)
    first = c.run("import", str(out))
    assert "not here yet" in first.stdout
    c.run("scan", str(data_root / PHOTOS[2]), ok=False)  # the last photo arrives: its faces attach
    assert c.export() == a.export()
    again = c.run("import", str(out))
    assert "Nothing to change" in again.stdout
    assert c.export() == a.export()
    damaged = tmp_path / "damaged.json.gz"
    damaged.write_bytes(out.read_bytes()[: len(out.read_bytes()) // 2])
    refused = c.run("import", str(damaged), ok=False)
    assert refused.returncode == 1 and "nothing changed" in refused.stderr
    assert c.export() == a.export()
