"""Compare the dlib finder's detection policy with the face_recognition reference, image by image.

The reference is what ``face_recognition``'s command line does with each image (re-implemented here with dlib,
so that nothing but dlib is needed): full decode to RGB, shrink to 1600 px (LANCZOS) if larger, HOG with one
upsampling on the colour image, 5-point landmarks and the ResNet embedding of every face.
The finder is ``faces.media.load_image`` at the finder's ``max_side`` followed by ``DlibFinder.detect``.
Both run in the same process, one image at a time, alternating which goes first, so that the machine's noise
falls on both. CPU seconds (process time) are reported next to wall seconds: the machine is shared and noisy.

    python benchmarks/dlib_policy.py                       # default settings, every set
    python benchmarks/dlib_policy.py --max-side 1600 --upsample 1 --score 0.0 --sets gt,group

Prints, per set of photos: images, seconds for each side and their ratio, faces found, labelled faces matched
(``dlib_faces_gt/dev``, IoU >= 0.3) and faces reported on photos without any (``no_face/``, ``dogs.jpg``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests" / "finders"))

from helpers import labelled_boxes, matched_labels  # noqa: E402

from faces.config import load_settings  # noqa: E402
from faces.finders.dlib_finder import RESNET, SHAPE_PREDICTOR, DlibFinder, models_dir  # noqa: E402
from faces.media import load_image  # noqa: E402


def photo_sets(data: Path) -> dict[str, list[Path]]:
    """The photos of each set, by name."""
    gt = data / "dlib_faces_gt" / "dev"
    return {
        "gt": sorted(gt.glob("*.jpg")),
        "group": [data / "facenet_pytorch_data" / "multiface.jpg", data / "insightface_samples/python-package/t1.jpg",
                  data / "group_photos/serengil_retinaface/img3.jpg", data / "deepface_unit/couple.jpg",
                  data / "deepface_unit/selfie-many-people.jpg"]
        + sorted((data / "faceapi_bbt" / "scenes").glob("bbt*.jpg"))
        + sorted((data / "wikimedia_commons_people").rglob("*.jpg")),
        "deepface": sorted((data / "deepface_unit").glob("img*.jpg")),
        "examples": sorted(data.glob("face_recognition_examples/**/*.jpg")),
        "noface": sorted((data / "no_face").rglob("*.png")) + sorted((data / "no_face").rglob("*.jpg")),
    }


class Reference:
    """face_recognition's command-line pipeline, with dlib directly."""

    def __init__(self):
        import dlib

        folder = models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(folder / SHAPE_PREDICTOR))
        self.encoder = dlib.face_recognition_model_v1(str(folder / RESNET))

    def __call__(self, path: Path) -> list[tuple[int, int, int, int]]:
        picture = Image.open(path).convert("RGB")
        pixels = np.array(picture)
        factor = 1.0
        if max(pixels.shape) > 1600:
            small = Image.fromarray(pixels)
            small.thumbnail((1600, 1600), Image.LANCZOS)
            factor = pixels.shape[1] / small.size[0]
            pixels = np.array(small)
        rects = self.detector(pixels, 1)
        shapes = [self.landmarks(pixels, r) for r in rects]
        for shape in shapes:
            np.array(self.encoder.compute_face_descriptor(pixels, shape, 1))
        return [(round(r.left() * factor), round(r.top() * factor), round(r.width() * factor),
                 round(r.height() * factor)) for r in rects]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", default="gt,group,deepface,examples,noface")
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--upsample", type=int, default=None)
    parser.add_argument("--score", type=float, default=None)
    parser.add_argument("--min-face", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--verbose", action="store_true", help="one line per photo")
    args = parser.parse_args()

    overrides = {k: v for k, v in {"max_side": args.max_side, "upsample": args.upsample,
                                   "score_threshold": args.score, "min_face_size": args.min_face,
                                   "model": args.model}.items() if v is not None}
    settings = load_settings(tempfile.mkdtemp(), environ={}, overrides={"finders": {"dlib": overrides}})
    finder = DlibFinder(settings.finders["dlib"])
    finder.load()
    reference = Reference()
    labels = labelled_boxes(args.data)
    conf = settings.finders["dlib"]
    print(f"finder: model={finder.model} max_side={finder.max_side} upsample<={conf.upsample} "
          f"min_face_size={conf.min_face_size} score>={conf.score_threshold}")
    print(f"{'set':9s} {'images':>6s} {'ref s':>7s} {'ours s':>7s} {'ratio':>6s} {'ref cpu':>7s} {'our cpu':>7s} "
          f"{'ratio':>6s} {'faces ref/ours':>14s} {'labelled ref/ours':>17s} {'no-face FP ref/ours':>19s}")
    totals = np.zeros(4)
    for name in args.sets.split(","):
        paths = photo_sets(args.data)[name]
        wall = np.zeros(2)
        cpu = np.zeros(2)
        faces = [0, 0]
        matched = [0, 0]
        false = [0, 0]
        total_labels = 0
        for i, path in enumerate(paths):
            found: list = [None, None]
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for side in order:
                started, started_cpu = time.perf_counter(), time.process_time()
                if side == 0:
                    found[0] = reference(path)
                else:
                    found[1] = [f.box for f in finder.detect(load_image(path, finder.max_side))]
                wall[side] += time.perf_counter() - started
                cpu[side] += time.process_time() - started_cpu
            for side in (0, 1):
                faces[side] += len(found[side])
                if path in labels:
                    matched[side] += matched_labels(found[side], labels[path])
                if name == "noface" or path.name == "dogs.jpg":
                    false[side] += len(found[side])
            total_labels += len(labels.get(path, []))
            if args.verbose:
                size = Image.open(path).size
                print(f"    {path.relative_to(args.data)} {size}: ref {len(found[0])} ours {len(found[1])}")
        totals += [wall[0], wall[1], cpu[0], cpu[1]]
        print(f"{name:9s} {len(paths):6d} {wall[0]:7.2f} {wall[1]:7.2f} {wall[0] / wall[1]:6.2f} {cpu[0]:7.2f} "
              f"{cpu[1]:7.2f} {cpu[0] / cpu[1]:6.2f} {faces[0]:>6d}/{faces[1]:<7d} "
              f"{f'{matched[0]}/{matched[1]} of {total_labels}' if total_labels else '-':>17s} "
              f"{f'{false[0]}/{false[1]}':>19s}")
    print(f"{'all':9s} {'':6s} {totals[0]:7.2f} {totals[1]:7.2f} {totals[0] / totals[1]:6.2f} {totals[2]:7.2f} "
          f"{totals[3]:7.2f} {totals[2] / totals[3]:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
