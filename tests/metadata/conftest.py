"""Fixtures of the metadata tests: real photos copied into tmp_path, a small library in the store, and
exiftool itself (the command line, not our code) to read back what was written."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from faces.media import probe_image
from faces.store.models import Face, FaceState, Image, Name, User

# the command the issue names for reading back, plus the IPTC keywords
READ_BACK = ["exiftool", "-j", "-struct", "-XMP-mwg-rs:all", "-XMP-MP:all", "-Subject", "-PersonInImage",
             "-IPTC:Keywords"]
GROUP_PHOTO = "dlib_faces_gt/dev/2008_001322.jpg"  # 500x375, three hand-labelled faces


def read_back(path: Path) -> dict:
    """What exiftool itself reads from ``path`` (one record)."""
    proc = subprocess.run([*READ_BACK, str(path)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)[0]


def as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def mwg_boxes(record: dict) -> dict[str, tuple[int, int, int, int]]:
    """name -> stored-pixel box of every MWG region, computed from AppliedToDimensions and the centre Area."""
    info = record.get("RegionInfo") or {}
    dims = info["AppliedToDimensions"]
    out = {}
    for item in info.get("RegionList") or []:
        a = item["Area"]
        w, h = a["W"] * dims["W"], a["H"] * dims["H"]
        x, y = a["X"] * dims["W"] - w / 2, a["Y"] * dims["H"] - h / 2
        out[item["Name"]] = (round(x), round(y), round(w), round(h))
    return out


def mp_boxes(record: dict, stored: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    """name -> stored-pixel box of every Microsoft region (top-left rectangle)."""
    out = {}
    for item in (record.get("RegionInfoMP") or {}).get("Regions") or []:
        x, y, w, h = (float(v) for v in item["Rectangle"].split(","))
        out[item["PersonDisplayName"]] = (round(x * stored[0]), round(y * stored[1]), round(w * stored[0]),
                                          round(h * stored[1]))
    return out


def labelled_boxes(data_root: Path, relative: str) -> list[tuple[int, int, int, int]]:
    """The hand-labelled face boxes of one photo of dlib_faces_gt/dev."""
    folder = data_root / Path(relative).parent
    with (folder / "boxes.csv").open(newline="") as handle:
        return [tuple(int(float(row[k])) for k in ("x", "y", "w", "h")) for row in csv.DictReader(handle)
                if row["file"] == Path(relative).name]


def exiftool_set(path: Path, *args: str) -> None:
    """Change ``path`` with exiftool itself (as another program would)."""
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args, str(path)], check=True)


class Library:
    """One owner's library in the test store, filled directly through the models."""

    def __init__(self, store, username: str = "alice"):
        self.store = store
        with store.session() as session:
            user = User(username=username, display_name=username.title())
            session.add(user)
            session.flush()
            self.owner_id = user.id

    def add(self, path: Path) -> int:
        """Add ``path`` as an image, with the facts media measures."""
        info = probe_image(path)
        with self.store.session() as session:
            image = Image(owner_id=self.owner_id, content_hash=info.content_hash, path=str(path), bytes=info.bytes,
                          width=info.width, height=info.height, orientation=info.orientation, format=info.format)
            session.add(image)
            session.flush()
            return image.id

    def face(self, image_id: int, box, name: str | None = None, source: str = "detected") -> int:
        """Add a face; with ``name`` it is confirmed under that name."""
        with self.store.session() as session:
            name_id = None
            if name:
                row = session.scalar(select(Name).where(Name.owner_id == self.owner_id, Name.name == name))
                if row is None:
                    row = Name(owner_id=self.owner_id, name=name)
                    session.add(row)
                    session.flush()
                name_id = row.id
            x, y, w, h = box
            face = Face(owner_id=self.owner_id, image_id=image_id, x=x, y=y, w=w, h=h, source=source,
                        state=FaceState.CONFIRMED if name else FaceState.UNNAMED, name_id=name_id)
            session.add(face)
            session.flush()
            return face.id

    def faces(self, image_id: int) -> list[tuple[str | None, tuple[int, int, int, int], str, str]]:
        """(confirmed name, box, source, state) of the image's faces, in id order."""
        with self.store.session() as session:
            rows = session.execute(select(Face, Name.name).outerjoin(Name, Name.id == Face.name_id)
                                   .where(Face.image_id == image_id).order_by(Face.id)).all()
            return [(name, tuple(f.box), f.source, FaceState(f.state).value) for f, name in rows]


@pytest.fixture
def photo(tmp_path, data_root):
    """``photo(relative, name=None)`` copies a photo of ../shared/data into tmp_path (writable)."""

    def copy(relative: str, name: str | None = None) -> Path:
        target = tmp_path / "photos" / (name or Path(relative).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / relative, target)
        target.chmod(0o644)
        return target

    return copy


@pytest.fixture
def write_settings(settings):
    """The test settings with writing names into files turned on."""
    settings.metadata.write_names = True
    return settings


@pytest.fixture
def library(store) -> Library:
    return Library(store)


@pytest.fixture(scope="session", autouse=True)
def _exiftool_installed():
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is not installed (apt-get install libimage-exiftool-perl): the metadata tests "
                    "need the real program")
