"""Running the real ``faces`` command line against the test database of each backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

FACES = str(Path(sys.executable).with_name("faces"))
IN_PROCESS = {"images", "faces", "stats", "selfcheck"}


def clean_env(settings, **extra: str) -> dict[str, str]:
    """The environment for a ``faces`` process on ``settings``' data directory and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    env.update(FACES_DATA_DIR=str(settings.data_dir), FACES_DATABASE_URL=settings.resolved_database_url,
               FACES_WORKERS="2")
    env.update(extra)
    return env


class Cli:
    """``cli("scan", "--json", path)`` runs ``faces`` and returns the CompletedProcess; ``cli.json(...)`` parses
    stdout of a command that must succeed."""

    def __init__(self, settings):
        self.settings = settings
        self.env = clean_env(settings)

    def __call__(self, *args: str, expect: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([FACES, *map(str, args)], env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=600)
        if expect is not None:
            assert proc.returncode == expect, f"faces {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stderr}"
        return proc

    def json(self, *args: str, **kwargs):
        """Run a command that prints JSON; the read-only ones run in this process (faster, same code path)."""
        if args and args[0] in IN_PROCESS:
            return json.loads(self.invoke(*args, **kwargs).stdout)
        return json.loads(self(*args, **kwargs).stdout)

    def invoke(self, *args: str, expect: int | None = 0, env: dict | None = None):
        """Run ``faces`` in this process through typer's CliRunner (for commands that start no workers)."""
        from faces.cli import app

        unset = {k: None for k in os.environ if k.startswith("FACES_")}
        result = CliRunner().invoke(app, [str(a) for a in args], env={**unset, **self.env, **(env or {})})
        if expect is not None:
            assert result.exit_code == expect, f"faces {' '.join(map(str, args))} -> {result.exit_code}\n" \
                                               f"{result.output}\n{result.exception!r}"
        return result


@pytest.fixture
def cli(settings) -> Cli:
    return Cli(settings)
