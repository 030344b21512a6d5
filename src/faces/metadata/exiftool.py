"""Running exiftool: one stay-open process for a whole batch (pyexiftool), or one process per command
(only for the benchmark's baseline), and the self check.

faces writes one private XMP property, ``XMP-faces:Managed`` (namespace :data:`NAMESPACE`), that records the
regions and names faces itself wrote into a file, so that a later write changes only those and never a region
of another program. exiftool needs a small config file to write a property of an unknown namespace; it is
created in a temporary file for the life of the process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from faces.metadata.errors import BadFileName, ExifToolUnavailable

NAMESPACE = "https://faces.invalid/ns/xmp/1.0/"
PREFIX = "faces"
MANAGED_TAG = f"XMP-{PREFIX}:Managed"

_CONFIG = f"""# exiftool config written by faces: its private XMP namespace
%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {{
        {PREFIX} => {{ SubDirectory => {{ TagTable => 'Image::ExifTool::UserDefined::{PREFIX}' }} }},
    }},
);
%Image::ExifTool::UserDefined::{PREFIX} = (
    GROUPS => {{ 0 => 'XMP', 1 => 'XMP-{PREFIX}', 2 => 'Image' }},
    NAMESPACE => {{ '{PREFIX}' => '{NAMESPACE}' }},
    WRITABLE => 'string',
    Managed => {{ }},
);
1;
"""

_SUMMARY = re.compile(r"^\s*\d+ (image )?(files?|directories|directory) ")
INSTALL_HINT = "install it with 'apt-get install libimage-exiftool-perl' (Debian/Ubuntu)"


def find_exiftool() -> str | None:
    """The path of the exiftool program on PATH, or None."""
    return shutil.which("exiftool")


def _config_file() -> str:
    fd, path = tempfile.mkstemp(prefix="faces-exiftool-", suffix=".config")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_CONFIG)
    return path


@dataclass
class Result:
    """What one exiftool command did: exit status, standard output and standard error (text)."""

    status: int
    stdout: str
    stderr: str

    def error_lines(self) -> list[str]:
        """The lines of stderr that are errors (not warnings, not the "1 image files updated" summary, which
        exiftool prints there when it imports JSON)."""
        return [line.strip() for line in self.stderr.splitlines()
                if line.strip() and not line.strip().startswith("Warning") and not _SUMMARY.match(line)]


class ExifTool:
    """One exiftool process that stays open for many commands (``-stay_open``), through pyexiftool.

    Use as a context manager, or call :meth:`start` and :meth:`close`. Not thread-safe: one per thread.
    Raises ExifToolUnavailable when exiftool or pyexiftool is missing.
    """

    def __init__(self, executable: str | None = None):
        self.executable = executable or find_exiftool()
        self._tool = None
        self._config: str | None = None

    def start(self) -> ExifTool:
        """Start the process (idempotent)."""
        if self._tool is not None:
            return self
        if not self.executable:
            raise ExifToolUnavailable(f"exiftool is not installed, so names cannot be written into or read from "
                                      f"image files; {INSTALL_HINT}")
        try:
            import exiftool as pyexiftool
        except ImportError:
            raise ExifToolUnavailable("the Python package pyexiftool is missing; install it with "
                                      "'pip install pyexiftool'") from None
        _stop_reading_at_end_of_file()
        self._config = _config_file()
        tool = pyexiftool.ExifTool(executable=self.executable, common_args=[], config_file=self._config,
                                   encoding="utf-8")
        try:
            tool.run()
        except Exception as exc:  # noqa: BLE001 - any start failure means the feature is unavailable
            self._remove_config()
            raise ExifToolUnavailable(f"exiftool could not be started ({exc})") from None
        self._tool = tool
        return self

    def run(self, *args: str) -> Result:
        """Run one exiftool command (arguments without the program name)."""
        self.start()
        check_arguments(args)
        stdout = self._tool.execute(*args)
        return Result(self._tool.last_status or 0, stdout or "", self._tool.last_stderr or "")

    def read_json(self, *args: str) -> tuple[list[dict[str, Any]], Result]:
        """Run a ``-j`` command; return its records (empty when nothing could be read) and the raw result."""
        result = self.run("-j", *args)
        return _parse_json(result.stdout), result

    @property
    def pid(self) -> int | None:
        """The process id of the running exiftool, or None (to measure its CPU time)."""
        process = getattr(self._tool, "_process", None)
        return getattr(process, "pid", None)

    def close(self) -> None:
        """Stop the process."""
        if self._tool is not None:
            try:
                with warnings.catch_warnings():  # pyexiftool warns when the process has died already
                    warnings.simplefilter("ignore")
                    self._tool.terminate()
            except Exception:  # noqa: BLE001 - a dead process is already closed
                pass
            self._tool = None
        self._remove_config()

    def _remove_config(self) -> None:
        if self._config:
            try:
                os.unlink(self._config)
            except OSError:
                pass
            self._config = None

    def __enter__(self) -> ExifTool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ExifToolDied(RuntimeError):
    """exiftool stopped in the middle of a command (killed, out of memory)."""


def _read_until(fd: int, ending: bytes, block_size: int) -> bytes:
    """Read ``fd`` until what was read ends with ``ending`` (whitespace aside); raise ExifToolDied at the end of
    the file. pyexiftool's own reader (0.5.6) reads on forever, at 100 % CPU, once exiftool is gone."""
    import select

    chunks: list[bytes] = []
    tail = b""
    while not tail.strip().endswith(ending):
        select.select([fd], [], [])
        chunk = os.read(fd, block_size)
        if not chunk:
            raise ExifToolDied("exiftool stopped in the middle of a command")
        chunks.append(chunk)
        tail = (tail + chunk)[-(len(ending) + 4):]  # as much as pyexiftool looks at
    return b"".join(chunks)


def _stop_reading_at_end_of_file() -> None:
    """Have pyexiftool read exiftool's answers with :func:`_read_until` (where its module has the reader it
    replaces: pyexiftool 0.5.x on a system with ``select`` on pipes)."""
    import exiftool.exiftool as module

    if os.name == "posix" and hasattr(module, "_read_fd_endswith"):
        module._read_fd_endswith = _read_until


class OneShotExifTool(ExifTool):
    """The same interface, but every command starts its own exiftool process (the slow way; for comparison)."""

    def start(self) -> OneShotExifTool:
        if not self.executable:
            raise ExifToolUnavailable(f"exiftool is not installed; {INSTALL_HINT}")
        if self._config is None:
            self._config = _config_file()
        return self

    def run(self, *args: str) -> Result:
        self.start()
        check_arguments(args)
        proc = subprocess.run([self.executable, "-config", self._config, *args], capture_output=True, check=False)
        return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))

    def close(self) -> None:
        self._remove_config()


def check_arguments(args) -> None:  # noqa: ANN001
    """Raise BadFileName for an argument that cannot travel to exiftool (one argument per line, UTF-8)."""
    for arg in args:
        if "\n" in arg or "\r" in arg:
            raise BadFileName(f"the file name {arg!r} contains a line break, which exiftool cannot take")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise BadFileName(f"the file name {arg!r} is not valid text, which exiftool cannot take") from None


def _parse_json(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def version(executable: str) -> str | None:
    """The version exiftool reports (``exiftool -ver``), or None when it does not run."""
    try:
        proc = subprocess.run([executable, "-ver"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = proc.stdout.strip()
    return text if proc.returncode == 0 and text else None


def self_check(settings: Any = None) -> dict[str, Any]:
    """Whether names can be written into and read from image files here, and why not.

    Args:
        settings: optional :class:`faces.config.Settings`; when given, its metadata settings are included.
    Returns:
        A JSON-ready dict: ``feature``, ``ok`` (exiftool and pyexiftool usable), ``exiftool`` (path or None),
        ``exiftool_version``, ``pyexiftool_version``, ``reason`` (plain words, empty when ok) and, with
        settings, ``write_names``, ``read_regions``, ``sidecar``, ``sidecar_name``.
    """
    result: dict[str, Any] = {"feature": "names in image files (exiftool)", "ok": False, "exiftool": None,
                              "exiftool_version": None, "pyexiftool_version": None, "reason": ""}
    try:
        result["pyexiftool_version"] = importlib_metadata.version("pyexiftool")
    except importlib_metadata.PackageNotFoundError:
        pass
    path = find_exiftool()
    result["exiftool"] = path
    if path:
        result["exiftool_version"] = version(path)
    if not path:
        result["reason"] = f"exiftool is not installed; {INSTALL_HINT}"
    elif not result["exiftool_version"]:
        result["reason"] = f"exiftool at {path} does not run"
    elif not result["pyexiftool_version"]:
        result["reason"] = "the Python package pyexiftool is missing ('pip install pyexiftool')"
    else:
        result["ok"] = True
    if settings is not None:
        meta = settings.metadata
        result.update(write_names=bool(meta.write_names), read_regions=bool(meta.read_regions),
                      sidecar=bool(meta.sidecar), sidecar_name=getattr(meta, "sidecar_name", "photo.jpg.xmp"))
    return result


def exiftool_path_for(path: Path | str) -> str:
    """``path`` as an exiftool argument: a file name starting with '-' would be read as an option."""
    text = os.fspath(path)
    return text if not text.startswith("-") else os.path.join(".", text)
