"""Measure the activation ranges of SFace's 8-bit version (faces.finders.sface_int8.RANGES) on real faces.

The faces are those of the group photos in ../shared/data (photos of several people that are not in
identities.csv, so the recognition benchmark's photos play no part in the calibration), found by YuNet and
aligned as the opencv finder does. SFace's float32 version (``sface_int8.build(..., ranges=None)``) runs on each,
and each activation's range is taken as the ``--percentile`` and ``100 - --percentile`` of its values.

With --write the ranges replace ``RANGES`` in src/faces/finders/sface_int8.py; without, they are printed with how
close the 8-bit embeddings come to the float ones on the faces of identities.csv (cosine similarity).

Usage (from the project root, venv active):
    python benchmarks/calibrate_sface.py [--data ../shared/data] [--percentile 0.001] [--write]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT.parent / "shared" / "data").resolve()
SAMPLES_PER_FACE = 20000  # values kept of each activation of each face (the biggest has 802,816)


def group_photos(data: Path) -> list[Path]:
    """Photos of several people: not in identities.csv, so not part of the recognition benchmark."""
    singles = {row[0] for row in csv.reader((data / "identities.csv").open())}
    files = [data / name for name in ("group_photos/serengil_retinaface/img3.jpg", "facenet_pytorch_data/multiface.jpg",
                                      "insightface_samples/python-package/t1.jpg", "deepface_unit/couple.jpg",
                                      "deepface_unit/selfie-many-people.jpg")]
    files += sorted((data / "faceapi_bbt" / "scenes").glob("*.jpg"))
    files += sorted((data / "dlib_faces_gt" / "dev").glob("*.jpg"))
    files += [p for p in sorted((data / "wikimedia_commons_people").rglob("*.jpg"))
              if str(p.relative_to(data)) not in singles]
    return [f for f in files if f.is_file() and "dogs" not in f.name]


def single_photos(data: Path, every: int = 3) -> list[Path]:
    """Every ``every``-th photo of identities.csv (one person each), to compare the embeddings."""
    rows = [row[0] for row in csv.reader((data / "identities.csv").open()) if not row[0].startswith("path")]
    return [data / row for row in rows[::every]]


def aligned_faces(files: list[Path]) -> np.ndarray:
    """The (N, 3, 112, 112) float32 blobs of every face YuNet finds in ``files``, aligned for SFace."""
    from faces.config import load_settings
    from faces.finders import opencv_finder
    from faces.media.reading import load_image

    settings = load_settings(tempfile.mkdtemp()).finders["opencv"]
    finder = opencv_finder.OpenCVFinder(settings)
    # only YuNet is needed (and loading the whole finder would need the ranges being measured)
    detector_file = finder.model_dir / opencv_finder.DETECTOR_FILE
    finder._detector = opencv_finder._detector(np.frombuffer(detector_file.read_bytes(), np.uint8),
                                               settings.score_threshold, opencv_finder.detector_engine())
    blobs = []
    for path in files:
        image = load_image(path, max_side=finder.max_side)
        pixels = opencv_finder._bgr(image.pixels)
        for row in finder._upright(pixels):
            aligned = opencv_finder.align_face(pixels, row[4:14])
            blobs.append(cv2.dnn.blobFromImage(aligned, 1.0, (112, 112), (0, 0, 0), True, False))
    return np.concatenate(blobs)


def session(model: bytes):
    from faces.finders.ort import single_thread_session

    return single_thread_session(model)


def measure_ranges(zoo: bytes, faces: np.ndarray, percentile: float) -> dict[str, tuple[float, float]]:
    from faces.finders import sface_int8

    names = sface_int8.activation_names(zoo)
    run = session(sface_int8.build(zoo, ranges=None, expose=True))
    rng = np.random.default_rng(0)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for face in faces:
        for name, values in zip(names, run.run(names, {"data": face[None]})):
            flat = values.reshape(-1)
            samples[name].append(flat if flat.size <= SAMPLES_PER_FACE else rng.choice(flat, SAMPLES_PER_FACE))
    ranges = {}
    for name in names:
        values = np.concatenate(samples[name])
        ranges[name] = (float(np.percentile(values, percentile)), float(np.percentile(values, 100 - percentile)))
    return ranges


def embeddings(model: bytes, faces: np.ndarray) -> np.ndarray:
    run = session(model)
    return np.concatenate([run.run(None, {"data": face[None]})[0] for face in faces])


def write_ranges(ranges: dict[str, tuple[float, float]]) -> None:
    path = ROOT / "src" / "faces" / "finders" / "sface_int8.py"
    lines = "".join(f"    {name!r}: ({low:.6g}, {high:.6g}),\n" for name, (low, high) in ranges.items())
    head = "RANGES: dict[str, tuple[float, float]] = {"
    text = re.sub(re.escape(head) + r"(\}\n|\n.*?\n\}\n)", lambda _: head + "\n" + lines + "}\n", path.read_text(),
                  count=1, flags=re.S)
    path.write_text(text)
    print(f"wrote {len(ranges)} ranges into {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--percentile", type=float, default=0.001)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from faces.finders import opencv_finder, sface_int8

    zoo = (opencv_finder.default_model_dir() / opencv_finder.EMBEDDER_FILE).read_bytes()
    calibration = aligned_faces(group_photos(args.data))
    print(f"{len(calibration)} faces of {len(group_photos(args.data))} group photos for the calibration")
    ranges = measure_ranges(zoo, calibration, args.percentile)
    test = aligned_faces(single_photos(args.data))
    reference = embeddings(sface_int8.build(zoo, ranges=None), test)
    quantized = embeddings(sface_int8.build(zoo, ranges=ranges), test)
    cosine = (reference * quantized).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(quantized, axis=1)
    print(f"{len(test)} faces of identities.csv: cosine similarity of 8-bit to float embeddings: "
          f"mean {cosine.mean():.4f}, 1st percentile {np.percentile(cosine, 1):.4f}, min {cosine.min():.4f}")
    if args.write:
        write_ranges(ranges)
    else:
        for name, (low, high) in ranges.items():
            print(f"  {name}: {low:.4g} .. {high:.4g}")


if __name__ == "__main__":
    sys.exit(main())
