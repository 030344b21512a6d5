"""YuNet and SFace in onnxruntime against OpenCV's own cv2.FaceDetectorYN and cv2.dnn, and the ONNX rewriting they
need (faces.finders.onnx_proto), on the real model files and real photos of ../shared/data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faces.finders import sface_int8
from faces.finders.onnx_proto import dequantize, fields, float_weights
from faces.finders.opencv_finder import (
    CROP,
    DETECTOR_FILE,
    EMBEDDER_FILE,
    _bgr,
    _embedder,
    _reduced,
    align_face,
    default_model_dir,
    detector_engine,
)
from faces.finders.yunet import YuNetRuntime
from faces.media import load_image

cv2 = pytest.importorskip("cv2")
onnxruntime = pytest.importorskip("onnxruntime")

PHOTOS = [
    "faceapi_bbt/scenes/bbt1.jpg",  # 4 faces
    "wikimedia_commons_people/bildes/Rumba_Kings_Band_Group_Photo_2023.jpg",  # 13 faces, 1280 px
    "facenet_pytorch_data/multiface.jpg",
    "deepface_unit/img1.jpg",  # one big face
    "deepface_unit/couple.jpg",
]


@pytest.fixture(scope="module")
def model() -> bytes:
    return (default_model_dir() / DETECTOR_FILE).read_bytes()


def _opencv(model: bytes, threshold: float):
    return cv2.FaceDetectorYN.create("onnx", np.frombuffer(model, np.uint8), np.empty(0, np.uint8), (320, 320),
                                     threshold, 0.3, 5000)


def _rows(detector, bgr) -> np.ndarray:
    detector.setInputSize((bgr.shape[1], bgr.shape[0]))
    rows = detector.detect(bgr)[1]
    return np.zeros((0, 15), np.float32) if rows is None else rows[np.lexsort((rows[:, 1], rows[:, 0]))]


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("side", [1280, 320])
def test_same_rows_as_opencvs_face_detector(model, data_root, photo, side):
    """Boxes, landmarks and scores as cv2.FaceDetectorYN gives them, on sizes that are not multiples of 32."""
    bgr, _ = _reduced(_bgr(load_image(data_root / photo).pixels), side)
    ours, theirs = _rows(YuNetRuntime(model, 0.8, 0.3, 5000), bgr), _rows(_opencv(model, 0.8), bgr)
    assert len(ours) == len(theirs)
    if side == 1280:
        assert len(ours) >= 1
    np.testing.assert_allclose(ours[:, :14], theirs[:, :14], atol=0.05)
    np.testing.assert_allclose(ours[:, 14], theirs[:, 14], atol=1e-4)


def test_score_threshold_applies(model, data_root):
    bgr = _bgr(load_image(data_root / PHOTOS[1], 1280).pixels)
    detector = YuNetRuntime(model, 0.8, 0.3, 5000)
    many = _rows(detector, bgr)
    middle = float(np.median(many[:, 14]))
    detector.setScoreThreshold(middle)
    few = _rows(detector, bgr)
    assert 0 < len(few) < len(many)
    assert few[:, 14].min() >= middle


def test_an_image_without_faces_gives_none(model):
    detector = YuNetRuntime(model, 0.8, 0.3, 5000)
    assert detector.detect(np.full((200, 333, 3), 127, np.uint8)) == (1, None)


def test_the_finder_uses_onnxruntime_when_installed():
    assert detector_engine() == "onnxruntime"


def _sface_pairs(model: bytes, data_root, ours):
    """(ours, OpenCV's) embeddings of the faces of 3 photos: ``ours`` maps an aligned blob to an embedding."""
    net = cv2.dnn.readNetFromONNX(np.frombuffer((default_model_dir() / EMBEDDER_FILE).read_bytes(), np.uint8))
    pairs = []
    for photo in PHOTOS[:3]:
        bgr = _bgr(load_image(data_root / photo, 1280).pixels)
        for row in _rows(YuNetRuntime(model, 0.8, 0.3, 5000), bgr):
            blob = cv2.dnn.blobFromImage(align_face(bgr, row[4:14]), 1.0, (CROP, CROP), (0, 0, 0), True, False)
            net.setInput(blob, "data")
            pairs.append((np.asarray(ours(blob)).reshape(-1), net.forward().reshape(-1)))
    assert len(pairs) >= 15
    return pairs


def test_sface_rewritten_in_float_embeds_as_opencv_does(model, data_root):
    """SFace with batch normalization folded and PRelu as Max (sface_int8.build without ranges) gives OpenCV's
    embeddings of real faces: the rewrite itself changes nothing."""
    session = onnxruntime.InferenceSession(sface_int8.build((default_model_dir() / EMBEDDER_FILE).read_bytes(), None))
    for mine, theirs in _sface_pairs(model, data_root, lambda blob: session.run(None, {"data": blob})[0]):
        assert np.linalg.norm(theirs) > 5
        np.testing.assert_allclose(mine, theirs, atol=2e-3 * np.abs(theirs).max())


def test_the_finders_8_bit_sface_stays_close_to_opencvs(model, data_root):
    """The embedder the finder uses (8-bit activations) points each face the same way as OpenCV's float32."""
    ours = _embedder(np.frombuffer((default_model_dir() / EMBEDDER_FILE).read_bytes(), np.uint8), "onnxruntime")
    cosines = [float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in _sface_pairs(model, data_root,
                                                                                                    ours)]
    assert min(cosines) > 0.97
    assert np.mean(cosines) > 0.985


def test_blockwise_dequantize_follows_onnx():
    """Blocks of 2 along axis 1, the last block short: each element uses its own block's scale and zero point."""
    x = np.array([[1, 2, 3, 4, 5], [-1, -2, -3, -4, -5]], np.int8)
    scale = np.array([[0.5, 1.0, 2.0], [1.0, 0.25, 4.0]], np.float32)
    zero = np.array([[1, 0, 5], [0, -2, 0]], np.int8)
    expected = np.array([[0.0, 0.5, 3.0, 4.0, 0.0], [-1.0, -2.0, -0.25, -0.5, -20.0]], np.float32)
    np.testing.assert_array_equal(dequantize(x, scale, zero, axis=1, block_size=2), expected)
    np.testing.assert_array_equal(dequantize(x[0], np.float32(2), np.int8(1)), (x[0] - 1) * 2)


@st.composite
def _blocked_tensors(draw):  # noqa: ANN001, ANN202 - a strategy
    """An int8 tensor of 1 to 3 dimensions, an axis, a block size, and a scale and zero point per block."""
    shape = draw(st.lists(st.integers(1, 7), min_size=1, max_size=3))
    axis = draw(st.integers(0, len(shape) - 1))
    block = draw(st.integers(1, 5))
    blocks = -(-shape[axis] // block)
    param_shape = shape[:axis] + [blocks] + shape[axis + 1:]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, shape).astype(np.int8)
    scale = rng.uniform(0.01, 4, param_shape).astype(np.float32)
    zero = rng.integers(-128, 128, param_shape).astype(np.int8)
    return x, scale, zero, axis, block


@given(_blocked_tensors())
def test_blockwise_dequantize_matches_the_onnx_definition(case):
    """ONNX defines a blocked scale as repeated ``block_size`` times along ``axis`` and cut to ``x``'s length."""
    x, scale, zero, axis, block = case
    cut = (slice(None),) * axis + (slice(0, x.shape[axis]),)
    full_scale = np.repeat(scale, block, axis=axis)[cut]
    full_zero = np.repeat(zero, block, axis=axis)[cut].astype(np.float32)
    expected = (x.astype(np.float32) - full_zero) * full_scale
    got = dequantize(x, scale, zero, axis=axis, block_size=block)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_float_weights_leaves_no_quantized_node_and_opens_the_input_shape(model):
    graph = next(v for n, _, v, _ in fields(float_weights(model)) if n == 7)
    ops = [next(bytes(v).decode() for n, _, v, _ in fields(node) if n == 4)
           for number, _, node, _ in fields(graph) if number == 1]
    assert "DequantizeLinear" not in ops and "Conv" in ops
    session = onnxruntime.InferenceSession(float_weights(model))
    assert session.get_inputs()[0].shape[2:] != [640, 640]


def test_not_a_model_is_refused():
    with pytest.raises(ValueError):
        float_weights(b"\x0a\x05abc")


def test_without_onnxruntime_the_finder_runs_in_opencv_with_the_same_results(tmp_path, monkeypatch, data_root):
    """Where onnxruntime cannot be imported, the opencv finder runs both networks in OpenCV: the same faces, the
    same embeddings up to onnxruntime's 8-bit SFace, and the self check names the engine."""
    import faces.finders.opencv_finder as opencv_finder
    from faces.config import load_settings
    from faces.finders.registry import create_finder

    settings = load_settings(tmp_path, environ={})
    image = load_image(data_root / PHOTOS[1], 1280)
    fast = create_finder("opencv", settings)
    fast.load()
    monkeypatch.setattr(opencv_finder, "onnxruntime_version", lambda: "")
    plain = create_finder("opencv", settings)
    plain.load()
    assert "onnxruntime" in fast.self_check().details["detector"]
    assert "opencv" in plain.self_check().details["detector"]
    assert "onnxruntime" not in plain.self_check().libraries
    ours, theirs = fast.detect(image), plain.detect(image)
    assert len(ours) == len(theirs) >= 10
    for a, b in zip(sorted(ours, key=lambda f: f.box), sorted(theirs, key=lambda f: f.box)):
        assert np.allclose(a.box, b.box, atol=1)
        cosine = float(np.dot(a.embedding, b.embedding) / np.linalg.norm(a.embedding) / np.linalg.norm(b.embedding))
        assert cosine > 0.97
