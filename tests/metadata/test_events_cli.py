"""The event path (a naming action writes the file once its transaction commits), the command line, and a
machine without exiftool."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import update

from faces.jobs.pipeline import add_images
from faces.metadata import ExifToolUnavailable, self_check, write_names
from faces.metadata.subscribers import close_shared
from faces.naming import actions
from faces.sharing.admin_settings import set_base_settings, set_setting
from faces.store.models import User
from tests.cli.conftest import Cli
from tests.metadata.conftest import GROUP_PHOTO, Library, as_list, exiftool_set, labelled_boxes, mwg_boxes, read_back


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def base(settings):
    """The process's settings are the test's (as the web app and the command line set them)."""
    set_base_settings(settings)
    yield settings
    close_shared()


def test_naming_actions_write_the_file_after_commit(photo, data_root, library, store, base):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    image_id = library.add(path)
    first, second = library.face(image_id, labels[0]), library.face(image_id, labels[1])
    before = sha256(path)
    with store.session() as session:  # writing is off by default: naming leaves the file alone
        actions.set_name(session, base, library.owner_id, library.owner_id, first, "Dora")
    assert sha256(path) == before

    with store.session() as session:  # the admin turns it on in the admin settings
        set_setting(session, "metadata.write_names", True, base)
    with store.session() as session:
        actions.set_name(session, base, library.owner_id, library.owner_id, second, "Emil")
    assert mwg_boxes(read_back(path)) == {"Dora": labels[0], "Emil": labels[1]}

    with store.session() as session:
        actions.rename(session, base, library.owner_id, library.owner_id, "Emil", "Emile")
    assert as_list(read_back(path)["Subject"]) == ["Dora", "Emile"]

    with store.session() as session:
        actions.reset(session, base, library.owner_id, library.owner_id, first)
    assert set(mwg_boxes(read_back(path))) == {"Emile"}

    with pytest.raises(RuntimeError):  # a rolled-back naming writes nothing
        with store.session() as session:
            actions.set_name(session, base, library.owner_id, library.owner_id, first, "Ghost")
            raise RuntimeError("the request failed")
    assert set(mwg_boxes(read_back(path))) == {"Emile"}

    with store.session() as session:  # the owner opts out
        session.execute(update(User).where(User.id == library.owner_id).values(write_names_to_files=False))
    written = sha256(path)
    with store.session() as session:
        actions.set_name(session, base, library.owner_id, library.owner_id, first, "Frida")
    assert sha256(path) == written


def test_without_exiftool_the_feature_is_unavailable_and_nothing_breaks(photo, data_root, library, store, base,
                                                                       tmp_path, monkeypatch):
    close_shared()
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    check = self_check(base)
    assert check["ok"] is False and check["exiftool"] is None
    assert "exiftool is not installed" in check["reason"] and "libimage-exiftool-perl" in check["reason"]
    assert check["read_regions"] is True and check["write_names"] is False

    path = photo(GROUP_PHOTO)
    added = add_images(store, base, library.owner_id, [path], finders=[])  # intake goes on without regions
    assert len(added.added) == 1 and library.faces(added.added[0]) == []
    base.metadata.write_names = True
    face = library.face(added.added[0], labelled_boxes(data_root, GROUP_PHOTO)[0])
    before = sha256(path)
    with store.session() as session:
        actions.set_name(session, base, library.owner_id, library.owner_id, face, "Dora")  # no error
    assert library.faces(added.added[0])[0][0] == "Dora" and sha256(path) == before
    with pytest.raises(ExifToolUnavailable, match="exiftool is not installed"):
        write_names(store, base, library.owner_id)


def test_self_check_with_exiftool(settings):
    check = self_check(settings)
    assert check["ok"] is True and check["reason"] == ""
    assert check["exiftool"] and os.path.basename(check["exiftool"]) == "exiftool"
    assert check["exiftool_version"].split(".")[0].isdigit()
    assert check["pyexiftool_version"]
    assert check["sidecar_name"] == "photo.jpg.xmp"


def test_command_line(photo, data_root, store, settings):
    path = photo(GROUP_PHOTO)
    labels = labelled_boxes(data_root, GROUP_PHOTO)
    library = Library(store, "admin")  # the command line's default library
    image_id = library.add(path)
    library.face(image_id, labels[0], "Ann")
    library.face(image_id, labels[1], "Bob")
    cli = Cli(settings)

    off = cli("write-metadata", "--all", expect=1)
    assert "metadata.write_names" in off.stderr
    cli.env["FACES_METADATA__WRITE_NAMES"] = "true"
    assert cli.json("write-metadata", "--all", "--json") == {"images": 1, "written": 1, "unchanged": 0,
                                                              "failed": []}
    assert mwg_boxes(read_back(path)) == {"Ann": labels[0], "Bob": labels[1]}

    shown = cli.json("read-metadata", str(path), "--json")
    assert sorted((r["name"], tuple(r["box"])) for r in shown["regions"]) == [("Ann", labels[0]),
                                                                             ("Bob", labels[1])]
    # taking the regions in again finds the two faces it already has
    assert cli.json("import-metadata", "--all", "--json") == {"images": 1, "regions": 2, "created": 0,
                                                               "named": 0, "kept": 2}

    with store.session() as session:
        session.execute(update(User).where(User.username == "admin").values(write_names_to_files=True))
    library.face(image_id, labels[2], "Cy")
    path.chmod(0o444)
    failed = cli("write-metadata", str(image_id), expect=1)
    assert "read-only" in failed.stdout + failed.stderr
