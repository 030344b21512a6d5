"""How fast is the gallery API under load? A library of 100k faces, 20 clients paging it at once, on loopback.

Usage (from the project root, in the venv):

    python benchmarks/web.py                                # 100k faces in 50k photos, 20 clients, SQLite
    python benchmarks/web.py --same-pages                   # every client pages from the newest photo on
    python benchmarks/web.py --faces 20000 --clients 5 --pages 20
    python benchmarks/web.py --workers 2                    # faces serve --workers 2
    python benchmarks/web.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench   # an empty database
    python benchmarks/web.py --instructions 30              # instructions per request under callgrind (valgrind)

The library is synthetic rows (photos, two faces each: named, guessed, unknown and unnamed ones; 300 names),
written straight into a fresh database; then a real ``faces serve`` starts on a free port. Each client logs in,
then pages the gallery (``GET /api/images?limit=60``, following ``next_cursor``), with every page carrying its
frames and names. The first client starts at the newest photo, the others evenly spread over the library, so that
they ask for different pages, as different users would (the server keeps the pages it answered until the library
changes, see ``faces.web.page_cache``; the report says how many pages had been asked for before). With
``--same-pages`` every client starts at the newest photo: 19 of 20 pages were asked for by another client before.
The same clients also call the cheapest logged-in endpoint (``GET /api/session``) as a baseline of what the server
and this machine do at all: gallery, then baseline, ``--rounds`` times, so that a change in the machine's load
hits both. The report gives p50, p95 and p99 latency, requests per second, and the CPU time per request of the
server (all its processes) and of the clients, for both endpoints side by side, and their ratios. Target: gallery
p95 < 100 ms.

The clients run in this process (asyncio, one keep-alive connection each, see :class:`Client`) on the same cores
as the server. The machine is shared and noisy: compare the rows of one run rather than runs of different
moments. Even the CPU time per request moves with the load (a busy machine runs every instruction slower), so
``--instructions N`` measures the work itself: one client, N new gallery pages, the same N pages again (kept by
the server), and N ``GET /api/session``, the server under ``valgrind --tool=callgrind``, which counts the
instructions of all its threads: nearly the same count whatever else the machine does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import h11
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


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its children (the server's workers); Linux."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo += children.get(current, [])
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, url: str, port: int, workers: int = 1, wrapper: tuple[str, ...] = (),
                 timeout: float = 60) -> subprocess.Popen:
    """``faces serve`` on ``port`` (run under ``wrapper``, e.g. valgrind), once it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    env.update(FACES_DATA_DIR=str(data_dir), FACES_DATABASE_URL=url)
    process = subprocess.Popen([*wrapper, sys.executable, "-c", "from faces.cli import main; main()", "serve",
                                "--port", str(port), "--workers", str(workers)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"faces serve did not start within {timeout:.0f} s")


class Client:
    """One logged-in client on one keep-alive HTTP/1.1 connection: asyncio streams with h11 for the framing.

    Not httpx: on a 2-core machine httpx spent more CPU per request than the server's whole answer to
    ``GET /api/session`` (about 4 ms against 3), so the clients measured mostly themselves. This client costs well
    under a millisecond per request (the report prints its CPU time), and every endpoint is measured with it."""

    def __init__(self, port: int):
        self.port = port
        self.cookie = ""

    async def open(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.connection = h11.Connection(h11.CLIENT)
        return self

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def request(self, method: str, target: str, body: bytes = b"", headers: tuple = ()) -> tuple[int, bytes]:
        """``(status, body)`` of one request; keeps the session cookie the server sets. A connection the server
        closed while it was idle (uvicorn's keep-alive timeout is 5 s) is opened again."""
        try:
            return await self._request(method, target, body, headers)
        except (h11.RemoteProtocolError, ConnectionError):
            if self.connection.their_state is not h11.CLOSED and self.connection.our_state is not h11.MUST_CLOSE:
                raise
            await self.open()
            return await self._request(method, target, body, headers)

    async def _request(self, method: str, target: str, body: bytes, headers: tuple) -> tuple[int, bytes]:
        connection = self.connection
        head = [("host", f"127.0.0.1:{self.port}"), ("content-length", str(len(body))), *headers]
        if self.cookie:
            head.append(("cookie", self.cookie))
        self.writer.write(connection.send(h11.Request(method=method, target=target, headers=head))
                          + connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage()))
        status, chunks = 0, []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await self.reader.read(256 * 1024))
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"set-cookie":
                        self.cookie = value.decode("latin-1").split(";", 1)[0]
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")
        connection.start_next_cycle()
        return status, b"".join(chunks)

    async def get_json(self, target: str) -> dict:
        status, body = await self.request("GET", target)
        if status != 200:
            raise RuntimeError(f"GET {target}: HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    async def login(self) -> None:
        token = (await self.get_json("/api/session"))["csrf_token"]
        status, body = await self.request(
            "POST", "/api/login", json.dumps({"username": "bench", "password": PASSWORD}).encode(),
            (("content-type", "application/json"), ("x-csrf-token", token)))
        if status != 200:
            raise RuntimeError(f"login: HTTP {status}: {body[:200]!r}")


async def gallery_client(client: Client, pages: int, latencies: list[float], cursor: list[str | None],
                         asked: set[str | None]) -> tuple[int, int]:
    """Page the gallery from ``cursor[0]`` on (None: the newest photo), leaving the next cursor there; returns the
    number of photos seen and of pages that some client had asked for before (``asked``: every cursor so far)."""
    seen = repeats = 0
    for _ in range(pages):
        target = "/api/images?limit=60" + (f"&cursor={cursor[0]}" if cursor[0] else "")
        repeats += cursor[0] in asked
        asked.add(cursor[0])
        started = time.perf_counter()
        page = await client.get_json(target)
        latencies.append(time.perf_counter() - started)
        seen += len(page["items"])
        cursor[0] = page["next_cursor"]  # None at the end: start again from the newest photo
    return seen, repeats


def start_cursors(url: str, owner: int, clients: int) -> list[str | None]:
    """Where each client starts paging: the newest photo for the first, then evenly spread over the library, so
    that the clients ask for different pages (as different users would)."""
    from sqlalchemy import create_engine, select

    from faces.store.models import Image
    from faces.web.views import encode_cursor

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(select(Image.sort_at, Image.id).where(Image.owner_id == owner)
                                  .order_by(Image.sort_at.desc(), Image.id.desc())).all()
    engine.dispose()
    step = len(rows) // clients
    return [None] + [encode_cursor(*rows[k * step - 1]) for k in range(1, clients)]


async def baseline_client(client: Client, count: int, latencies: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        await client.get_json("/api/session")
        latencies.append(time.perf_counter() - started)


@dataclass
class Phase:
    """What one endpoint's requests took: latencies (s), wall time (s), CPU time (s) of clients and server."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0


async def run_load(port: int, starts: list[str | None], pages: int, rounds: int,
                   server_pid: int) -> tuple[dict, int, int]:
    """Both endpoints, ``rounds`` times in turn (so that a change in the machine's load hits both alike); one
    client per entry of ``starts`` (where it starts paging). Returns the phases, the photos seen and the gallery
    pages that were asked for before."""
    sessions = [await Client(port).open() for _ in starts]
    await asyncio.gather(*(session.login() for session in sessions))
    cursors: list[list[str | None]] = [[start] for start in starts]
    # warm-up: one page each (connections, SQLite page cache), the library's last: no client asks for it again
    await asyncio.gather(*(gallery_client(s, 1, [], [_far_cursor()], set()) for s in sessions))
    phases = {"gallery page (60 photos + frames)": Phase(), "baseline GET /api/session": Phase()}
    seen = repeats = 0
    asked: set[str | None] = set()
    for _ in range(rounds):
        for label, phase in phases.items():
            if label.startswith("gallery"):
                work = [gallery_client(s, pages, phase.latencies, c, asked) for s, c in zip(sessions, cursors)]
            else:
                work = [baseline_client(s, pages, phase.latencies) for s in sessions]
            started, client_cpu, server_cpu = time.perf_counter(), time.process_time(), tree_cpu_seconds(server_pid)
            done = await asyncio.gather(*work)
            phase.seconds += time.perf_counter() - started
            phase.client_cpu += time.process_time() - client_cpu
            phase.server_cpu += tree_cpu_seconds(server_pid) - server_cpu
            for result in done:
                if result:
                    seen, repeats = seen + result[0], repeats + result[1]
    for session in sessions:
        await session.close()
    return phases, seen, repeats


async def count_instructions(port: int, server_pid: int, requests: int, out_dir: Path,
                             middle: str) -> dict[str, float]:
    """Instructions per request of each endpoint, one client, the server running under callgrind: the work a
    request takes, whatever the machine's load (callgrind counts every thread of the server process). Before
    counting, the server answers pages that no count asks for (``middle``: a cursor in the middle of the library,
    far from the newest pages that are counted) with every statement a counted page runs, so that what is counted
    is the steady state, not SQL compiled once per process."""
    def callgrind(*command: str) -> None:
        subprocess.run(["callgrind_control", *command, str(server_pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    client = await Client(port).open()
    await client.login()
    labels = ("gallery page (60 photos + frames)", "gallery page again (same pages)", "baseline GET /api/session")
    await client.get_json("/api/session")  # warm-up
    await client.get_json("/api/images?limit=60&cursor=" + _far_cursor())  # warm-up, a page no run asks for
    await client.get_json("/api/images?limit=60&cursor=" + middle)  # a full page after a cursor
    await client.get_json("/api/images?limit=61")  # a first page (other limit: not the counted first page)
    cursors: list[str | None] = [None]
    for label in labels:
        callgrind("--zero")
        callgrind("--instr=on")
        for k in range(requests):
            if label.startswith("baseline"):
                await client.get_json("/api/session")
            elif label.startswith("gallery page again"):
                await client.get_json("/api/images?limit=60" + (f"&cursor={cursors[k]}" if cursors[k] else ""))
            else:
                answer = await client.get_json("/api/images?limit=60" + (f"&cursor={cursors[k]}" if cursors[k] else ""))
                cursors.append(answer["next_cursor"])
        callgrind("--instr=off")
        callgrind(f"--dump={labels.index(label)}")
    await client.close()
    counts = {}
    for dump in out_dir.glob("callgrind.out.*.*"):
        text = dump.read_text(errors="replace")
        trigger = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("desc: Trigger"))
        total = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:"))
        counts[labels[int(trigger.rsplit(" ", 1)[-1])]] = total / requests
    return {label: counts[label] for label in labels}


def _far_cursor() -> str:
    """A cursor before every photo of the library (the last page): a warm-up page that no run asks for again."""
    from faces.web.views import encode_cursor

    return encode_cursor(datetime(2000, 1, 1), 1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000, help="faces in the library (two per photo)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--pages", type=int, default=25, help="requests each client makes per round and endpoint")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of gallery then baseline")
    parser.add_argument("--workers", type=int, default=1, help="faces serve --workers")
    parser.add_argument("--same-pages", action="store_true",
                        help="every client pages from the newest photo on (the same pages, mostly served from the "
                             "server's page cache) instead of each from its own part of the library")
    parser.add_argument("--database-url", default="", help="an empty database (default: SQLite in a temp dir)")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="instead: count the instructions of N requests of each endpoint, one client, the server "
                             "under valgrind --tool=callgrind (slow, but the same on a busy machine)")
    parser.add_argument("--keep-callgrind", type=Path, metavar="DIR",
                        help="with --instructions: copy the callgrind files to DIR (for callgrind_annotate)")
    args = parser.parse_args()
    if args.instructions:
        instructions(args)
        return

    with tempfile.TemporaryDirectory(prefix="faces-bench-web-") as tmp:
        data_dir = Path(tmp) / "data"
        url = args.database_url or f"sqlite:///{data_dir / 'faces.db'}"
        started = time.perf_counter()
        owner = build_library(url, args.faces)
        print(f"library: {args.faces} faces in {args.faces // 2} photos, built in "
              f"{time.perf_counter() - started:.1f} s ({re.sub(r'//[^@]*@', '//', url.split('?')[0])})")
        starts = [None] * args.clients if args.same_pages else start_cursors(url, owner, args.clients)
        port = free_port()
        server = start_server(data_dir, url, port, args.workers)
        load_before = os.getloadavg()
        try:
            phases, seen, repeats = asyncio.run(run_load(port, starts, args.pages, args.rounds, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
        load_after = os.getloadavg()
    print(f"{args.clients} clients x {args.pages} requests x {args.rounds} rounds per endpoint, {args.workers} server "
          f"process(es), on loopback, {os.cpu_count()} CPU cores shared by clients and server ({seen} photos paged)")
    pages_asked = len(phases["gallery page (60 photos + frames)"].latencies)
    print(f"clients start {'all at the newest photo' if args.same_pages else 'spread over the library'}: "
          f"{repeats} of {pages_asked} gallery pages ({repeats / pages_asked:.0%}) had been asked for before")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'':36} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>7} {'server CPU ms/req':>18} "
          f"{'client CPU ms/req':>18}")
    rows = []
    for label, phase in phases.items():
        p50, p95, p99 = (percentile(phase.latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
        count = len(phase.latencies)
        rows.append((p50, p95, count / phase.seconds, phase.server_cpu / count * 1000))
        print(f"{label:36} {p50:7.1f} {p95:7.1f} {p99:7.1f} {count / phase.seconds:7.1f} "
              f"{phase.server_cpu / count * 1000:18.2f} {phase.client_cpu / count * 1000:18.2f}")
    (g50, g95, grate, gcpu), (b50, b95, brate, bcpu) = rows
    print(f"gallery / baseline: p50 x{g50 / b50:.1f}, p95 x{g95 / b95:.1f}, throughput x{grate / brate:.2f}, "
          f"server CPU x{gcpu / bcpu:.1f}")
    print(f"target gallery p95 < 100 ms: {'met' if g95 < 100 else 'NOT met'} ({g95:.1f} ms)")


def instructions(args: argparse.Namespace) -> None:
    """The ``--instructions`` run of :func:`main`."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="faces-bench-web-") as tmp:
        data_dir, out_dir = Path(tmp) / "data", Path(tmp) / "callgrind"
        out_dir.mkdir()
        url = args.database_url or f"sqlite:///{data_dir / 'faces.db'}"
        owner = build_library(url, args.faces)
        middle = start_cursors(url, owner, 2)[1]
        port = free_port()
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={out_dir}/callgrind.out.%p")
        server = start_server(data_dir, url, port, 1, wrapper, timeout=900)
        try:
            counts = asyncio.run(count_instructions(port, server.pid, args.instructions, out_dir, middle))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=120)
            if args.keep_callgrind:
                args.keep_callgrind.mkdir(parents=True, exist_ok=True)
                for dump in out_dir.glob("callgrind.out.*.*"):
                    shutil.copy(dump, args.keep_callgrind)
    print(f"library: {args.faces} faces in {args.faces // 2} photos; one client, {args.instructions} requests per "
          f"endpoint, faces serve under callgrind")
    for label, count in counts.items():
        print(f"{label:36} {count / 1e6:7.2f} million instructions per request")


if __name__ == "__main__":
    main()
