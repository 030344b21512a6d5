"""dlib's face ResNet run by onnxruntime or OpenCV (faces.finders.dlib_resnet) against dlib's own, on real photos of
../shared/data.

The faces are found and aligned by dlib itself (HOG, 5-point landmarks); both engines then embed the same faces.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

import faces.finders.dlib_finder as dlib_finder
from faces.config import load_settings
from faces.finders.dlib_finder import RESNET, SHAPE_PREDICTOR, DlibFinder, models_dir
from faces.finders.dlib_resnet import DlibResNet, ResNetFormatError, read_weights
from faces.media import load_image

dlib = pytest.importorskip("dlib")

GROUP_PHOTOS = ["faceapi_bbt/scenes/bbt4.jpg", "facenet_pytorch_data/multiface.jpg",
                "wikimedia_commons_people/bildes/Group_Photo_NWPApril2021.jpg"]
PEOPLE = ["barack_obama", "angelina_jolie", "katy_perry", "scarlett_johansson", "jennifer_aniston",
          "robert_downey_jr", "matt_damon", "mark_zuckerberg"]
PER_PERSON = 3
MAX_DIFFERENCE = 1e-4  # per component; the embeddings' components are about 0.1 in size


@pytest.fixture(scope="module")
def models():
    """dlib's detector, 5-point predictor and ResNet, and the fast engine (onnxruntime) on the same ResNet file."""
    folder = models_dir()
    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / SHAPE_PREDICTOR)),
            dlib.face_recognition_model_v1(str(folder / RESNET)), DlibResNet(folder / RESNET))


def _embed_both(models, path):
    """The faces of ``path`` (decoded at 1024 px) embedded by dlib and by DlibResNet, two (n, 128) arrays, and
    the index of the biggest face."""
    detector, predictor, resnet, fast = models
    pixels = load_image(path, 1024).pixels
    rects = list(detector(pixels, 1))
    assert rects, f"no face in {path}"
    shapes = dlib.full_object_detections()
    for rect in rects:
        shapes.append(predictor(pixels, rect))
    reference = np.array([np.asarray(d) for d in resnet.compute_face_descriptor(pixels, shapes, 0, 0.25)])
    chips = np.stack(dlib.get_face_chips(pixels, shapes, size=150, padding=0.25))
    return reference, fast.embed(chips), int(np.argmax([rect.area() for rect in rects]))


@pytest.fixture(scope="module")
def identities(data_root):
    """PER_PERSON photos of each of PEOPLE, from identities.csv."""
    by_person: dict[str, list[str]] = {}
    for line in (data_root / "identities.csv").read_text().splitlines()[1:]:
        path, person, _ = line.split(",")
        by_person.setdefault(person, []).append(path)
    return {person: sorted(by_person[person])[:PER_PERSON] for person in PEOPLE}


def test_group_photos_embed_as_dlib_does(models, data_root):
    """All the faces of a photo go through the network as one batch; each comes out as dlib's own embedding."""
    count = 0
    for photo in GROUP_PHOTOS:
        reference, fast, _ = _embed_both(models, data_root / photo)
        assert len(reference) >= 3, photo
        assert fast.shape == reference.shape and fast.dtype == np.float32
        assert np.abs(fast - reference).max() < MAX_DIFFERENCE, photo
        count += len(reference)
    assert count >= 15


def test_same_person_closer_than_different_people(models, identities, data_root):
    """On photos of 8 people: the embeddings equal dlib's, and every same-person pair is closer than every
    different-person pair (measured: same person at most 0.61, different people at least 0.68)."""
    vectors, names = [], []
    for person, photos in identities.items():
        for photo in photos:
            reference, fast, biggest = _embed_both(models, data_root / photo)
            assert np.abs(fast - reference).max() < MAX_DIFFERENCE, photo
            vectors.append(fast[biggest])
            names.append(person)
    same, different = [], []
    for i, j in combinations(range(len(vectors)), 2):
        (same if names[i] == names[j] else different).append(float(np.linalg.norm(vectors[i] - vectors[j])))
    assert len(same) == len(PEOPLE) * 3
    assert max(same) < min(different), (max(same), min(different))


def test_a_file_that_is_not_the_face_resnet_is_refused(tmp_path):
    folder = models_dir()
    with pytest.raises(ResNetFormatError):
        read_weights(folder / SHAPE_PREDICTOR)
    cut = tmp_path / "cut.dat"
    cut.write_bytes((folder / RESNET).read_bytes()[: 1 << 20])
    with pytest.raises(ResNetFormatError, match="ends too early"):
        DlibResNet(cut)


def test_the_finder_falls_back_to_dlib_and_embeds_the_same(tmp_path, monkeypatch, data_root):
    """The finder embeds with OpenCV; when the weights cannot be read it says so in its self check, embeds with
    dlib itself, and finds the same faces with the same embeddings."""
    settings = load_settings(tmp_path, environ={})
    image = load_image(data_root / GROUP_PHOTOS[1], 1024)
    fast_finder = DlibFinder(settings.finders["dlib"])
    fast_finder.load()
    assert fast_finder.self_check().details["embedding_engine"] == "onnxruntime"
    fast_faces = fast_finder.detect(image)
    assert len(fast_faces) >= 3

    def unreadable(path):
        raise ResNetFormatError(f"not the expected network: {path}")

    monkeypatch.setattr(dlib_finder, "DlibResNet", unreadable)
    for name, empty in (("embedder", None), ("resnet", None), ("engine", "")):
        monkeypatch.setattr(dlib_finder._Models, name, empty)
    fallback = DlibFinder(settings.finders["dlib"])
    fallback.load()
    check = fallback.self_check()
    assert check.ok
    assert check.details["embedding_engine"].startswith("dlib (fallback: ResNetFormatError: not the expected")
    faces = fallback.detect(image)
    assert [f.box for f in faces] == [f.box for f in fast_faces]
    for face, fast_face in zip(faces, fast_faces):
        assert np.abs(face.embedding - fast_face.embedding).max() < MAX_DIFFERENCE


def test_without_onnxruntime_opencv_embeds_the_same(models, monkeypatch, data_root):
    """Where onnxruntime cannot be imported, OpenCV's dnn runs the same network to the same embeddings."""
    import faces.finders.dlib_resnet as dlib_resnet

    monkeypatch.setattr(dlib_resnet, "onnxruntime_version", lambda: "")
    opencv = DlibResNet(models_dir() / RESNET)
    assert opencv.engine == "opencv-dnn" and models[3].engine == "onnxruntime"
    detector, predictor, _, fast = models
    pixels = load_image(data_root / GROUP_PHOTOS[1], 1024).pixels
    shapes = dlib.full_object_detections()
    for rect in detector(pixels, 1):
        shapes.append(predictor(pixels, rect))
    chips = np.stack(dlib.get_face_chips(pixels, shapes, size=150, padding=0.25))
    assert len(chips) >= 3
    np.testing.assert_allclose(opencv.embed(chips), fast.embed(chips), atol=MAX_DIFFERENCE)
