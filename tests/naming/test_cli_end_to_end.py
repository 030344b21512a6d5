"""End to end through the command line, on real photos: scan, name a few photos of a person, the others get
that guess, a stranger gets none; confirm, reject, groups, merge, undo, and clear errors.

The scan (9 photos, both finders) runs once per session into a SQLite data directory; every test works on a copy.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from faces.cli import app

ANGELINA = ["img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"]
KATY = ["img26.jpg", "img27.jpg", "img28.jpg"]
ELON = ["img18.jpg"]  # the stranger


def cli(data_dir, *args: str, ok: bool = True):
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args], env={"FACES_DATABASE_URL": ""})
    if ok:
        assert result.exit_code == 0, result.output
    return result


def cli_json(data_dir, *args: str):
    return json.loads(cli(data_dir, *args, "--json").stdout)


@pytest.fixture(scope="session")
def scanned(tmp_path_factory, data_root):
    folder = data_root / "deepface_unit"
    data_dir = tmp_path_factory.mktemp("scanned") / "data"
    out = cli_json(data_dir, "scan", *(str(folder / n) for n in ANGELINA + KATY + ELON))
    assert out["images"] == 9 and out["errors"] == 0
    return data_dir


@pytest.fixture
def library(scanned, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(scanned, target)
    return target


def faces_by_file(data_dir) -> dict[str, dict]:
    """photo file name -> its largest face."""
    out: dict[str, dict] = {}
    for face in cli_json(data_dir, "faces"):
        name = face["image"].rsplit("/", 1)[-1]
        if name not in out or face["box"][2] * face["box"][3] > out[name]["box"][2] * out[name]["box"][3]:
            out[name] = face
    return out


def test_naming_a_few_photos_guesses_the_others(library):
    faces = faces_by_file(library)
    assert set(faces) == set(ANGELINA + KATY + ELON)
    cli(library, "name", str(faces["img1.jpg"]["id"]), "Angelina Jolie")
    csv_file = library / "names.csv"
    csv_file.write_text(f"face_id,name\n{faces['img2.jpg']['id']},Angelina Jolie\n")
    cli(library, "name", "--csv", str(csv_file))
    faces = faces_by_file(library)
    for photo in ANGELINA[:2]:
        assert (faces[photo]["state"], faces[photo]["name"]) == ("confirmed", "Angelina Jolie")
    for photo in ANGELINA[2:]:
        assert faces[photo]["state"] == "guessed"
        assert faces[photo]["guess"]["name"] == "Angelina Jolie"
        assert 0 < faces[photo]["guess"]["distance"] < 1
    for photo in KATY + ELON:
        assert faces[photo]["guess"] is None, photo
    names = cli_json(library, "names")
    assert names == [{"id": names[0]["id"], "name": "Angelina Jolie", "contact_user_id": None, "confirmed": 2,
                      "guessed": 3}]

    # Katy's photos look alike: one group, which can be named at once
    groups = cli_json(library, "groups")
    katy_ids = {faces[p]["id"] for p in KATY}
    katy_group = [g for g in groups if set(g["faces"]) & katy_ids]
    assert len(katy_group) == 1 and set(katy_group[0]["faces"]) == katy_ids
    cli(library, "name-group", str(katy_group[0]["group"]), "Katy Perry")
    assert {faces_by_file(library)[p]["name"] for p in KATY} == {"Katy Perry"}
    assert faces_by_file(library)[ELON[0]]["guess"] is None  # the stranger is still nobody
    cli(library, "undo")
    assert {faces_by_file(library)[p]["state"] for p in KATY} == {"unnamed"}


def test_confirm_reject_and_full_recompute(library):
    faces = faces_by_file(library)
    for photo in ANGELINA[:2]:
        cli(library, "name", str(faces[photo]["id"]), "Angelina Jolie")
    third, fourth = faces[ANGELINA[2]]["id"], faces[ANGELINA[3]]["id"]
    cli(library, "confirm", str(third))
    cli(library, "reject", str(fourth))
    out = cli_json(library, "guess")
    assert out["examined"] >= 1
    faces = faces_by_file(library)
    assert (faces[ANGELINA[2]]["state"], faces[ANGELINA[2]]["name"]) == ("confirmed", "Angelina Jolie")
    assert faces[ANGELINA[3]]["guess"] is None  # rejected: never guessed again, even by a full recompute
    cli(library, "unknown", str(faces[ANGELINA[4]]["id"]))
    assert faces_by_file(library)[ANGELINA[4]]["state"] == "unknown"
    cli(library, "reset", str(faces[ANGELINA[4]]["id"]))
    assert faces_by_file(library)[ANGELINA[4]]["guess"]["name"] == "Angelina Jolie"


def test_merge_rename_undo_and_errors(library):
    faces = faces_by_file(library)
    cli(library, "name", str(faces["img1.jpg"]["id"]), "Angelina")
    cli(library, "name", str(faces["img2.jpg"]["id"]), "A. Jolie")
    cli(library, "merge", "Angelina", "A. Jolie")
    assert [n["name"] for n in cli_json(library, "names")] == ["Angelina"]
    cli(library, "undo")
    assert sorted(n["name"] for n in cli_json(library, "names")) == ["A. Jolie", "Angelina"]
    cli(library, "rename", "Angelina", "Angelina Jolie")
    assert faces_by_file(library)["img1.jpg"]["name"] == "Angelina Jolie"

    bad = cli(library, "name", "999999", "Nobody", ok=False)
    assert bad.exit_code == 1 and "no face 999999" in bad.output
    bad = cli(library, "confirm", str(faces[ELON[0]]["id"]), ok=False)
    assert bad.exit_code == 1 and "no guessed name" in bad.output
    bad = cli(library, "merge", "Angelina Jolie", "Nobody", ok=False)
    assert bad.exit_code == 1 and "no name 'Nobody'" in bad.output
    bad = cli(library, "rename", "Angelina Jolie", "A. Jolie", ok=False)
    assert bad.exit_code == 1 and "merge" in bad.output
    (library / "bad.csv").write_text("face,who\n1,x\n")
    bad = cli(library, "name", "--csv", str(library / "bad.csv"), ok=False)
    assert bad.exit_code == 1 and "face_id,name" in bad.output
