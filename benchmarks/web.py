"""How fast is the gallery API under load? A library of 100k faces, 20 clients paging it at once, on loopback.

Usage (from the project root, in the venv):

    python benchmarks/web.py                                # 100k faces in 50k photos, 20 clients, SQLite
    python benchmarks/web.py --faces 20000 --clients 5 --pages 20
    python benchmarks/web.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench   # an empty database

The library is synthetic rows (photos, two faces each: named, guessed, unknown and unnamed ones; 300 names),
written straight into a fresh database; then a real ``faces serve`` starts on a free port. Each client logs in,
then pages the gallery from the newest photo on (``GET /api/images?limit=60``, following ``next_cursor``), with
every page carrying its frames and names. The same clients then call the cheapest logged-in endpoint
(``GET /api/session``) as a baseline of what the server and this machine do at all; the report gives p50, p95
and p99 latency and requests per second of both, side by side, and their ratio. Target: gallery p95 < 100 ms.
The clients run in this process (asyncio) on the same cores as the server: the machine is shared and noisy,
so compare the two rows of one run rather than runs of different moments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark password"


def build_library(url: str, faces: int, seed: int = 7) -> int:
    """Write a synthetic library of ``faces`` faces (two per photo) into the database at ``url``; returns the
    owner's id."""
    from faces.store.db import Store
    from faces.store.models import Face, FaceState, FinderStatus, Image, ImageFinder, Name
    from faces.web.auth import create_user

    rng = random.Random(seed)
    store = Store(url)
    with store.session() as s:
        owner = create_user(s, "bench", PASSWORD, is_admin=True).id
    with store.session() as s:
        s.execute(insert(Name), [{"owner_id": owner, "name": f"Person {i:03d}", "uuid": f"{i:032x}"}
                                 for i in range(1, 301)])
    images = faces // 2
    start = datetime(2010, 1, 1)
    now = datetime.now(timezone.utc)
    batch = 5000
    face_id = 0
    for first in range(1, images + 1, batch):
        ids = range(first, min(images, first + batch - 1) + 1)
        image_rows, finder_rows, face_rows = [], [], []
        for image_id in ids:
            taken = start + timedelta(minutes=rng.randrange(0, 15 * 365 * 24 * 60)) if rng.random() < 0.8 else None
            image_rows.append({"id": image_id, "owner_id": owner, "content_hash": f"{image_id:064x}",
                               "path": f"/photos/{image_id}.jpg", "bytes": 2_000_000, "width": 4000,
                               "height": 3000, "format": "JPEG", "taken_at": taken, "added_at": now,
                               "sort_at": taken or now.replace(tzinfo=None), "visibility": "contacts"})
            finder_rows.append({"image_id": image_id, "finder": "dlib", "status": FinderStatus.DONE.value})
            for k in range(2):
                face_id += 1
                roll = rng.random()
                state, name_id, guess_id = FaceState.UNNAMED, None, None
                if roll < 0.3:
                    state, name_id = FaceState.CONFIRMED, rng.randrange(1, 301)
                elif roll < 0.6:
                    state, guess_id = FaceState.GUESSED, rng.randrange(1, 301)
                elif roll < 0.65:
                    state = FaceState.UNKNOWN
                elif roll < 0.68:
                    state = FaceState.IGNORED
                face_rows.append({"id": face_id, "uuid": f"{face_id:032x}", "image_id": image_id,
                                  "owner_id": owner, "x": 800 + 1500 * k, "y": 900, "w": 400, "h": 400,
                                  "score": 0.99, "source": "detected", "state": state.value, "name_id": name_id,
                                  "guess_name_id": guess_id, "updated_at": now})
        with store.session() as s:
            s.execute(insert(Image), image_rows)
            s.execute(insert(ImageFinder), finder_rows)
            s.execute(insert(Face), face_rows)
    store.dispose()
    return owner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, url: str, port: int, workers: int = 1) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    env.update(FACES_DATA_DIR=str(data_dir), FACES_DATABASE_URL=url)
    process = subprocess.Popen([sys.executable, "-c", "from faces.cli import main; main()", "serve", "--port",
                                str(port), "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("faces serve did not start within 60 s")


async def login(client: httpx.AsyncClient) -> None:
    token = (await client.get("/api/session")).json()["csrf_token"]
    answer = await client.post("/api/login", json={"username": "bench", "password": PASSWORD},
                               headers={"X-CSRF-Token": token})
    answer.raise_for_status()


async def gallery_client(client: httpx.AsyncClient, pages: int, latencies: list[float]) -> int:
    """Page the gallery from the start; returns the number of photos seen."""
    cursor, seen = None, 0
    for _ in range(pages):
        params = {"limit": 60} | ({"cursor": cursor} if cursor else {})
        started = time.perf_counter()
        answer = await client.get("/api/images", params=params)
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()
        page = answer.json()
        seen += len(page["items"])
        cursor = page["next_cursor"]  # None at the end: start again from the newest photo
    return seen


async def baseline_client(client: httpx.AsyncClient, count: int, latencies: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        answer = await client.get("/api/session")
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()


async def run_load(base: str, clients: int, pages: int) -> dict[str, tuple[list[float], float]]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    sessions = [httpx.AsyncClient(base_url=base, limits=limits, timeout=60) for _ in range(clients)]
    for session in sessions:
        await login(session)
    # warm-up: one page each (connections, SQLite page cache), not counted
    await asyncio.gather(*(gallery_client(s, 1, []) for s in sessions))
    results = {}
    gallery: list[float] = []
    started = time.perf_counter()
    seen = await asyncio.gather(*(gallery_client(s, pages, gallery) for s in sessions))
    results["gallery page (60 photos + frames)"] = (gallery, time.perf_counter() - started)
    baseline: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(baseline_client(s, pages, baseline) for s in sessions))
    results["baseline GET /api/session"] = (baseline, time.perf_counter() - started)
    for session in sessions:
        await session.aclose()
    results["_seen"] = ([float(sum(seen))], 0.0)
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000, help="faces in the library (two per photo)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--pages", type=int, default=50, help="gallery pages each client asks for")
    parser.add_argument("--workers", type=int, default=1, help="faces serve --workers")
    parser.add_argument("--database-url", default="", help="an empty database (default: SQLite in a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="faces-bench-web-") as tmp:
        data_dir = Path(tmp) / "data"
        url = args.database_url or f"sqlite:///{data_dir / 'faces.db'}"
        started = time.perf_counter()
        build_library(url, args.faces)
        print(f"library: {args.faces} faces in {args.faces // 2} photos, built in "
              f"{time.perf_counter() - started:.1f} s ({re.sub(r'//[^@]*@', '//', url.split('?')[0])})")
        port = free_port()
        server = start_server(data_dir, url, port, args.workers)
        try:
            results = asyncio.run(run_load(f"http://127.0.0.1:{port}", args.clients, args.pages))
        finally:
            server.terminate()
            server.wait(timeout=30)
    seen = int(results.pop("_seen")[0][0])
    print(f"{args.clients} clients x {args.pages} requests each, {args.workers} server process(es), on loopback, "
          f"{os.cpu_count()} CPU cores shared by clients and server ({seen} photos paged)")
    print(f"{'':38} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    rows = {}
    for label, (latencies, seconds) in results.items():
        p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
        rate = len(latencies) / seconds
        rows[label] = (p50, p95, rate)
        print(f"{label:38} {p50:8.1f} {p95:8.1f} {p99:8.1f} {rate:8.1f}")
    (g50, g95, grate), (b50, b95, brate) = rows.values()
    print(f"gallery / baseline: p50 x{g50 / b50:.1f}, p95 x{g95 / b95:.1f}, throughput x{grate / brate:.2f}")
    print(f"target gallery p95 < 100 ms: {'met' if g95 < 100 else 'NOT met'} ({g95:.1f} ms)")


if __name__ == "__main__":
    main()
