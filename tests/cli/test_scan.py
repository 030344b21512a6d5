"""`faces scan` as a user runs it: bad files next to good photos, duplicates, EXIF rotation, the run lock,
a finder enabled later, and the JSON outputs (images, faces, stats, selfcheck). Every test runs on each backend."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image

from faces.jobs import lock
from faces.jobs.matching import iou, same_face
from faces.store.models import RunLock
from faces.store.users import resolve_owner
from tests.badfiles import make_bad_files, make_odd_good_files
from tests.finders.helpers import labelled_boxes, matched_labels

LABELLED = ["2008_001322.jpg", "2007_007763.jpg"]  # 3 + 7 hand-labelled faces, both finders see them all


def by_name(items, key="path"):
    return {Path(item[key]).name: item for item in items}


def test_scan_of_bad_files_next_to_good_photos(cli, tmp_path, data_root):
    folder = tmp_path / "photos"
    bad = make_bad_files(folder / "bad")
    odd = make_odd_good_files(folder / "odd")
    real = data_root / "dlib_faces_gt" / "dev" / LABELLED[0]
    no_face = data_root / "no_face" / "sklearn"
    summary = cli.json("scan", "--json", folder, real, no_face)
    images = by_name(cli.json("images", "--json"))
    assert summary["errors"] == len(bad)
    assert summary["files"] == len(bad) + len(odd) + 1 + len(list(no_face.glob("*.jpg")))
    for name, code in bad.items():
        assert images[name]["error_code"] == code, (name, images[name])
        assert images[name]["error"], name  # a sentence for people
    good = [*odd, real.name, *(p.name for p in no_face.glob("*.jpg"))]
    for name in good:
        entry = images[name]
        assert entry["error_code"] is None, (name, entry)
        assert set(entry["finders"]) == {"dlib", "opencv"}
        assert {f["status"] for f in entry["finders"].values()} <= {"done", "no_face"}, (name, entry)
    faces = cli.json("faces", "--json")
    per_image: dict[str, list] = {}
    for face in faces:
        per_image.setdefault(Path(face["image"]).name, []).append(face)
    # every odd file is the same one-face photo in another format: both finders find its face, as one face
    for name in odd:
        both = [f for f in per_image.get(name, []) if f["finders"] == ["dlib", "opencv"]]
        assert len(both) == 1, (name, per_image.get(name))
    assert len(per_image[real.name]) == 3
    assert not any(Path(f["image"]).parent.name == "sklearn" for f in faces)
    # the summary, the image list and the statistics tell the same story
    stats = cli.json("stats", "--json")
    assert stats["images"] == len(images) and stats["unreadable"] == len(bad)
    assert stats["faces"] == len(faces) == summary["faces"]
    for finder in ("dlib", "opencv"):
        counts = stats["finders"][finder]
        assert counts["pending"] == 0 and counts["error"] == 0
        assert counts["done"] + counts["no_face"] == len(good)


def test_same_file_twice_is_one_image(cli, tmp_path, data_root):
    source = data_root / "dlib_faces_gt" / "dev" / LABELLED[0]
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copyfile(source, folder / "a.jpg")
    shutil.copyfile(source, folder / "sub" / "copy of a.jpg")
    first = cli.json("scan", "--json", folder)
    assert (first["files"], first["added"], first["duplicates"], first["images"]) == (2, 1, 1, 1)
    again = cli.json("scan", "--json", folder, source)
    assert (again["added"], again["duplicates"], again["images"], again["faces"]) == (0, 3, 0, 0)
    images = cli.json("images", "--json")
    assert len(images) == 1 and len(cli.json("faces", "--json")) == first["faces"] == 3


TURNS = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def test_exif_rotated_photos_get_boxes_on_the_upright_image(cli, tmp_path, data_root):
    with Image.open(data_root / "dlib_faces_gt" / "dev" / LABELLED[1]) as source:
        upright = source.convert("RGB")
    folder = tmp_path / "photos"
    folder.mkdir()
    upright.save(folder / "upright.jpg", quality=95)
    for orientation, turn in TURNS.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        upright.transpose(turn).save(folder / f"turned{orientation}.jpg", quality=95, exif=exif.tobytes())
    cli("scan", folder)
    images = by_name(cli.json("images", "--json"))
    boxes: dict[str, list] = {}
    for face in cli.json("faces", "--json"):
        boxes.setdefault(Path(face["image"]).name, []).append(face["box"])
    assert len(boxes["upright.jpg"]) >= 6
    for orientation in TURNS:
        name = f"turned{orientation}.jpg"
        assert images[name]["orientation"] == orientation
        assert (images[name]["width"], images[name]["height"]) == upright.size
        assert len(boxes[name]) == len(boxes["upright.jpg"]), name
        for box in boxes["upright.jpg"]:
            assert max(iou(box, other) for other in boxes[name]) >= 0.6, (name, box)


def _owner_id(store) -> int:
    with store.session() as session:
        return resolve_owner(session, None).id


def test_second_scan_is_told_busy_with_the_running_ones_progress(cli, store, data_root):
    photo = data_root / "dlib_faces_gt" / "dev" / LABELLED[0]
    held = lock.acquire(store, _owner_id(store))
    held.set_progress(total=10, done=3)
    held.beat()
    busy = cli("scan", photo, expect=3)
    assert "detection is still busy" in busy.stderr and "3 of 10" in busy.stderr
    as_json = cli.json("scan", "--json", photo, expect=3)
    assert as_json["busy"] is True and as_json["progress"]["done"] == 3 and as_json["progress"]["total"] == 10
    held.release()
    # the image was added while busy; the next scan processes it
    after = cli.json("scan", "--json", photo)
    assert after["busy"] is False and after["images"] == 1 and after["faces"] == 3


def test_dead_holder_is_taken_over(cli, store, data_root):
    owner_id = _owner_id(store)
    with store.session() as session:
        old = datetime.now(timezone.utc) - timedelta(minutes=10)
        session.add(RunLock(owner_id=owner_id, holder="elsewhere:4242:dead", started_at=old, heartbeat_at=old,
                            total=50, done=20))
    summary = cli.json("scan", "--json", data_root / "dlib_faces_gt" / "dev" / LABELLED[0])
    assert summary["busy"] is False and summary["images"] == 1
    assert not lock.lock_exists(store, owner_id)  # released at the end


def test_finder_enabled_later_processes_only_what_it_has_not_seen(cli, data_root):
    photos = [data_root / "dlib_faces_gt" / "dev" / name for name in LABELLED]
    first = cli.json("scan", "--json", "--finders", "dlib", *photos)
    assert first["finders"] == ["dlib"] and first["images"] == 2
    before = cli.json("faces", "--json")
    assert before and all(f["finders"] == ["dlib"] for f in before)
    dlib_done = {i["id"]: i["finders"]["dlib"]["processed_at"] for i in cli.json("images", "--json")}

    second = cli.json("scan", "--json", *photos)  # both finders enabled (the default)
    assert second["finders"] == ["dlib", "opencv"] and second["images"] == 2
    images = cli.json("images", "--json")
    assert {i["id"]: i["finders"]["dlib"]["processed_at"] for i in images} == dlib_done  # dlib not run again
    assert all(i["finders"]["opencv"]["status"] == "done" for i in images)
    after = cli.json("faces", "--json")
    # the faces dlib found are the same faces (same ids, same boxes), now with a second embedding
    assert {f["id"]: f["box"] for f in after if f["id"] in {b["id"] for b in before}} == \
           {f["id"]: f["box"] for f in before}
    both = [f for f in after if f["finders"] == ["dlib", "opencv"]]
    labels = labelled_boxes(data_root)
    for photo in photos:
        mine = [f["box"] for f in both if Path(f["image"]).name == photo.name]
        assert matched_labels(mine, labels[photo]) == len(labels[photo]), photo.name
    assert second["faces"] == len(after) - len(before)  # new faces only where opencv alone saw one
    assert second["embeddings"] == sum("opencv" in f["finders"] for f in after)
    for a in after:  # no face framed twice
        for b in after:
            if a["id"] < b["id"] and a["image_id"] == b["image_id"]:
                assert not same_face(a["box"], b["box"]), (a, b)
    third = cli.json("scan", "--json", *photos)
    assert third["images"] == 0 and third["faces"] == 0
    # disabling dlib keeps its data
    cli.json("scan", "--json", "--finders", "opencv", *photos)
    assert len([f for f in cli.json("faces", "--json") if "dlib" in f["finders"]]) == len(before)


def test_faces_json_shape(cli, data_root):
    cli("scan", data_root / "dlib_faces_gt" / "dev" / LABELLED[0])
    face = cli.json("faces", "--json")[0]
    assert set(face) == {"id", "uuid", "image_id", "image", "box", "score", "finders", "state", "name", "guess",
                         "group"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert face["state"] == "unnamed" and face["name"] is None and face["guess"] is None
    assert cli.json("faces", "--json", "--image", face["image_id"]) and not cli.json("faces", "--json", "--image",
                                                                                      face["image_id"] + 999)


def test_selfcheck_reports_both_finders(cli):
    report = cli.json("selfcheck", "--json")
    names = {f["name"]: f for f in report["finders"]}
    assert set(names) == {"dlib", "opencv"} and report["usable"] == ["dlib", "opencv"]
    for finder in names.values():
        assert finder["ok"] and finder["libraries"] and finder["model_files"]
        assert all(m["ok"] and len(m["sha256"]) == 64 for m in finder["model_files"])
    text = cli("selfcheck")  # the real command, as a user types it
    assert "dlib" in text.stdout and "opencv" in text.stdout
    # no enabled finder -> exit code 1
    none = cli.invoke("selfcheck", "--json", expect=1, env={"FACES_FINDERS__DLIB__ENABLED": "false",
                                                            "FACES_FINDERS__OPENCV__ENABLED": "false"})
    assert '"usable": []' in none.stdout


def test_scan_of_a_missing_path_fails_clearly(cli, tmp_path):
    proc = cli("scan", tmp_path / "nowhere", expect=1)
    assert "no such file or folder" in proc.stderr


def test_a_finished_scan_leaves_its_sqlite_database_in_one_file(cli, settings, data_root):
    """The scan skips the interpreter's teardown (faces.quick_exit), but closes its database connections first:
    SQLite folds its write-ahead log into the file, so copying faces.db alone is a whole backup."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return  # the other backends keep no file here
    summary = cli.json("scan", "--json", data_root / "dlib_faces_gt" / "dev" / LABELLED[0])
    assert summary["faces"] == 3
    database = Path(url.removeprefix("sqlite:///"))
    assert database.is_file()
    assert not database.with_name(database.name + "-wal").exists()
