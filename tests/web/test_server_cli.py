"""``faces user add/list/passwd``: accounts from the command line, usable in the web page."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from faces.cli import app


def test_user_commands_create_list_and_change_passwords(settings, store, tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("FACES_")]:  # test-run variables are not settings
        monkeypatch.delenv(key)
    monkeypatch.setenv("FACES_DATABASE_URL", settings.resolved_database_url)
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir)]
    added = runner.invoke(app, [*base, "user", "add", "Carla", "--admin", "--password-stdin"],
                          input="first password\n")
    assert added.exit_code == 0, added.output
    assert "Created the account 'carla' (administrator)." in added.output
    short = runner.invoke(app, [*base, "user", "add", "dan", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    twice = runner.invoke(app, [*base, "user", "add", "carla", "--password-stdin"], input="another password\n")
    assert twice.exit_code == 1 and "already an account" in twice.output
    listed = runner.invoke(app, [*base, "user", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["username"], r["admin"], r["can_log_in"]) for r in rows] == [("carla", True, True)]
    changed = runner.invoke(app, [*base, "user", "passwd", "carla", "--password-stdin"], input="second password\n")
    assert changed.exit_code == 0, changed.output
    missing = runner.invoke(app, [*base, "user", "passwd", "nobody", "--password-stdin"], input="whatever pw\n")
    assert missing.exit_code == 1 and "no account named" in missing.output

    from faces.web.auth import authenticate

    with store.session() as s:
        assert authenticate(s, "carla", "first password") is None
        assert authenticate(s, "carla", "second password").is_admin
