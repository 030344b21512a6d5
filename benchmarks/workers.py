"""Benchmark: detection through Celery workers against the in-process executor, on the same real photos.

For each configuration, a fresh database, then `faces scan --json` of the same photos (opencv finder by default):
- in-process executor with 1 and with 2 worker processes (`--workers N`);
- celery executor with 1 and with 2 `faces worker -c 1` processes (started and ready before the scan; their
  model loading is not timed, as a long-running worker pays it once, while the in-process executor starts its
  worker processes and loads the models in every run).
The configurations alternate, ``--repeat`` times; the fastest run of each counts.
It prints the detection time of the run (the summary's `seconds`: from taking the lock to the guesses, the
adding of files excluded), images/s, the ratio to the in-process executor with as many processes, and the
overhead per image of going through the queue: for one worker process, (run time - the sum of the task
times the worker logged) / images; that is broker round trips, the run's polling of the database and the
per-image status reads, not detection.

Usage (from the project root, venv active; Redis or RabbitMQ running):
    python benchmarks/workers.py [--data ../shared/data] [--count 40] [--finders opencv]
        [--repeat 2] [--broker redis://127.0.0.1:6379/0] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

With --database-url the benchmark creates (and drops) a database of its own next to the one named.
The machine has 2 cores shared with other work: compare the ratios of one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT.parent / "shared" / "data").resolve()
FACES = str(Path(sys.executable).with_name("faces"))


def photo_set(data: Path, count: int) -> list[Path]:
    """Up to ``count`` real photos of various sizes: deepface_unit, wikimedia group photos, TV scenes."""
    files = sorted((data / "deepface_unit").glob("img*.jpg"), key=lambda p: int(p.stem[3:].split("_")[0]))
    files += sorted((data / "wikimedia_commons_people").rglob("*.jpg"))
    files += sorted((data / "faceapi_bbt" / "scenes").glob("*.jpg"))
    return [f for f in files if f.is_file()][:count]


class Database:
    """A fresh database per configuration: a SQLite file, or a new database on the server of ``server_url``."""

    def __init__(self, server_url: str | None, folder: Path):
        self.server_url = server_url
        self.folder = folder
        self.made: list[str] = []

    def new(self, label: str) -> str:
        if not self.server_url:
            return f"sqlite:///{self.folder / label / 'faces.db'}"
        import sqlalchemy as sa

        admin_url = sa.make_url(self.server_url)
        name = f"faces_bench_{uuid.uuid4().hex[:10]}"
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if admin_url.get_backend_name() == "postgresql":
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        engine.dispose()
        self.made.append(name)
        return admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.server_url:
            return
        import sqlalchemy as sa

        admin_url = sa.make_url(self.server_url)
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.made:
                if admin_url.get_backend_name() == "postgresql":
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


def env_for(data_dir: Path, database_url: str, finders: list[str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    env.update(FACES_DATA_DIR=str(data_dir), FACES_DATABASE_URL=database_url)
    for name in ("dlib", "opencv"):
        env[f"FACES_FINDERS__{name.upper()}__ENABLED"] = "true" if name in finders else "false"
    env.update(extra)
    return env


def scan(env: dict[str, str], photos: Path, workers: int | None = None) -> dict:
    args = [FACES, "scan", "--json", str(photos)] + (["--workers", str(workers)] if workers else [])
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"faces scan failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def start_workers(count: int, env: dict[str, str], folder: Path) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for n in range(count):
        log = folder / f"worker{n}.log"
        handle = log.open("w")
        proc = subprocess.Popen([FACES, "worker", "-c", "1", "--loglevel", "info"],
                                env=env | {"FACES_DATA_DIR": str(folder / f"worker{n}")}, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        workers.append((proc, log))
    deadline = time.monotonic() + 300
    for proc, log in workers:
        while " ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
    return workers


def task_seconds(log: Path) -> float:
    return sum(float(s) for s in re.findall(r"succeeded in ([0-9.]+)s", log.read_text(errors="replace")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--finders", default="opencv")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration (the fastest counts)")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL or MariaDB server URL (default: SQLite)")
    args = parser.parse_args()
    finders = [f.strip() for f in args.finders.split(",") if f.strip()]
    photos = photo_set(args.data, args.count)
    queue = f"faces-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="faces-bench-workers-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        folder.mkdir()
        for i, photo in enumerate(photos):
            (folder / f"{i:03d}_{photo.name}").symlink_to(photo)
        dbs = Database(args.database_url, tmp)
        runs = []
        try:
            for r, n in ((r, n) for r in range(args.repeat) for n in (1, 2)):
                label = f"inprocess{n}-{r}"
                env = env_for(tmp / label, dbs.new(label), finders)
                summary = scan(env, folder, workers=n)
                runs.append(("in-process", n, summary, None))
                label = f"celery{n}-{r}"
                env = env_for(tmp / label, dbs.new(label), finders, FACES_EXECUTOR="celery",
                              FACES_BROKER_URL=args.broker, FACES_TASK_QUEUE=f"{queue}-{n}-{r}")
                (tmp / label).mkdir(parents=True, exist_ok=True)
                workers = start_workers(n, env, tmp / label)
                try:
                    summary = scan(env, folder)
                finally:
                    for proc, _ in workers:
                        proc.terminate()
                    for proc, _ in workers:
                        try:
                            proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                runs.append(("celery", n, summary, sum(task_seconds(log) for _, log in workers)))
        finally:
            dbs.drop_all()
    rows = []  # the fastest of the repeats of each configuration
    for kind, n in (("in-process", 1), ("in-process", 2), ("celery", 1), ("celery", 2)):
        rows.append(min((run for run in runs if run[:2] == (kind, n)), key=lambda run: run[2]["seconds"]))
    backend = "SQLite" if not args.database_url else args.database_url.split(":")[0]
    print(f"{len(photos)} photos, finders {','.join(finders)}, database {backend}, broker {args.broker.split(':')[0]}, "
          f"fastest of {args.repeat} runs each")
    print(f"{'executor':<12}{'processes':>10}{'images':>8}{'faces':>7}{'seconds':>9}{'images/s':>10}{'vs in-process':>15}")
    base = {n: s["seconds"] for kind, n, s, _ in rows if kind == "in-process"}
    for kind, n, s, _ in rows:
        ratio = base[n] / s["seconds"] if s["seconds"] else 0.0
        print(f"{kind:<12}{n:>10}{s['images']:>8}{s['faces']:>7}{s['seconds']:>9.2f}{s['images_per_second']:>10.2f}"
              f"{ratio:>14.2f}x")
    for kind, n, s, busy in rows:
        if kind == "celery" and n == 1 and s["images"]:
            print(f"queue overhead per image (1 worker: run time - task time): "
                  f"{(s['seconds'] - busy) / s['images'] * 1000:.0f} ms "
                  f"(tasks {busy:.2f} s of {s['seconds']:.2f} s)")
    faces = {s["faces"] for _, _, s, _ in rows}
    print("same faces in every configuration" if len(faces) == 1 else f"FACE COUNTS DIFFER: {sorted(faces)}")


if __name__ == "__main__":
    main()
