"""SFace on 8-bit numbers (faces.finders.sface_int8): really 8-bit, and interchangeable with float32 embeddings
of the same faces, on the real model file and real photos of ../shared/data."""

from __future__ import annotations

import numpy as np
import pytest

from faces.finders import sface_int8
from faces.finders.onnx_proto import fields, strings
from faces.finders.opencv_finder import DETECTOR_FILE, EMBEDDER_FILE, OpenCVFinder, default_model_dir
from faces.media import load_image
from tests.finders.helpers import identity_sample

cv2 = pytest.importorskip("cv2")
onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def zoo() -> bytes:
    return (default_model_dir() / EMBEDDER_FILE).read_bytes()


def _ops(model: bytes) -> list[str]:
    graph = next(v for n, _, v, _ in fields(model) if n == 7)
    return [strings(node, 4)[0] for number, _, node, _ in fields(graph) if number == 1]


def test_every_convolution_runs_on_8_bit_numbers(zoo, tmp_path):
    """After onnxruntime's own optimizations, the 27 convolutions are QLinearConv and none is left in float."""
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(sface_int8.build(zoo), options, providers=["CPUExecutionProvider"])
    ops = _ops((tmp_path / "optimized.onnx").read_bytes())
    assert ops.count("QLinearConv") == 27
    assert "Conv" not in ops and "PRelu" not in ops


def test_8_bit_and_float_embeddings_can_be_compared(zoo, data_root):
    """A library holding float32 embeddings (OpenCV without onnxruntime, or a clone) and 8-bit ones: comparing a
    face's 8-bit embedding with the others' float ones separates people as well as float against float does."""
    names, plain, small = [], [], []
    detector = OpenCVFinder(_settings())
    detector.load()
    net = cv2.dnn.readNetFromONNX(np.frombuffer(zoo, np.uint8))
    session = onnxruntime.InferenceSession(sface_int8.build(zoo), providers=["CPUExecutionProvider"])
    for name, photos in identity_sample(data_root).items():
        for photo in photos:
            image = load_image(data_root / photo, detector.max_side)
            found = detector.detect(image)
            assert found, f"no face in {photo}"
            face = max(found, key=lambda f: f.box[2] * f.box[3])
            blob = _blob(image.pixels, face.landmarks, image.scale)
            net.setInput(blob, "data")
            plain.append(net.forward().reshape(-1))
            small.append(session.run(None, {"data": blob})[0].reshape(-1))
            names.append(name)
    assert len(set(names)) >= 20
    plain, small = _unit(np.array(plain)), _unit(np.array(small))
    same = np.equal.outer(names, names)
    upper = np.triu(np.ones_like(same), 1).astype(bool)
    tolerance = 0.637  # the opencv finder's default
    float_says = (1 - plain @ plain.T) <= tolerance
    mixed_says = (1 - small @ plain.T) <= tolerance
    agree = (float_says == mixed_says)[upper].mean()
    assert agree >= 0.995, f"the 8-bit embeddings change {1 - agree:.1%} of the same-person decisions"
    assert mixed_says[upper & same].mean() >= 0.9
    assert mixed_says[upper & ~same].mean() <= 0.01


def test_a_missing_range_or_another_model_is_refused(zoo):
    ranges = dict(sface_int8.RANGES)
    ranges.pop(sface_int8.activation_names(zoo)[5])
    with pytest.raises(ValueError, match="no calibrated range"):
        sface_int8.build(zoo, ranges)
    with pytest.raises(ValueError, match="not an SFace model"):
        sface_int8.build((default_model_dir() / DETECTOR_FILE).read_bytes())


def test_the_ranges_cover_every_activation(zoo):
    assert set(sface_int8.activation_names(zoo)) == set(sface_int8.RANGES)
    assert all(low < 0 < high for low, high in sface_int8.RANGES.values())


def _settings():
    import tempfile

    from faces.config import load_settings

    return load_settings(tempfile.mkdtemp(), environ={}).finders["opencv"]


def _blob(pixels: np.ndarray, landmarks, scale: float) -> np.ndarray:
    """The aligned 112x112 blob of a face found on ``pixels`` (landmarks in full-size coordinates)."""
    from faces.finders.opencv_finder import CROP, _bgr, align_face

    points = np.array(landmarks, np.float64) / scale
    return cv2.dnn.blobFromImage(align_face(_bgr(pixels), points), 1.0, (CROP, CROP), (0, 0, 0), True, False)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
