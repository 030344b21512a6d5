"""`faces scan` obeys what the admin set in the web page (stored in the database), not only the files."""

from __future__ import annotations

import shutil

from sqlalchemy import select

from faces.sharing.admin_settings import set_setting
from faces.store.models import Image, Visibility


def test_scan_uses_the_admins_finder_switch_and_default_visibility(cli, store, settings, tmp_path, data_root):
    with store.session() as session:
        set_setting(session, "finders.dlib.enabled", False, base=settings)
        set_setting(session, "default_image_visibility", "private", base=settings)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data_root / "public_domain_faces" / "astronaut.png", photos)

    summary = cli.json("scan", "--json", photos)

    assert summary["finders"] == ["opencv"]
    assert summary["faces"] == 1
    faces = cli.json("faces", "--json")
    assert faces[0]["finders"] == ["opencv"]
    with store.session() as session:
        assert session.scalar(select(Image.visibility)) == Visibility.PRIVATE
    assert [c["name"] for c in cli.json("selfcheck", "--json")["finders"] if c["enabled"]] == ["opencv"]
