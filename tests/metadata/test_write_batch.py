"""Writing many photos in one batch (one exiftool read, one write and one read back for all of them): a file
that fails, at whatever step, fails alone; the others are written and the failed one is left as it was."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from sqlalchemy import update

from faces.metadata import ExifTool, FileWriter, ImageJob, write_names
from faces.metadata.tags import FaceTag
from faces.store.models import Face, FaceState, Image
from tests.metadata.conftest import GROUP_PHOTO, as_list, exiftool_set, labelled_boxes, mwg_boxes, read_back
from tests.metadata.test_write import leftovers, sha256


def distinct_photo(photo, name: str):
    """A copy of the group photo with its own content (the library keeps one image per content)."""
    path = photo(GROUP_PHOTO, name)
    exiftool_set(path, f"-XMP-dc:Title={name}")
    return path


def add_with_ann(library, data_root, path, width: int = 500, height: int = 375) -> int:
    """``path`` as an image of the library (as scanned at ``width`` x ``height``) with Ann on a labelled face."""
    with library.store.session() as session:
        image = Image(owner_id=library.owner_id, content_hash=sha256(path), path=str(path), width=width,
                      height=height)
        session.add(image)
        session.flush()
        image_id = image.id
    library.face(image_id, labelled_boxes(data_root, GROUP_PHOTO)[0], "Ann")
    return image_id


class Meddling(ExifTool):
    """The real stay-open exiftool, with ``after(args)`` called after every command (a fault to inject)."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def run(self, *args: str):
        result = super().run(*args)
        self.after(args)
        return result


def is_batch_write(args) -> bool:
    return any(a.startswith("-json=") for a in args) and sum(a.endswith(".jpg") for a in args) > 1


def test_one_bad_file_in_a_batch_does_not_stop_the_others(photo, data_root, library, store, write_settings):
    good = [distinct_photo(photo, f"good{i}.jpg") for i in range(3)]
    read_only = distinct_photo(photo, "read_only.jpg")
    not_image = read_only.with_name("notes.jpg")
    not_image.write_text("shopping list: bread, milk\n")
    damaged = distinct_photo(photo, "damaged.jpg")
    data = damaged.read_bytes()
    start = data.find(b"\xff\xda")
    damaged.write_bytes(data[:start] + b"\xff\xda\xff\xff" + data[start + 4:])  # exiftool refuses to write it
    resized = distinct_photo(photo, "resized.jpg")
    missing = distinct_photo(photo, "missing.jpg")
    odd_name = distinct_photo(photo, "two\nlines.jpg")

    ids = {}
    for path in [good[0], read_only, not_image, good[1], damaged, resized, missing, odd_name, good[2]]:
        ids[path.name] = add_with_ann(library, data_root, path, *((640, 480) if path == resized else (500, 375)))
    read_only.chmod(0o444)
    missing.unlink()
    before = {p: sha256(p) for p in [read_only, not_image, damaged, resized, odd_name]}

    report = write_names(store, write_settings, library.owner_id, list(ids.values()))

    assert report.written == 3 and report.unchanged == 0
    assert {f.image_id: f.code for f in report.failed} == {
        ids["read_only.jpg"]: "read_only", ids["notes.jpg"]: "not_an_image", ids["damaged.jpg"]: "write_failed",
        ids["resized.jpg"]: "file_changed", ids["missing.jpg"]: "file_missing", ids["two\nlines.jpg"]: "bad_file_name"}
    for failure in report.failed:  # each message names its own file
        assert os.path.basename(failure.path) in failure.message or failure.code == "bad_file_name"
    for path in good:
        assert set(mwg_boxes(read_back(path))) == {"Ann"}
    for path, digest in before.items():
        assert sha256(path) == digest
    assert leftovers(good[0].parent) == []


def test_a_batch_keeps_other_programs_tags_and_removes_only_ours(photo, data_root, library, store,
                                                                   write_settings):
    paths = [distinct_photo(photo, f"photo{i}.jpg") for i in range(2)]
    for path in paths:  # keywords in old Latin-1 IPTC, as many programs wrote them
        exiftool_set(path, "-IPTC:Keywords=Müller-Urlaub", "-IPTC:City=Zürich", "-XMP-dc:Subject=Holiday")
    ids = [add_with_ann(library, data_root, path) for path in paths]
    assert write_names(store, write_settings, library.owner_id, ids).written == 2
    for path in paths:
        record = read_back(path)
        assert set(mwg_boxes(record)) == {"Ann"} and as_list(record["PersonInImage"]) == ["Ann"]
        assert sorted(as_list(record["Keywords"])) == ["Ann", "Müller-Urlaub"]
        assert sorted(as_list(record["Subject"])) == ["Ann", "Holiday"]
        assert subprocess.run(["exiftool", "-s3", "-IPTC:City", str(path)], capture_output=True, text=True,
                              check=True).stdout.strip() == "Zürich"

    with store.session() as session:  # Ann's names removed from both photos
        session.execute(update(Face).where(Face.image_id.in_(ids)).values(state=FaceState.UNNAMED, name_id=None))
    assert write_names(store, write_settings, library.owner_id, ids).written == 2
    for path in paths:
        record = read_back(path)
        assert not {"RegionInfo", "RegionInfoMP", "PersonInImage"} & set(record)
        assert (as_list(record["Keywords"]), as_list(record["Subject"])) == (["Müller-Urlaub"], ["Holiday"])
    assert leftovers(paths[0].parent) == []


def test_a_copy_that_does_not_read_back_as_written_fails_alone(photo, data_root, library, store, write_settings):
    paths = [distinct_photo(photo, f"photo{i}.jpg") for i in range(3)]
    ids = [add_with_ann(library, data_root, path) for path in paths]
    before = sha256(paths[1])

    def spoil(args):  # something changes the copy of photo1 between writing and reading back
        if is_batch_write(args):
            [copy] = paths[1].parent.glob(".photo1.faces-*.jpg")
            exiftool_set(copy, "-XMP-dc:Subject+=Intruder")

    with Meddling(spoil) as tool:
        report = write_names(store, write_settings, library.owner_id, ids, exiftool=tool)
    assert report.written == 2
    [failure] = report.failed
    assert (failure.image_id, failure.code) == (ids[1], "write_failed")
    assert "did not read back as written" in failure.message and "photo1.jpg" in failure.message
    assert sha256(paths[1]) == before
    assert [set(mwg_boxes(read_back(p))) for p in (paths[0], paths[2])] == [{"Ann"}, {"Ann"}]
    assert leftovers(paths[0].parent) == []


def test_a_photo_changed_by_another_program_meanwhile_keeps_that_change(photo, data_root, library, store,
                                                                       write_settings):
    paths = [distinct_photo(photo, f"photo{i}.jpg") for i in range(3)]
    ids = [add_with_ann(library, data_root, path) for path in paths]

    def edit(args):  # another program saves photo2 while faces writes the batch
        if is_batch_write(args):
            exiftool_set(paths[2], "-XMP-xmp:Rating=5")

    with Meddling(edit) as tool:
        report = write_names(store, write_settings, library.owner_id, ids, exiftool=tool)
    assert report.written == 2
    [failure] = report.failed
    assert (failure.image_id, failure.code) == (ids[2], "file_changed") and "photo2.jpg" in failure.message
    record = read_back(paths[2])
    assert "RegionInfo" not in record  # not overwritten with a copy of the older file
    assert [set(mwg_boxes(read_back(p))) for p in paths[:2]] == [{"Ann"}, {"Ann"}]
    assert leftovers(paths[0].parent) == []


@pytest.mark.filterwarnings("ignore:ExifTool process was previously running:UserWarning")
def test_exiftool_dying_during_a_batch_is_restarted_and_every_file_written(photo, data_root, library, store,
                                                                           write_settings):
    paths = [distinct_photo(photo, f"photo{i}.jpg") for i in range(3)]
    ids = [add_with_ann(library, data_root, path) for path in paths]
    killed = []

    class Dying(ExifTool):
        def run(self, *args: str):
            if is_batch_write(args) and not killed:
                self.start()
                killed.append(self.pid)
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            return super().run(*args)

    with Dying() as tool:
        report = write_names(store, write_settings, library.owner_id, ids, exiftool=tool)
        assert tool.pid not in killed  # a new process took over
    assert killed and (report.written, report.failed) == (3, [])
    assert [set(mwg_boxes(read_back(p))) for p in paths] == [{"Ann"}] * 3
    assert leftovers(paths[0].parent) == []


def test_sidecars_of_a_batch_one_read_only(photo, data_root, library, store, write_settings):
    write_settings.metadata.sidecar = True
    paths = [distinct_photo(photo, f"photo{i}.jpg") for i in range(3)]
    ids = [add_with_ann(library, data_root, path) for path in paths]
    locked = paths[1].with_name("photo1.jpg.xmp")  # a sidecar another program made, read-only
    subprocess.run(["exiftool", "-q", "-XMP-xmp:Rating=2", "-o", str(locked), str(paths[1])], check=True)
    locked.chmod(0o444)
    photos = {p: sha256(p) for p in paths}
    report = write_names(store, write_settings, library.owner_id, ids)
    assert report.written == 2
    [failure] = report.failed
    assert (failure.image_id, failure.code) == (ids[1], "read_only") and "sidecar" in failure.message
    for path in (paths[0], paths[2]):
        assert set(mwg_boxes(read_back(path.with_name(path.name + ".xmp")))) == {"Ann"}
    assert {p: sha256(p) for p in paths} == photos  # the photos themselves are not touched
    assert "RegionInfo" not in read_back(locked)


def test_the_same_file_twice_in_one_batch(photo, data_root):
    path = photo(GROUP_PHOTO)
    box = labelled_boxes(data_root, GROUP_PHOTO)[0]
    with ExifTool() as tool, FileWriter(tool) as writer:
        first, second = writer.write_many([ImageJob(1, str(path), (500, 375), 1, [FaceTag(box, "Ann")]),
                                           ImageJob(1, str(path), (500, 375), 1, [FaceTag(box, "Bob")])])
    assert (first.status, second.status) == ("written", "written")  # the second saw what the first wrote
    assert set(mwg_boxes(read_back(path))) == {"Bob"}
    assert leftovers(path.parent) == []


def test_copies_left_by_a_killed_write_are_removed_by_the_next_write(photo, data_root, library, store,
                                                                      write_settings):
    """A write killed between copying and renaming leaves a hidden copy; the next write in that folder removes it
    once it is old (a fresh one may belong to a write still running), and never touches other hidden files."""
    path = distinct_photo(photo, "kept.jpg")
    image_id = add_with_ann(library, data_root, path)
    folder = path.parent
    old_copy = folder / ".kept.faces-0123abcd.jpg"
    old_copy.write_bytes(path.read_bytes())
    old_tmp = folder / ".kept.faces-89abcdef.jpg_exiftool_tmp"
    old_tmp.write_bytes(b"partial")
    fresh_copy = folder / ".other.faces-fedcba98.jpg"
    fresh_copy.write_bytes(b"in progress")
    someone_elses = folder / ".kept.jpg.swp"
    someone_elses.write_bytes(b"editor")
    hour_ago = os.path.getmtime(path) - 3600
    for p in (old_copy, old_tmp, someone_elses):
        os.utime(p, (hour_ago, hour_ago))

    report = write_names(store, write_settings, library.owner_id, [image_id])

    assert report.written == 1
    assert not old_copy.exists() and not old_tmp.exists()
    assert fresh_copy.exists() and someone_elses.exists()
