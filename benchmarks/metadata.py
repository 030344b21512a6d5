"""Benchmark: writing names into 1,000 photos with one stay-open exiftool versus one exiftool process per file.

Setup (not timed): real photos of ../shared/data (the four hand-labelled photos of dlib_faces_gt/dev) are copied
into temporary folders, each copy made unique by a JPEG comment; every variant has its own SQLite library with
one image per copy and one confirmed face per labelled box (18 faces per 4 photos, 20 different names).

Variants, each on its own fresh copies of the same files:
- ``stay-open``: :func:`faces.metadata.write_names` as faces runs it: one exiftool process for the whole run
  (started before the first round; its start is reported apart); per batch of 50 files one command reads them, one writes them all into copies (each
  file its own tags), one reads the copies back to check them; then per file an atomic rename and the new
  content hash;
- ``stay-open, file by file``: the same, but batches of one file (three exiftool commands per file: the way
  faces wrote before batching);
- ``process per command``: the same code as ``stay-open``, but every exiftool command starts its own process
  (three processes per batch of 50 files);
- ``process per file``: the least a one-process-per-file script can do: one ``exiftool -json=TAGS
  -overwrite_original FILE`` per file with the same tags (no read, no check, no copy): a floor for that way.

Fair on a shared, noisy machine: the files are cut into rounds of ``--chunk`` (50) files; in every round each
variant writes its own fresh copies of that round's files, in an order that rotates from round to round, so
that a change of load hits every variant alike. ``process per file`` is slow, so by default it writes only
200 of the 1,000 files (``--slow-count``): the first files of every 5th round. Everything is reported per file:
files/s (wall clock) and CPU milliseconds (this process and its exiftool processes: finished children, plus the
stay-open exiftool, read from /proc). Ratios are stay-open against each other variant over the rounds that
both ran (the same moments, the same files). Compare the ratios of one run, not absolute numbers across runs.

Usage (from the project root, venv active; Linux, for /proc):
    python benchmarks/metadata.py [--count 1000] [--slow-count 200] [--chunk 50] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faces.config import load_settings  # noqa: E402
from faces.media import probe_image  # noqa: E402
from faces.metadata import ExifTool, OneShotExifTool, write_names  # noqa: E402
from faces.metadata import tags as T  # noqa: E402
from faces.metadata.exiftool import _config_file, find_exiftool  # noqa: E402
from faces.metadata.writer import load_jobs  # noqa: E402
from faces.store.db import Store  # noqa: E402
from faces.store.models import Face, FaceState, Image, Name, User  # noqa: E402

DEFAULT_DATA = (ROOT.parent / "shared" / "data").resolve()
STAY_OPEN = "stay-open"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sources(data: Path) -> list[tuple[Path, list[tuple[int, int, int, int]]]]:
    """The photos of dlib_faces_gt/dev that have labelled boxes, with their boxes."""
    folder = data / "dlib_faces_gt" / "dev"
    boxes: dict[str, list] = {}
    with (folder / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["file"], []).append(tuple(int(float(row[k])) for k in ("x", "y", "w", "h")))
    return [(folder / name, found) for name, found in sorted(boxes.items())]


def unique_copy(source: bytes, target: Path, number: int) -> None:
    """``source`` (a JPEG) with a comment segment right after SOI, so that every copy has its own hash."""
    text = f"benchmark copy {number}".encode()
    target.write_bytes(source[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + source[2:])


@dataclass
class Library:
    """One variant's SQLite library and folder of copies."""

    folder: Path
    store: Store
    owner_id: int = 0
    names: list[int] = field(default_factory=list)
    faces: int = 0

    @classmethod
    def create(cls, folder: Path) -> Library:
        folder.mkdir(parents=True)
        library = cls(folder, Store(f"sqlite:///{folder / 'library.db'}"))
        with library.store.session() as session:
            user = User(username="bench", display_name="Bench")
            session.add(user)
            session.flush()
            names = [Name(owner_id=user.id, name=f"Person {i + 1}") for i in range(20)]
            session.add_all(names)
            session.flush()
            library.owner_id, library.names = user.id, [n.id for n in names]
        return library

    def add(self, copies: list[tuple[int, bytes, list]]) -> tuple[list[int], list[Path]]:
        """Fresh copies ``(number, source bytes, boxes)`` as images with confirmed faces: (image ids, files)."""
        ids, files = [], []
        with self.store.session() as session:
            for number, data, boxes in copies:
                path = self.folder / f"photo{number:05d}.jpg"
                unique_copy(data, path, number)
                info = probe_image(path)
                image = Image(owner_id=self.owner_id, content_hash=info.content_hash, path=str(path),
                              bytes=info.bytes, width=info.width, height=info.height,
                              orientation=info.orientation, format=info.format)
                session.add(image)
                session.flush()
                for x, y, w, h in boxes:
                    session.add(Face(owner_id=self.owner_id, image_id=image.id, x=x, y=y, w=w, h=h,
                                     state=FaceState.CONFIRMED, name_id=self.names[self.faces % 20]))
                    self.faces += 1
                ids.append(image.id)
                files.append(path)
        return ids, files


def process_cpu(pid: int | None) -> float:
    """CPU seconds a running process has used so far (0 for none)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def own_cpu() -> float:
    """CPU seconds of this process and of its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Variant:
    """One way of writing the names; :meth:`run` writes one round's images and returns (wall, CPU) seconds."""

    slow = False

    def __init__(self, label: str, library: Library, settings):  # noqa: ANN001
        self.label, self.library, self.settings = label, library, settings
        self.rounds: dict[int, tuple[int, float, float]] = {}  # round -> (files, wall s, CPU s)

    def run(self, image_ids: list[int], files: list[Path]) -> tuple[float, float]:
        raise NotImplementedError

    def close(self) -> None:
        self.library.store.dispose()


class WriteNames(Variant):
    """:func:`write_names` with a given exiftool and batch size."""

    def __init__(self, label: str, library: Library, settings, tool: ExifTool, batch: int):  # noqa: ANN001
        super().__init__(label, library, settings)
        self.tool, self.batch = tool, batch

    def run(self, image_ids: list[int], files: list[Path]) -> tuple[float, float]:
        cpu, start = own_cpu() + process_cpu(self.tool.pid), time.perf_counter()
        report = write_names(self.library.store, self.settings, self.library.owner_id, image_ids,
                             exiftool=self.tool, batch=self.batch)
        wall, cpu = time.perf_counter() - start, own_cpu() + process_cpu(self.tool.pid) - cpu
        if report.written != len(image_ids) or report.failed:
            sys.exit(f"{self.label}: {report.written} of {len(image_ids)} written, failures: {report.failed[:3]}")
        return wall, cpu

    def close(self) -> None:
        self.tool.close()
        super().close()


class ProcessPerFile(Variant):
    """One ``exiftool -json=TAGS -overwrite_original FILE`` process per file (the tags planned, not timed)."""

    slow = True

    def __init__(self, label: str, library: Library, settings, work: Path):  # noqa: ANN001
        super().__init__(label, library, settings)
        self.docs, self.config, self.exe = work, _config_file(), find_exiftool()
        self.docs.mkdir()

    def run(self, image_ids: list[int], files: list[Path]) -> tuple[float, float]:
        with self.library.store.session() as session:
            jobs, _ = load_jobs(session, self.settings, self.library.owner_id, image_ids)
        commands = []
        for job in jobs:
            empty = T.FileTags(path=job.path, file_type="JPEG", stored_size=job.upright_size)
            plan = T.plan(empty, job.faces, upright_size=job.upright_size, orientation=job.orientation, iptc=True)
            doc = self.docs / f"{job.image_id}.json"
            doc.write_text(json.dumps(T.json_document(plan.assign), ensure_ascii=False), encoding="utf-8")
            commands.append([self.exe, "-config", self.config, "-q", "-m", f"-json={doc}", "-overwrite_original",
                             job.path])
        cpu, start = own_cpu(), time.perf_counter()
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start, own_cpu() - cpu

    def close(self) -> None:
        Path(self.config).unlink(missing_ok=True)
        super().close()


def per_file(variant: Variant, rounds: set[int] | None = None) -> tuple[int, float, float]:
    """(files, wall seconds per file, CPU seconds per file) of ``variant`` over ``rounds`` (default: all)."""
    chosen = [v for r, v in variant.rounds.items() if rounds is None or r in rounds]
    files = sum(n for n, _, _ in chosen)
    return files, sum(w for _, w, _ in chosen) / files, sum(c for _, _, c in chosen) / files


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="photos written by each fast variant (1000)")
    parser.add_argument("--slow-count", type=int, default=200,
                        help="photos written one exiftool process per file (200; 0: skip that variant)")
    parser.add_argument("--chunk", type=int, default=50, help="photos per round (50)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not find_exiftool():
        sys.exit("exiftool is not installed (apt-get install libimage-exiftool-perl)")

    srcs = sources(args.data)
    payloads = [(path.read_bytes(), boxes) for path, boxes in srcs]
    rounds = (args.count + args.chunk - 1) // args.chunk
    # the slow variant writes the first files of evenly spread rounds
    slow_rounds = {}
    if args.slow_count:
        every = max(1, rounds * args.chunk // args.slow_count)
        left = args.slow_count
        for r in range(0, rounds, every):
            slow_rounds[r] = min(left, args.chunk, args.count - r * args.chunk)
            left -= slow_rounds[r]
            if left <= 0:
                break
    print(f"{args.count} photos in {rounds} rounds of {args.chunk}; one exiftool process per file for "
          f"{sum(slow_rounds.values())} of them; {os.cpu_count()} cores, {load()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="faces-bench-metadata-") as tmp:
        work = Path(tmp)

        def make(label: str) -> tuple[Library, object]:
            library = Library.create(work / label.replace(" ", "_").replace(",", ""))
            settings = load_settings(work / "data", environ={}, overrides={
                "database_url": library.store.url, "metadata": {"write_names": True}})
            return library, settings

        variants: list[Variant] = [
            WriteNames(STAY_OPEN, *make(STAY_OPEN), ExifTool(), batch=50),
            WriteNames("stay-open, file by file", *make("stay-open, file by file"), ExifTool(), batch=1),
            WriteNames("process per command", *make("process per command"), OneShotExifTool(), batch=50),
        ]
        if slow_rounds:
            variants.append(ProcessPerFile("process per file", *make("process per file"), work / "json"))
        started = time.perf_counter()
        try:
            for variant in variants:  # one start per run, reported apart from the per-file numbers
                if isinstance(variant, WriteNames) and not isinstance(variant.tool, OneShotExifTool):
                    cpu, start = own_cpu(), time.perf_counter()
                    variant.tool.start()
                    wall, cpu = time.perf_counter() - start, own_cpu() - cpu + process_cpu(variant.tool.pid)
                    print(f"{variant.label}: starting exiftool took {1000 * wall:.0f} ms, {1000 * cpu:.0f} ms CPU "
                          f"(once per run, not in the numbers per file)", flush=True)
            for r in range(rounds):
                numbers = range(r * args.chunk, min(args.count, (r + 1) * args.chunk))
                copies = [(n, *payloads[n % len(payloads)]) for n in numbers]
                shift = r % len(variants)
                line = []
                for variant in variants[shift:] + variants[:shift]:
                    todo = copies[:slow_rounds.get(r, 0)] if variant.slow else copies
                    if not todo:
                        continue
                    image_ids, files = variant.library.add(todo)
                    wall, cpu = variant.run(image_ids, files)
                    variant.rounds[r] = (len(todo), wall, cpu)
                    line.append(f"{variant.label} {1000 * wall / len(todo):.0f}")
                print(f"round {r + 1}/{rounds} (ms per file): " + ", ".join(line), flush=True)
        finally:
            for variant in variants:
                variant.close()

    print(f"\n{time.perf_counter() - started:.0f} s in all; {load()}")
    print(f"{'variant':>24} {'files':>6} {'files/s':>8} {'wall ms/file':>13} {'CPU ms/file':>12}")
    for variant in variants:
        files, wall, cpu = per_file(variant)
        print(f"{variant.label:>24} {files:6d} {1 / wall:8.1f} {1000 * wall:13.1f} {1000 * cpu:12.1f}")
    base = variants[0]
    for other in variants[1:]:
        both = set(other.rounds) & set(base.rounds)
        _, wall, cpu = per_file(base, both)
        files, other_wall, other_cpu = per_file(other, both)
        print(f"stay-open vs {other.label}: {other_wall / wall:.1f}x faster (wall clock), {other_cpu / cpu:.1f}x "
              f"less CPU ({len(both)} rounds side by side, {files} files of {other.label})")


if __name__ == "__main__":
    main()
