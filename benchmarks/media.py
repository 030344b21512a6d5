"""How much faster faces.media reads photos than the plain way, on real photos.

Usage: python benchmarks/media.py [FOLDER ...]   (default: ../shared/data; JPEGs of 2 MP and more, in two groups)

For each task it times faces.media and the plain Pillow way side by side on the same files, interleaved,
several rounds, and prints the best round of each with the ratio:
- probe: ``probe_image`` (hash + header + 1/8-scale decode to catch truncation) vs hash + full decode;
- detector input: ``load_image(max_side=1600)`` (reduced DCT decode, then resize) vs full decode + resize;
- thumbnail: ``make_thumbnail(320)`` vs full decode + ``Image.thumbnail``.
The machine is shared and noisy: compare the ratios, not the absolute numbers, and run it twice.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

from faces.media import find_image_files, load_image, make_thumbnail, probe_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data"
ROUNDS = 3


def plain_probe(path: Path) -> None:
    hashlib.sha256(path.read_bytes()).hexdigest()
    with Image.open(path) as image:
        image.load()


def plain_detector_input(path: Path) -> None:
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image.convert("RGB"))
        factor = 1600 / max(image.size)
        if factor < 1:
            image = image.resize((round(image.width * factor), round(image.height * factor)),
                                 Image.Resampling.BILINEAR)


def plain_thumbnail(path: Path) -> None:
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image.convert("RGB"))
        image.thumbnail((320, 320))
        image.save(io.BytesIO(), "JPEG", quality=85)


TASKS = [
    ("probe", lambda p: probe_image(p), plain_probe),
    ("detector input 1600", lambda p: load_image(p, max_side=1600), plain_detector_input),
    ("thumbnail 320", lambda p: make_thumbnail(p, 320), plain_thumbnail),
]


def run(files: list[Path], label: str) -> None:
    megapixels = sum(_pixels(p) for p in files) / 1e6
    print(f"\n{label}: {len(files)} JPEGs, {megapixels / len(files):.1f} MP on average")
    print(f"{'task':<22}{'faces.media img/s':>20}{'plain Pillow img/s':>20}{'ratio':>8}")
    for name, ours, plain in TASKS:
        best = {"ours": float("inf"), "plain": float("inf")}
        for _ in range(ROUNDS):
            for key, function in (("ours", ours), ("plain", plain)):
                started = time.perf_counter()
                for path in files:
                    function(path)
                best[key] = min(best[key], time.perf_counter() - started)
        ours_rate, plain_rate = len(files) / best["ours"], len(files) / best["plain"]
        print(f"{name:<22}{ours_rate:>20.1f}{plain_rate:>20.1f}{ours_rate / plain_rate:>7.2f}x")


def _pixels(path: Path) -> int:
    info = probe_image(path)
    return info.width * info.height


def main(argv: list[str]) -> None:
    folders = [Path(a) for a in argv] or [DEFAULT]
    files = [p for p in find_image_files(folders) if p.suffix.lower() in (".jpg", ".jpeg")]
    big = [p for p in files if _pixels(p) >= 6_000_000]
    medium = [p for p in files if 2_000_000 <= _pixels(p) < 6_000_000]
    if not big and not medium:
        sys.exit("no JPEG photos of 2 megapixels or more found")
    if big:
        run(big, "6 MP and more (phone and camera size)")
    if medium:
        run(medium, "2 to 6 MP")


if __name__ == "__main__":
    main(sys.argv[1:])
