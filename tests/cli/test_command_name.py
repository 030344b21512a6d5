"""faces.cli._command: which command a command line names, read before the command line is even imported
(``faces scan`` starts its workers' fork server first)."""

from __future__ import annotations

import pytest

from faces.cli import _command


@pytest.mark.parametrize(("args", "command"), [
    (["scan", "photos"], "scan"),
    (["--data-dir", "/srv/faces", "scan", "photos"], "scan"),
    (["--data-dir=/srv/faces", "--user", "scan", "images", "--json"], "images"),
    (["--user", "ada", "serve"], "serve"),
    (["--help"], None),
    ([], None),
])
def test_the_command_is_found_after_the_global_options(args, command):
    assert _command(args) == command
