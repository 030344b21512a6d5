"""Reading face regions already in files: on intake (the ``images_added`` event of the pipeline), as faces with
confirmed names, matched to detected faces by overlap."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps
from sqlalchemy import select

from faces.jobs.matching import same_face
from faces.jobs.pipeline import add_images, run_detection
from faces.metadata import ExifTool, import_regions, read_regions, write_names
from faces.metadata import geometry
from faces.store.models import Embedding, Face, Image
from tests.media.helpers import stored_for_orientation
from tests.metadata.conftest import GROUP_PHOTO, Library, exiftool_set, labelled_boxes

NAMES = ["Ann", "Bob", "Cy"]


def mwg_argument(boxes, names, size=(500, 375)) -> str:
    """An exiftool assignment of MWG face regions, as digiKam or Lightroom write them."""
    items = []
    for (x, y, w, h), name in zip(boxes, names):
        items.append(f"{{Area={{X={(x + w / 2) / size[0]},Y={(y + h / 2) / size[1]},W={w / size[0]},"
                     f"H={h / size[1]},Unit=normalized}},Name={name},Type=Face}}")
    return (f"-XMP-mwg-rs:RegionInfo={{AppliedToDimensions={{W={size[0]},H={size[1]},Unit=pixel}},"
            f"RegionList=[{','.join(items)}]}}")


def image_of(store, owner_id: int, path) -> int:
    with store.session() as session:
        return session.scalar(select(Image.id).where(Image.owner_id == owner_id, Image.path == str(path)))


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_regions_of_another_program_become_named_faces(orientation, photo, data_root, library, store,
                                                       settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)  # stored pixels: MWG areas refer to them
    exiftool_set(path, "-n", f"-IFD0:Orientation={orientation}", mwg_argument(labels, NAMES))
    added = add_images(store, settings, library.owner_id, [path], finders=[])  # the intake event reads them
    faces = library.faces(added.added[0])
    assert sorted(f[0] for f in faces) == NAMES
    assert {(f[2], f[3]) for f in faces} == {("file", "confirmed")}
    # each face shows, upright, exactly the pixels of its region in the stored picture
    stored = np.asarray(PILImage.open(path))
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    for name, (x, y, w, h), _, _ in faces:
        sx, sy, sw, sh = labels[NAMES.index(name)]
        assert np.array_equal(stored[sy:sy + sh, sx:sx + sw],
                              stored_for_orientation(upright[y:y + h, x:x + w], orientation))
    # reading again adds nothing
    report = import_regions(store, settings, library.owner_id, added.added)
    assert (report.regions, report.created, report.named, report.kept) == (3, 0, 0, 3)
    assert len(library.faces(added.added[0])) == 3


def test_windows_regions_are_read_and_not_doubled_with_mwg(photo, data_root, library, store, settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    rects = [f"{{PersonDisplayName={n},Rectangle={x / 500:.6f}|, {y / 375:.6f}|, {w / 500:.6f}|, {h / 375:.6f}}}"
             for (x, y, w, h), n in zip(labels, NAMES)]
    # Windows wrote all three; an MWG tool wrote the first one again
    exiftool_set(path, f"-XMP-MP:RegionInfoMP={{Regions=[{','.join(rects)}]}}", mwg_argument(labels[:1], NAMES[:1]))
    with ExifTool() as tool:
        regions = read_regions(tool, path)
    assert sorted((r.name, r.box) for r in regions) == sorted(zip(NAMES, labels))
    assert [r.kind for r in regions] == ["mwg", "mp", "mp"]


def test_a_region_names_an_unnamed_detected_face_and_keeps_decisions(photo, data_root, library, store,
                                                                     settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    # the regions are a little larger than a detector's boxes, as most programs draw them
    grown = [(x - 4, y - 6, w + 8, h + 10) for x, y, w, h in labels]
    exiftool_set(path, mwg_argument(grown, ["Ann", "Bob", "Stranger"]))
    image_id = library.add(path)
    unnamed = library.face(image_id, labels[0])
    carl = library.face(image_id, labels[1], "Carl")  # named in faces already: stays Carl
    report = import_regions(store, settings, library.owner_id, [image_id])
    assert (report.named, report.kept, report.created) == (1, 1, 1)
    faces = {f[0]: f for f in library.faces(image_id)}
    assert set(faces) == {"Ann", "Carl", "Stranger"}
    assert faces["Ann"][1:] == (labels[0], "detected", "confirmed")  # the detected box is kept
    assert faces["Stranger"][2] == "file"
    assert unnamed and carl


def test_a_file_written_by_faces_reads_into_a_fresh_library(photo, data_root, library, store, settings):
    path = photo(GROUP_PHOTO)
    exiftool_set(path, "-n", "-IFD0:Orientation=6")
    settings.metadata.write_names = True
    image_id = library.add(path)
    upright = [geometry.to_int_box(geometry.stored_to_upright_box(b, 500, 375, 6), 375, 500)
               for b in labelled_boxes(data_root, GROUP_PHOTO)]
    for box, name in zip(upright, ["Ann", "Bob", "Élodie Ørsted"]):
        library.face(image_id, box, name)
    library.face(image_id, (5, 5, 40, 40))  # unnamed: not in the file, not in the new library
    assert write_names(store, settings, library.owner_id, [image_id]).written == 1

    fresh = Library(store, "bea")
    added = add_images(store, settings, fresh.owner_id, [path], finders=[])
    mine = sorted((n, b) for n, b, _, s in library.faces(image_id) if s == "confirmed")
    theirs = sorted((n, b) for n, b, _, _ in fresh.faces(added.added[0]))
    assert theirs == mine


def test_intake_can_be_turned_off(photo, data_root, library, store, settings):
    path = photo(GROUP_PHOTO)
    exiftool_set(path, mwg_argument(labelled_boxes(data_root, GROUP_PHOTO), NAMES))
    settings.metadata.read_regions = False
    added = add_images(store, settings, library.owner_id, [path], finders=[])
    assert library.faces(added.added[0]) == []


def test_detection_attaches_embeddings_to_faces_from_the_file(photo, data_root, library, store, settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    exiftool_set(path, mwg_argument(labels, NAMES))
    added = add_images(store, settings, library.owner_id, [path], finders=["dlib"])
    image_id = added.added[0]
    assert len(library.faces(image_id)) == 3
    run_detection(store, settings, library.owner_id, finders=["dlib"], workers=1)
    with store.session() as session:
        faces = list(session.scalars(select(Face).where(Face.image_id == image_id)))
        finders = {f.id: {e.finder for e in session.scalars(select(Embedding).where(Embedding.face_id == f.id))}
                   for f in faces}
        from_file = [f for f in faces if f.source == "file"]
        assert len(from_file) == 3
        for face in from_file:  # the detector's face was matched to the region: one face, with an embedding
            assert finders[face.id] == {"dlib"}
        for a in faces:
            for b in faces:
                assert a.id == b.id or not same_face(a.box, b.box)


def test_only_files_that_may_hold_regions_are_given_to_exiftool(photo, data_root, tmp_path):
    """The intake skips exiftool for photos without any region list; a region in the file or a sidecar is seen."""
    from faces.metadata.reader import may_hold_regions

    plain = photo(GROUP_PHOTO, "plain.jpg")
    assert not may_hold_regions(plain)
    tagged = photo(GROUP_PHOTO, "tagged.jpg")
    exiftool_set(tagged, mwg_argument(labelled_boxes(data_root, GROUP_PHOTO), NAMES))
    assert may_hold_regions(tagged)
    with_sidecar = photo(GROUP_PHOTO, "sidecar.jpg")
    assert not may_hold_regions(with_sidecar)
    with_sidecar.with_name(with_sidecar.name + ".xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    assert may_hold_regions(with_sidecar)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert not may_hold_regions(empty)
