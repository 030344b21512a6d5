"""Writing names into real photos with real exiftool, read back with exiftool's own command line."""

from __future__ import annotations

import hashlib
import os
import subprocess

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps
from sqlalchemy import select, update

from faces.media import probe_image
from faces.metadata import ExifTool, FileWriter, ImageJob, OptedOut, read_regions, write_names
from faces.metadata import geometry
from faces.metadata.tags import FaceTag
from faces.store.models import Face, FaceState, Image, Name, User
from tests.media.helpers import stored_for_orientation
from tests.metadata.conftest import (
    GROUP_PHOTO,
    as_list,
    exiftool_set,
    labelled_boxes,
    mp_boxes,
    mwg_boxes,
    read_back,
)

NAMES = ["Ann", "Bob", "Zoë O'Brien, Jr."]  # a comma, an apostrophe and a non-ASCII letter on purpose


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder) -> list[str]:
    """Files in ``folder`` that are neither photos we put there nor sidecars: backups, temporary files."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "_original" in p.name
                  or "exiftool_tmp" in p.name or ".faces-" in p.name)


def upright_boxes(stored_boxes, stored_size, orientation):
    return [geometry.to_int_box(geometry.stored_to_upright_box(b, *stored_size, orientation),
                                *geometry.upright_size(*stored_size, orientation)) for b in stored_boxes]


@pytest.fixture(scope="module")
def tool():
    """One stay-open exiftool for the tests of this module that drive the file writer directly."""
    with ExifTool() as running:
        yield running


@pytest.mark.parametrize("orientation", range(1, 9))
def test_regions_frame_the_faces_in_every_orientation(orientation, photo, data_root, tool):
    path = photo(GROUP_PHOTO)
    exiftool_set(path, "-n", f"-IFD0:Orientation={orientation}")
    labels = labelled_boxes(data_root, GROUP_PHOTO)  # faces in the stored pixels, whatever the tag says
    info = probe_image(path)
    assert (info.orientation, (info.width, info.height)) == (orientation, geometry.upright_size(500, 375,
                                                                                                 orientation))
    faces = upright_boxes(labels, (500, 375), orientation)  # where the faces are in the upright picture
    with FileWriter(tool) as writer:
        outcome = writer.write(ImageJob(1, str(path), (info.width, info.height), info.orientation,
                                        [FaceTag(box, name) for box, name in zip(faces, NAMES)]))
    assert (outcome.status, outcome.content_hash) == ("written", sha256(path))

    record = read_back(path)
    assert record["RegionInfo"]["AppliedToDimensions"] == {"W": 500, "H": 375, "Unit": "pixel"}
    found = mwg_boxes(record)
    assert set(found) == set(NAMES)
    assert all(item["Type"] == "Face" for item in record["RegionInfo"]["RegionList"])
    # the MWG and Microsoft regions are the labelled boxes of the stored pixels (to the pixel)
    for label, name in zip(labels, NAMES):
        assert found[name] == pytest.approx(label, abs=1)
    assert mp_boxes(record, (500, 375)) == found
    # and they show exactly the pixels of the upright face boxes (Pillow's view of the photo)
    stored = np.asarray(PILImage.open(path))
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    for (x, y, w, h), name in zip(faces, NAMES):
        sx, sy, sw, sh = found[name]
        assert np.array_equal(stored[sy:sy + sh, sx:sx + sw],
                              stored_for_orientation(upright[y:y + h, x:x + w], orientation))
    for tag in ("Subject", "PersonInImage", "Keywords"):
        assert sorted(as_list(record.get(tag))) == sorted(NAMES), tag
    # read back by faces: the same upright boxes
    regions = read_regions(tool, path, upright_size=(info.width, info.height), orientation=orientation)
    assert sorted((r.name, r.box) for r in regions) == sorted(zip(NAMES, faces))
    assert leftovers(path.parent) == []


def test_write_names_updates_the_library(photo, data_root, library, store, write_settings):
    path = photo(GROUP_PHOTO)
    exiftool_set(path, "-n", "-IFD0:Orientation=6")
    image_id = library.add(path)
    faces = upright_boxes(labelled_boxes(data_root, GROUP_PHOTO), (500, 375), 6)
    for box, name in zip(faces, NAMES):
        library.face(image_id, box, name)
    report = write_names(store, write_settings, library.owner_id, [image_id])
    assert (report.images, report.written, report.failed) == (1, 1, [])
    assert sorted(mwg_boxes(read_back(path))) == sorted(NAMES)
    with store.session() as session:  # a rescan must see the same image, not a new one
        image = session.get(Image, image_id)
        assert (image.content_hash, image.bytes) == (sha256(path), path.stat().st_size)


def test_rename_and_remove(photo, data_root, library, store, write_settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    image_id = library.add(path)
    ann = library.face(image_id, labels[0], "Ann")
    library.face(image_id, labels[1], "Bob")
    library.face(image_id, labels[2])  # a face without a name is not written
    write_names(store, write_settings, library.owner_id, [image_id])
    assert set(mwg_boxes(read_back(path))) == {"Ann", "Bob"}

    with store.session() as session:
        session.execute(update(Name).where(Name.name == "Bob").values(name="Robert"))
    report = write_names(store, write_settings, library.owner_id, [image_id])
    assert report.written == 1
    record = read_back(path)
    assert mwg_boxes(record) == {"Ann": labels[0], "Robert": labels[1]}
    assert set(mp_boxes(record, (500, 375))) == {"Ann", "Robert"}
    for tag in ("Subject", "PersonInImage", "Keywords"):
        assert sorted(as_list(record.get(tag))) == ["Ann", "Robert"]

    with store.session() as session:  # Ann's name removed from her face
        session.execute(update(Face).where(Face.id == ann).values(state=FaceState.UNNAMED, name_id=None))
    write_names(store, write_settings, library.owner_id, [image_id])
    record = read_back(path)
    assert mwg_boxes(record) == {"Robert": labels[1]}
    assert [as_list(record.get(t)) for t in ("Subject", "PersonInImage", "Keywords")] == [["Robert"]] * 3

    with store.session() as session:  # every name removed: nothing of ours stays in the file
        session.execute(update(Face).where(Face.image_id == image_id).values(state=FaceState.UNNAMED,
                                                                             name_id=None))
    write_names(store, write_settings, library.owner_id, [image_id])
    record = read_back(path)
    assert not {"RegionInfo", "RegionInfoMP", "Subject", "PersonInImage", "Keywords"} & set(record)
    assert leftovers(path.parent) == []


def test_a_file_that_already_says_it_is_not_rewritten(photo, data_root, library, store, write_settings):
    path = photo(GROUP_PHOTO)
    image_id = library.add(path)
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    assert write_names(store, write_settings, library.owner_id, [image_id]).written == 1
    before = (path.stat().st_mtime_ns, sha256(path))
    report = write_names(store, write_settings, library.owner_id)  # every image with a name
    assert (report.images, report.written, report.unchanged) == (1, 0, 1)
    assert (path.stat().st_mtime_ns, sha256(path)) == before


def test_tags_of_other_programs_are_kept(photo, data_root, library, store, write_settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    # another program's region (in a corner, on no face of ours), keywords in old Latin-1 IPTC, a rating
    exiftool_set(path, "-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=500,H=375,Unit=pixel},RegionList=["
                       "{Area={X=0.05,Y=0.05,W=0.06,H=0.08,Unit=normalized},Name=Stranger,Type=Face,"
                       "Description=from digiKam},{Area={X=0.9,Y=0.9,W=0.1,H=0.1,Unit=normalized},Type=Pet,"
                       "Name=Rex}]}",
                   "-XMP-MP:RegionInfoMP={Regions=[{PersonDisplayName=Stranger,Rectangle=0.02|, 0.01|, 0.06|, 0.08}]}",
                   "-XMP-dc:Subject=Holiday", "-IPTC:Keywords=Müller-Urlaub", "-IPTC:City=Zürich",
                   "-XMP-xmp:Rating=4")
    foreign = read_back(path)["RegionInfo"]["RegionList"]
    image_id = library.add(path)
    library.face(image_id, labels[0], "Ann")
    library.face(image_id, labels[1], "Bob")
    report = write_names(store, write_settings, library.owner_id, [image_id])
    assert (report.written, report.failed) == (1, [])

    record = read_back(path)
    regions = record["RegionInfo"]["RegionList"]
    for item in foreign:  # exactly as the other program wrote them
        assert item in regions
    assert set(mwg_boxes(record)) == {"Stranger", "Rex", "Ann", "Bob"}
    assert set(mp_boxes(record, (500, 375))) == {"Stranger", "Ann", "Bob"}
    assert sorted(as_list(record["Subject"])) == ["Ann", "Bob", "Holiday"]
    assert sorted(as_list(record["Keywords"])) == ["Ann", "Bob", "Müller-Urlaub"]  # still readable as UTF-8
    extra = subprocess.run(["exiftool", "-s3", "-XMP-xmp:Rating", "-IPTC:City", str(path)], capture_output=True,
                           text=True, check=True).stdout.split()
    assert extra == ["4", "Zürich"]

    with store.session() as session:  # our names removed: only the other program's tags stay
        session.execute(update(Face).where(Face.image_id == image_id).values(state=FaceState.UNNAMED,
                                                                             name_id=None))
    write_names(store, write_settings, library.owner_id, [image_id])
    record = read_back(path)
    assert record["RegionInfo"]["RegionList"] == foreign
    assert set(mp_boxes(record, (500, 375))) == {"Stranger"}
    assert as_list(record["Subject"]) == ["Holiday"]
    assert as_list(record["Keywords"]) == ["Müller-Urlaub"]


def test_a_region_we_took_in_is_not_doubled_and_follows_a_rename(photo, data_root, library, store,
                                                                   write_settings):
    path = photo(GROUP_PHOTO)
    x, y, w, h = labelled_boxes(data_root, GROUP_PHOTO)[0]
    # digiKam wrote "Ann" around her face, a little larger than our box; faces read it in as a face from the file
    exiftool_set(path, f"-XMP-mwg-rs:RegionInfo={{AppliedToDimensions={{W=500,H=375,Unit=pixel}},RegionList=["
                       f"{{Area={{X={(x + w / 2) / 500},Y={(y + h / 2) / 375},W={w * 1.2 / 500},H={h * 1.2 / 375},"
                       f"Unit=normalized}},Name=Ann,Type=Face,Description=from digiKam}}]}}",
                   "-XMP-dc:Subject=Ann")
    image_id = library.add(path)
    face_id = library.face(image_id, (x, y, w, h), "Ann", source="file")
    write_names(store, write_settings, library.owner_id, [image_id])
    record = read_back(path)
    assert [i["Name"] for i in record["RegionInfo"]["RegionList"]] == ["Ann"]
    assert record["RegionInfo"]["RegionList"][0]["Description"] == "from digiKam"  # its other fields kept
    assert as_list(record["Subject"]) == ["Ann"]

    with store.session() as session:
        session.execute(update(Name).where(Name.name == "Ann").values(name="Anna"))
    write_names(store, write_settings, library.owner_id, [image_id])
    record = read_back(path)
    assert [i["Name"] for i in record["RegionInfo"]["RegionList"]] == ["Anna"]
    assert as_list(record["Subject"]) == ["Anna"]
    assert library.faces(image_id)[0][:2] == ("Anna", (x, y, w, h)) and face_id


@pytest.mark.parametrize("style", ["photo.jpg.xmp", "photo.xmp"])
def test_sidecar_round_trip(style, photo, data_root, library, store, write_settings):
    write_settings.metadata.sidecar = True
    write_settings.metadata.sidecar_name = style
    path = photo(GROUP_PHOTO)
    exiftool_set(path, "-n", "-IFD0:Orientation=6", "-XMP-xmp:Rating=3")
    original = sha256(path)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    image_id = library.add(path)
    faces = upright_boxes(labels, (500, 375), 6)
    for box, name in zip(faces, NAMES):
        library.face(image_id, box, name)
    report = write_names(store, write_settings, library.owner_id, [image_id])
    assert (report.written, report.failed) == (1, [])

    sidecar = path.with_name(path.name + ".xmp") if style == "photo.jpg.xmp" else path.with_suffix(".xmp")
    assert sha256(path) == original  # the photo itself is not touched
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, sidecar.name])
    record = read_back(sidecar)
    found = mwg_boxes(record)
    assert set(found) == set(NAMES)
    for label, name in zip(labels, NAMES):
        assert found[name] == pytest.approx(label, abs=1)
    assert sorted(as_list(record["PersonInImage"])) == sorted(NAMES)
    rating = subprocess.run(["exiftool", "-s3", "-XMP-xmp:Rating", str(sidecar)], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert rating == "3"  # a new sidecar starts with the photo's own XMP
    with store.session() as session:
        assert session.get(Image, image_id).content_hash == original

    with store.session() as session:
        session.execute(update(Name).where(Name.name == "Bob").values(name="Robert"))
    write_names(store, write_settings, library.owner_id, [image_id])
    assert set(mwg_boxes(read_back(sidecar))) == {"Ann", "Robert", NAMES[2]}
    with ExifTool() as tool:
        regions = read_regions(tool, path, upright_size=(375, 500), orientation=6)
    assert sorted((r.name, r.box) for r in regions) == sorted(zip(["Ann", "Robert", NAMES[2]], faces))
    assert sha256(path) == original


def test_a_read_only_file_gives_a_clear_error(photo, data_root, library, store, write_settings):
    path = photo(GROUP_PHOTO)
    image_id = library.add(path)
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    path.chmod(0o444)
    before = sha256(path)
    report = write_names(store, write_settings, library.owner_id, [image_id])
    assert report.written == 0
    [failure] = report.failed
    assert failure.code == "read_only"
    assert "read-only" in failure.message and path.name in failure.message
    assert sha256(path) == before and leftovers(path.parent) == []


def test_a_file_that_is_not_an_image_gives_a_clear_error(tmp_path, library, store, write_settings):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: bread, milk\n")
    with store.session() as session:  # as if it had been a photo when it was scanned
        image = Image(owner_id=library.owner_id, content_hash="x" * 64, path=str(path), width=500, height=375)
        session.add(image)
        session.flush()
        image_id = image.id
    library.face(image_id, (10, 10, 50, 50), "Ann")
    [failure] = write_names(store, write_settings, library.owner_id, [image_id]).failed
    assert failure.code == "not_an_image"
    assert "not an image" in failure.message and "notes.jpg" in failure.message
    assert path.read_text() == "shopping list: bread, milk\n"


def test_a_format_exiftool_cannot_write_says_so_and_a_sidecar_works(photo, data_root, library, store,
                                                                      write_settings):
    source = photo(GROUP_PHOTO)
    path = source.with_suffix(".bmp")
    PILImage.open(source).save(path)
    source.unlink()
    image_id = library.add(path)
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    [failure] = write_names(store, write_settings, library.owner_id, [image_id]).failed
    assert failure.code == "unsupported_format"
    assert "BMP" in failure.message and "sidecar" in failure.message
    write_settings.metadata.sidecar = True
    assert write_names(store, write_settings, library.owner_id, [image_id]).written == 1
    assert set(mwg_boxes(read_back(path.with_name(path.name + ".xmp")))) == {"Ann"}


def test_a_failed_write_leaves_the_file_as_it_was(photo, data_root, library, store, write_settings):
    path = photo(GROUP_PHOTO)
    data = path.read_bytes()
    start = data.find(b"\xff\xda")
    path.write_bytes(data[:start] + b"\xff\xda\xff\xff" + data[start + 4:])  # a damaged scan header
    before = sha256(path)
    with store.session() as session:
        image = Image(owner_id=library.owner_id, content_hash=before, path=str(path), width=500, height=375)
        session.add(image)
        session.flush()
        image_id = image.id
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    [failure] = write_names(store, write_settings, library.owner_id, [image_id]).failed
    assert failure.code == "write_failed" and "could not write" in failure.message
    assert sha256(path) == before and leftovers(path.parent) == []


def test_png_gets_xmp_regions_but_no_iptc(photo, library, store, write_settings):
    path = photo("public_domain_faces/astronaut.png")
    image_id = library.add(path)
    library.face(image_id, (180, 50, 120, 140), "Eileen")
    assert write_names(store, write_settings, library.owner_id, [image_id]).written == 1
    record = read_back(path)
    assert set(mwg_boxes(record)) == {"Eileen"} and as_list(record["Subject"]) == ["Eileen"]
    assert "Keywords" not in record
    assert np.asarray(PILImage.open(path)).shape == (512, 512, 3)


def test_writing_is_off_unless_the_admin_and_the_owner_allow_it(photo, data_root, library, store, settings):
    path = photo(GROUP_PHOTO)
    image_id = library.add(path)
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    before = sha256(path)
    with pytest.raises(OptedOut, match="metadata.write_names"):
        write_names(store, settings, library.owner_id, [image_id])
    settings.metadata.write_names = True
    with store.session() as session:
        session.execute(update(User).where(User.id == library.owner_id).values(write_names_to_files=False))
    with pytest.raises(OptedOut, match="alice chose not"):
        write_names(store, settings, library.owner_id, [image_id])
    assert sha256(path) == before


def test_another_owners_image_is_never_written(photo, data_root, library, store, write_settings):
    from tests.metadata.conftest import Library

    path = photo(GROUP_PHOTO)
    other = Library(store, "mallory")
    image_id = library.add(path)
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    before = sha256(path)
    report = write_names(store, write_settings, other.owner_id, [image_id])
    assert report.written == 0 and report.failed[0].code == "not_found"
    assert sha256(path) == before
    with store.session() as session:
        assert session.scalar(select(Image.owner_id).where(Image.id == image_id)) == library.owner_id
    assert not os.path.exists(str(path) + ".xmp")


def test_a_file_name_exiftool_cannot_take_fails_alone(photo, data_root, library, store, write_settings):
    good = photo(GROUP_PHOTO)
    odd = photo(GROUP_PHOTO, "two\nlines.jpg")
    exiftool_set(odd, "-XMP-dc:Title=another photo")  # its own content
    ids = [library.add(good), library.add(odd)]
    for image_id in ids:
        library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    report = write_names(store, write_settings, library.owner_id, ids)
    assert report.written == 1
    [failure] = report.failed
    assert (failure.image_id, failure.code) == (ids[1], "bad_file_name") and "line break" in failure.message
    assert set(mwg_boxes(read_back(good))) == {"Ann"}
