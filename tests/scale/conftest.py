"""Real Celery workers (``faces worker`` processes) on real brokers, for the distributed detection tests.

Each test gets its own queue name, so that parallel test runs on the shared Redis and RabbitMQ never take each
other's tasks; the broker-restart test starts a Redis server of its own on a free port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

FACES = str(Path(sys.executable).with_name("faces"))
SHARED_REDIS = "redis://127.0.0.1:6379/0"
SHARED_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
PHOTOS = ["faceapi_bbt/scenes/bbt1.jpg", "faceapi_bbt/scenes/bbt2.jpg", "faceapi_bbt/scenes/bbt3.jpg",
          "faceapi_bbt/scenes/bbt4.jpg", "faceapi_bbt/scenes/bbt5.jpg", "faceapi_bbt/scenes/angry.jpg",
          "no_face/sklearn/china.jpg", "no_face/sklearn/flower.jpg",
          # big group photos: tasks long enough (even on OpenCV 5) for a worker to be killed inside one
          "wikimedia_commons_people/bildes/Abstract_Wikipedia_Team_-_Group_photo,_2022-05-12.jpg",
          "wikimedia_commons_people/bildes/Rumba_Kings_Band_Group_Photo_2023.jpg",
          "wikimedia_commons_people/bildes/7588423560_bf88d0bc79_k.jpg"]


def base_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a ``faces`` process: its data directory and database, the opencv finder only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    env.update(FACES_DATA_DIR=str(data_dir), FACES_DATABASE_URL=database_url, FACES_FINDERS__DLIB__ENABLED="false",
               FACES_WORKERS="1")
    env.update(extra)
    return env


def photo_folder(data_root: Path, where: Path) -> Path:
    """A folder of symbolic links to :data:`PHOTOS` (the test photos, never copied)."""
    where.mkdir(parents=True, exist_ok=True)
    for rel in PHOTOS:
        (where / rel.replace("/", "_")).symlink_to(data_root / rel)
    return where


def faces_of(database_url: str) -> dict[str, list]:
    """Per image file name: finder statuses and the faces (box, finder, embedding) found, in a stable order."""
    import numpy as np
    from sqlalchemy import select

    from faces.store.db import Store
    from faces.store.models import Embedding, Face, Image, ImageFinder

    store = Store(database_url)
    out: dict[str, list] = {}
    try:
        with store.session() as s:
            for image in s.scalars(select(Image)):
                statuses = sorted((r.finder, r.status.value) for r in
                                  s.scalars(select(ImageFinder).where(ImageFinder.image_id == image.id)))
                faces = []
                for face in s.scalars(select(Face).where(Face.image_id == image.id)):
                    for emb in s.scalars(select(Embedding).where(Embedding.face_id == face.id)):
                        vector = np.frombuffer(emb.vector, dtype=np.float32)
                        faces.append(((face.x, face.y, face.w, face.h), emb.finder, vector))
                faces.sort(key=lambda f: (f[0], f[1]))
                out[Path(image.path).name] = [statuses, faces]
    finally:
        store.dispose()
    return out


def assert_same_faces(got: dict, expected: dict) -> None:
    """The same images, statuses and boxes; embeddings equal to float32 rounding."""
    import numpy as np

    assert sorted(got) == sorted(expected)
    for name in expected:
        (g_status, g_faces), (e_status, e_faces) = got[name], expected[name]
        assert g_status == e_status, name
        assert [(b, f) for b, f, _ in g_faces] == [(b, f) for b, f, _ in e_faces], name
        for (_, _, gv), (_, _, ev) in zip(g_faces, e_faces):
            assert np.allclose(gv, ev, atol=1e-5), name
    assert sum(len(v[1]) for v in expected.values()) > 5  # the photos do have faces


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throw-away ``redis-server`` on a free port, without persistence, that the test may restart."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def pytest_configure(config):
    config.addinivalue_line("markers", "one_backend: the test does not depend on the database backend; "
                                       "it runs on the first backend of FACES_TEST_DATABASES only")


def pytest_collection_modifyitems(config, items):
    """Run this folder's ``one_backend`` tests (broker and worker failures) on the first backend only."""
    from tests.conftest import BACKENDS

    here = Path(__file__).parent
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        if (item.get_closest_marker("one_backend") and backend is not None and backend != BACKENDS[0]
                and Path(str(item.fspath)).parent == here):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Worker:
    """One ``faces worker -c 1`` process (a Celery master with one pool process) and its log."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen([FACES, "worker", "-c", "1", "--loglevel", "info"], env=env,
                                        stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not start:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def busy(self) -> bool:
        """Is its pool process inside a task right now (received more tasks than it finished)?"""
        text = self.text()
        started = len(re.findall(r"Task faces\.detect_batch\[\S+\] received", text))
        ended = len(re.findall(r"Task faces\.detect_batch\[\S+\] (succeeded|raised|retry)", text))
        return started > ended

    def succeeded(self) -> int:
        return len(re.findall(r"Task faces\.detect_batch\[\S+\] succeeded", self.text()))

    def pool_pids(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(p) for p in children]

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        self.handle.close()


@pytest.fixture
def cluster(tmp_path, settings, data_root):
    """Start ``faces worker`` processes for the test's database: ``cluster.start(broker_url, count)``.

    The workers see the photos under another path than the scanning process (``path_map``): the scan adds
    them from ``<tmp>/nas`` (a folder that is moved away once the images are added), the workers read them
    from ``<tmp>/mnt``.
    """

    class Cluster:
        def __init__(self):
            self.queue = f"faces-test-{uuid.uuid4().hex[:10]}"
            self.workers: list[Worker] = []
            self.broker_url = ""
            self.scan_dir = tmp_path / "nas" / "photos"
            photo_folder(data_root, self.scan_dir)
            self.worker_dir = tmp_path / "mnt" / "photos"
            self.worker_dir.parent.mkdir()

        def env(self, **extra: str) -> dict[str, str]:
            return base_env(settings.data_dir, settings.resolved_database_url, FACES_EXECUTOR="celery",
                            FACES_BROKER_URL=self.broker_url, FACES_TASK_QUEUE=self.queue, **extra)

        def start(self, broker_url: str, count: int = 2) -> None:
            self.broker_url = broker_url
            for n in range(count):
                env = self.env(FACES_DATA_DIR=str(tmp_path / f"worker{n}"),
                               FACES_PATH_MAP=f"{self.scan_dir}={self.worker_dir}")
                self.workers.append(Worker(env, tmp_path / f"worker{n}.log"))
            for worker in self.workers:
                worker.wait_ready()

        def add_photos(self, store) -> None:  # noqa: ANN001
            """Add the photos as the scanning machine sees them, then move them to where only workers look."""
            from faces.jobs.pipeline import add_images
            from faces.store.users import resolve_owner

            with store.session() as session:
                owner_id = resolve_owner(session, None).id
            added = add_images(store, settings, owner_id, [self.scan_dir], finders=["opencv"])
            assert len(added.added) == len(PHOTOS)
            self.scan_dir.rename(self.worker_dir)

        def scan(self) -> subprocess.Popen:
            """Start ``faces scan --json`` (of an empty folder: it detects what is pending) with the celery
            executor; stdout piped."""
            empty = tmp_path / "empty"
            empty.mkdir(exist_ok=True)
            return subprocess.Popen([FACES, "scan", "--json", str(empty)], env=self.env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def finished_images(self) -> int:
            from sqlalchemy import create_engine, text

            engine = create_engine(settings.resolved_database_url)
            try:
                with engine.connect() as conn:
                    return conn.execute(text("SELECT COUNT(*) FROM image_finders WHERE status <> 'pending'")
                                        ).scalar_one()
            except Exception:  # noqa: BLE001 - tables not there yet
                return 0
            finally:
                engine.dispose()

        def wait_scan(self, proc: subprocess.Popen, timeout: float = 300) -> dict:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"faces scan -> {proc.returncode}\n{err}\n" + "\n".join(
                w.text()[-3000:] for w in self.workers)
            return json.loads(out)

        def close(self) -> None:
            for worker in self.workers:
                worker.stop()
            if self.broker_url.startswith("amqp"):
                from kombu import Connection

                with Connection(self.broker_url) as conn:
                    try:
                        conn.default_channel.queue_delete(self.queue)
                    except Exception:  # noqa: BLE001 - nothing to clean up
                        pass

    c = Cluster()
    yield c
    c.close()


@pytest.fixture(scope="session")
def inprocess_faces(tmp_path_factory, data_root) -> dict:
    """The faces of the photos found by the in-process executor (SQLite), once per session."""
    folder = tmp_path_factory.mktemp("inprocess")
    photos = photo_folder(data_root, folder / "nas" / "photos")
    url = f"sqlite:///{folder / 'faces.db'}"
    proc = subprocess.run([FACES, "scan", "--json", str(photos)], env=base_env(folder / "data", url),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["images"] == len(PHOTOS) and summary["errors"] == 0
    return {"summary": summary, "faces": faces_of(url)}
