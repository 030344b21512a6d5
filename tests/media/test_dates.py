"""The date a photo was taken, from EXIF: DateTimeOriginal, else DateTimeDigitized, else DateTime."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime

import pytest
from PIL import ExifTags, Image

from faces.media import parse_exif_date, probe_image


def _exif(original=None, digitized=None, modified=None) -> Image.Exif:
    exif = Image.Exif()
    if modified is not None:
        exif[ExifTags.Base.DateTime] = modified
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if original is not None:
        sub[ExifTags.Base.DateTimeOriginal] = original
    if digitized is not None:
        sub[ExifTags.Base.DateTimeDigitized] = digitized
    return exif


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("tags, expected", [
    (dict(original="2019:07:14 16:03:22", digitized="2019:07:15 00:00:00", modified="2020:01:01 10:00:00"),
     datetime(2019, 7, 14, 16, 3, 22)),
    (dict(digitized="2019:07:15 08:09:10", modified="2020:01:01 10:00:00"), datetime(2019, 7, 15, 8, 9, 10)),
    (dict(modified="2020:01:01 10:00:00"), datetime(2020, 1, 1, 10, 0, 0)),
    # a camera with its clock unset, and a hand-edited mess: the next tag is used
    (dict(original="0000:00:00 00:00:00", digitized="    :  :     :  :  ", modified="2018:02:03 04:05:06"),
     datetime(2018, 2, 3, 4, 5, 6)),
    (dict(original="2019:02:30 12:00:00", modified="2019:03:01 12:00:00"), datetime(2019, 3, 1, 12, 0, 0)),
    (dict(original="yesterday"), None),
    ({}, None),
])
def test_date_taken_from_exif(tmp_path, fmt, tags, expected):
    path = tmp_path / f"dated.{fmt.lower()}"
    Image.new("RGB", (32, 24), "orange").save(path, fmt, exif=_exif(**tags))
    assert probe_image(path).taken_at == expected


def test_no_exif_no_date(odd_good_files):
    folder, _ = odd_good_files
    assert probe_image(folder / "photo.bmp").taken_at is None


@pytest.mark.parametrize("text, expected", [
    ("2019:07:14 16:03:22", datetime(2019, 7, 14, 16, 3, 22)),
    ("2019:07:14 16:03:22\x00", datetime(2019, 7, 14, 16, 3, 22)),
    (b"2019:07:14 16:03:22", datetime(2019, 7, 14, 16, 3, 22)),
    ("2019-07-14T16:03:22+02:00", datetime(2019, 7, 14, 16, 3, 22)),  # naive: as the camera wrote it
    ("2019:07:14 16:03", datetime(2019, 7, 14, 16, 3)),
    ("2019:07:14", datetime(2019, 7, 14)),
    ("0000:00:00 00:00:00", None),
    ("1601:01:01 00:00:00", None),  # before photography: a reset clock
    ("2019:13:01 00:00:00", None),
    ("2019:07:14 25:00:00", None),
    ("", None),
    (None, None),
    (20190714, None),
])
def test_parse_exif_date(text, expected):
    assert parse_exif_date(text) == expected


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_dates_agree_with_exiftool_on_real_photos(data_root):
    """On real camera files, the date read is the first valid one that exiftool shows (an independent reader)."""
    files = sorted((data_root / "deepface_unit").glob("img*.jpg"))[:12]
    files += sorted((data_root / "face_recognition_examples").rglob("*.jpg"))[:6]
    out = subprocess.run(["exiftool", "-json", "-DateTimeOriginal", "-CreateDate", "-ModifyDate", *map(str, files)],
                         capture_output=True, text=True, check=True).stdout
    dated = 0
    for entry in json.loads(out):
        expected = None
        for tag in ("DateTimeOriginal", "CreateDate", "ModifyDate"):
            value = entry.get(tag)
            if isinstance(value, str) and value.strip("0: "):
                expected = datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S")
                break
        assert probe_image(entry["SourceFile"]).taken_at == expected, entry
        dated += expected is not None
    assert dated >= 5, "the sample should hold dated photos"
