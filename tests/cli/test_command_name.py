"""What ``faces scan`` reads of its command line before the command line is even imported, to start its workers'
fork server first: the command (faces.cli._command) and the finders that will run (faces.cli._finders_option),
whose models the fork server makes (faces.jobs.worker_preload)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faces.cli import _command, _finders_option
from faces.jobs import worker_preload


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


@pytest.mark.parametrize(("args", "finders"), [
    (["scan", "photos"], None),
    (["scan", "--finders", "opencv", "photos"], ["opencv"]),
    (["scan", "--finders=DLIB, opencv", "photos"], ["dlib", "opencv"]),
    (["scan", "--finders", "dlib", "--finders", "opencv"], ["opencv"]),  # the last one counts, as for Typer
])
def test_the_finders_option_is_read_before_the_command_line_is_imported(args, finders):
    assert _finders_option(args) == finders


def test_the_fork_server_makes_only_the_models_of_the_finders_that_will_run():
    preload = worker_preload(["opencv"])
    assert "faces.jobs.prebuild.opencv" in preload and "faces.jobs.prebuild.dlib" not in preload
    assert {"faces.jobs.prebuild.opencv", "faces.jobs.prebuild.dlib"} <= set(worker_preload())
    assert worker_preload(["nonsense"]) == worker_preload([])


def test_the_fork_server_module_keeps_the_exit_status_of_any_other_process():
    """faces.jobs.fork_server ends the fork server quickly with status 0; imported elsewhere it does nothing."""
    code = "import faces.jobs.fork_server; raise SystemExit(3)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3


def test_every_module_the_fork_server_imports_exists():
    code = ("import importlib.util; from faces.jobs import worker_preload; "
            "print([m for m in worker_preload() if m != 'dlib' and importlib.util.find_spec(m) is None])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"  # dlib may be missing: its import fails quietly
