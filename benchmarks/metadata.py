"""Benchmark: writing names into 1,000 photos with one stay-open exiftool versus one exiftool process per file.

Setup (not timed): real photos of ../shared/data (the four hand-labelled photos of dlib_faces_gt/dev) are copied
N times into a temporary folder, each copy made unique by a JPEG comment; a fresh SQLite library gets one image
per copy and one confirmed face per labelled box (18 faces per 4 photos, 20 different names).

Timed, each on fresh copies of the same files:
- ``stay-open``: :func:`faces.metadata.write_names` as faces runs it: one exiftool process for the whole batch;
  per file one read, one write into a copy, one read back to verify, one atomic rename, the new content hash;
- ``process per command``: the same code, but every exiftool command starts its own exiftool (3 per file);
- ``process per file``: the least a one-process-per-file script can do: one ``exiftool -json=TAGS
  -overwrite_original FILE`` per file with the same tags (no read, no verify, no copy): a floor for that way.
Prints files/s and seconds for each and the ratios. The machine is shared and noisy: compare the ratios of one
run, not absolute numbers across runs.

Usage (from the project root, venv active):
    python benchmarks/metadata.py [--count 1000] [--per-command-count N] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faces.config import load_settings  # noqa: E402
from faces.media import probe_image  # noqa: E402
from faces.metadata import ExifTool, OneShotExifTool, write_names  # noqa: E402
from faces.metadata import tags as T  # noqa: E402
from faces.metadata.exiftool import _config_file, find_exiftool  # noqa: E402
from faces.store.db import Store  # noqa: E402
from faces.store.models import Face, FaceState, Image, Name, User  # noqa: E402

DEFAULT_DATA = (ROOT.parent / "shared" / "data").resolve()


def sources(data: Path) -> list[tuple[Path, list[tuple[int, int, int, int]]]]:
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


def make_copies(folder: Path, plan: list[tuple[Path, int]]) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cache: dict[Path, bytes] = {}
    out = []
    for number, (source, _) in enumerate(plan):
        data = cache.setdefault(source, source.read_bytes())
        target = folder / f"photo{number:05d}.jpg"
        unique_copy(data, target, number)
        out.append(target)
    return out


def build_library(store: Store, files: list[Path], plan, box_sets) -> int:
    with store.session() as session:
        user = User(username="bench", display_name="Bench")
        session.add(user)
        session.flush()
        names = [Name(owner_id=user.id, name=f"Person {i + 1}") for i in range(20)]
        session.add_all(names)
        session.flush()
        k = 0
        for path, (_, source_index) in zip(files, plan):
            info = probe_image(path)
            image = Image(owner_id=user.id, content_hash=info.content_hash, path=str(path), bytes=info.bytes,
                          width=info.width, height=info.height, orientation=info.orientation, format=info.format)
            session.add(image)
            session.flush()
            for x, y, w, h in box_sets[source_index]:
                session.add(Face(owner_id=user.id, image_id=image.id, x=x, y=y, w=w, h=h,
                                 state=FaceState.CONFIRMED, name_id=names[k % 20].id))
                k += 1
        return user.id


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (exiftool included once it has exited)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed_write(store, settings, owner_id: int, tool) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, report) of writing every image with ``tool``."""
    cpu, start = cpu_seconds(), time.perf_counter()
    try:
        report = write_names(store, settings, owner_id, exiftool=tool)
    finally:
        tool.close()
    return time.perf_counter() - start, cpu_seconds() - cpu, report


def per_file_floor(store, owner_id: int, files: list[Path], workdir: Path) -> tuple[float, float]:
    """One ``exiftool -json=TAGS -overwrite_original FILE`` process per file, with the tags faces would write."""
    from faces.metadata.writer import load_jobs

    settings = load_settings(workdir / "data", environ={})
    with store.session() as session:
        ids = [i for (i,) in session.execute(
            Image.__table__.select().with_only_columns(Image.id).order_by(Image.id))]
        jobs, _ = load_jobs(session, settings, owner_id, ids)
    docs = []
    for job in jobs:
        empty = T.FileTags(path=job.path, file_type="JPEG", stored_size=job.upright_size)
        plan = T.plan(empty, job.faces, upright_size=job.upright_size, orientation=job.orientation, iptc=True)
        doc = workdir / "json" / f"{job.image_id}.json"
        doc.parent.mkdir(exist_ok=True)
        doc.write_text(json.dumps(T.json_document(plan.assign), ensure_ascii=False), encoding="utf-8")
        docs.append((doc, job.path))
    config = _config_file()
    exe = find_exiftool()
    try:
        cpu, start = cpu_seconds(), time.perf_counter()
        for doc, path in docs:
            subprocess.run([exe, "-config", config, "-q", "-m", f"-json={doc}", "-overwrite_original", path],
                           check=True, capture_output=True)
        return time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        Path(config).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="photos to write (default 1000)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-command-count", type=int, default=None,
                        help="photos for the slowest run, one exiftool per command (default: --count; 0: skip)")
    args = parser.parse_args()
    if not find_exiftool():
        sys.exit("exiftool is not installed (apt-get install libimage-exiftool-perl)")

    srcs = sources(args.data)
    plan = [(srcs[i % len(srcs)][0], i % len(srcs)) for i in range(args.count)]
    box_sets = [b for _, b in srcs]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="faces-bench-metadata-") as tmp:
        work = Path(tmp)
        per_command = args.count if args.per_command_count is None else args.per_command_count
        runs = [("stay-open", ExifTool, args.count)]
        if per_command:
            runs.append(("process per command", OneShotExifTool, per_command))
        for label, cls, count in runs:
            files = make_copies(work / "photos", plan[:count])
            store = Store(f"sqlite:///{work / (label.replace(' ', '_') + '.db')}")
            settings = load_settings(work / "data", environ={},
                                     overrides={"database_url": store.url, "metadata": {"write_names": True}})
            owner_id = build_library(store, files, plan[:count], box_sets)
            seconds, cpu, report = timed_write(store, settings, owner_id, cls())
            if report.written != count or report.failed:
                sys.exit(f"{label}: {report.written} written, failures: {report.failed[:3]}")
            results[label] = (seconds / count, cpu / count)
            faces = sum(len(box_sets[i]) for _, i in plan[:count])
            print(f"{label:>22}: {count} files ({faces} faces) in {seconds:7.1f} s = {count / seconds:6.1f} "
                  f"files/s; CPU {1000 * cpu / count:6.1f} ms per file", flush=True)
            store.dispose()
        files = make_copies(work / "photos", plan)
        store = Store(f"sqlite:///{work / 'floor.db'}")
        owner_id = build_library(store, files, plan, box_sets)
        seconds, cpu = per_file_floor(store, owner_id, files, work)
        results["process per file"] = (seconds / args.count, cpu / args.count)
        print(f"{'process per file':>22}: {args.count} files in {seconds:7.1f} s = {args.count / seconds:6.1f} "
              f"files/s; CPU {1000 * cpu / args.count:6.1f} ms per file (write only: no read, no verify)")
        store.dispose()
    wall, cpu = results["stay-open"]
    for label, (other_wall, other_cpu) in results.items():
        if label != "stay-open":
            print(f"stay-open vs {label}: {other_wall / wall:.1f}x faster (wall clock), "
                  f"{other_cpu / cpu:.1f}x less CPU")


if __name__ == "__main__":
    main()
