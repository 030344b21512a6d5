"""Settings: defaults that run out of the box, overridden by a TOML file, overridden by the environment.

Order (later wins):
1. the defaults below;
2. ``<data_dir>/faces.toml`` (or the file named by ``FACES_CONFIG``);
3. environment variables ``FACES_<NAME>``; nested keys use a double underscore,
   e.g. ``FACES_FINDERS__DLIB__MODEL=cnn`` or ``FACES_METADATA__WRITE_NAMES=true``.

Settings that the admin changes in the web page are stored in the database (``store.settings``)
and applied on top of these at run time; this module knows nothing of the database.
"""

from __future__ import annotations

import copy
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any


@dataclass
class FinderSettings:
    """Settings of one finder (one detector plus one embedder)."""

    enabled: bool = True
    min_face_size: int = 20  # faces smaller than this many pixels (box side, full resolution) are ignored
    score_threshold: float = 0.0  # detection confidence below this is dropped
    tolerance: float = 0.6  # largest embedding distance that still counts as the same person
    model: str = ""  # model variant, e.g. "hog" or "cnn" for dlib
    upsample: int = 1  # dlib HOG/CNN: times the image is upsampled before detection
    max_side: int = 1600  # longest side, in pixels, that the detector is given (photos are reduced to it)


def _default_finders() -> dict[str, FinderSettings]:
    return {
        # dlib: HOG scans a grey copy of at most 2048 px, doubled only for photos of 1024 px or less; a score of
        # 0.05 drops the NASA patch of astronaut.png (-0.01) and no real face (lowest 0.07) on ../shared/data.
        "dlib": FinderSettings(model="hog", tolerance=0.6, score_threshold=0.05, upsample=1, max_side=2048),
        # SFace: cosine distance (1 - cosine similarity); OpenCV's own match threshold is similarity 0.363.
        "opencv": FinderSettings(model="int8bq", tolerance=0.637, score_threshold=0.8, upsample=0, max_side=1280),
    }


@dataclass
class MetadataSettings:
    """Names in the image files (exiftool)."""

    write_names: bool = False  # write confirmed names into the files
    sidecar: bool = False  # write into an .xmp sidecar instead of the original file
    sidecar_name: str = "photo.jpg.xmp"  # sidecar naming: "photo.jpg.xmp" (digiKam, darktable) or "photo.xmp"
    read_regions: bool = True  # read face regions already in files as confirmed names


@dataclass
class SmtpSettings:
    """E-mail for tagging notifications; an empty host means no e-mail is sent."""

    host: str = ""
    port: int = 587
    username: str = ""
    password: str = ""
    sender: str = ""  # the From address
    starttls: bool = True
    timeout: float = 10.0


@dataclass
class Settings:
    """Every setting of a faces installation. Build it with :func:`load_settings`."""

    data_dir: Path = Path("./faces-data")
    database_url: str = ""  # empty: SQLite file faces.db in data_dir
    log_level: str = "INFO"
    executor: str = "inprocess"  # "inprocess" or "celery"
    workers: int = 0  # detection worker processes; 0 = one per CPU core
    broker_url: str = "redis://127.0.0.1:6379/0"
    task_queue: str = "faces"  # Celery queue that detection tasks go to (executor "celery")
    path_map: dict[str, str] = field(default_factory=dict)  # shared storage: path prefix -> prefix on this machine
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""  # empty: generated once and kept in data_dir/secret_key
    registration_open: bool = False
    default_image_visibility: str = "contacts"  # private | contacts | public
    default_view: str = "contacts"  # who views a library without permission entries: contacts | owner
    default_write: str = "owner"  # who names faces of a library without permission entries: owner | contacts
    base_url: str = ""  # public address of the web page, for links in e-mails, e.g. https://faces.example.org
    ann_index: str = "auto"  # guessing against many faces: "auto" (index from ann_min_faces), "exact", "ivf"
    ann_min_faces: int = 50_000  # faces of one finder in a library from which "auto" uses the index
    ann_probes: int = 8  # index lists compared per face (more: slower, fewer faces missed)
    sync_interval: int = 0  # seconds between automatic clone syncs; 0 = off
    max_image_pixels: int = 120_000_000  # decompression-bomb limit
    finders: dict[str, FinderSettings] = field(default_factory=_default_finders)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL to use: the setting, or the SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'faces.db').resolve()}"

    @property
    def worker_count(self) -> int:
        """Number of detection worker processes (at least one)."""
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)

    def ensure_data_dir(self) -> Path:
        """Create the data directory if needed and return it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def get_secret_key(self) -> str:
        """The session-signing key: the setting, or a random key stored once in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_data_dir() / "secret_key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def _coerce(value: Any, current: Any, name: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"setting {name}: expected true or false, got {value!r}")
    if isinstance(current, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name}: expected a whole number, got {value!r}") from None
    if isinstance(current, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name}: expected a number, got {value!r}") from None
    if isinstance(current, Path):
        return Path(value).expanduser()
    if isinstance(current, dict) and isinstance(value, str):
        # "a=b,c=d" for plain string maps such as path_map
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"setting {name}: expected KEY=VALUE pairs separated by commas")
        return {key.strip(): val.strip() for key, val in pairs}
    return value


def _apply(target: Any, updates: dict[str, Any], prefix: str = "") -> None:
    """Apply a nested mapping of updates onto a settings dataclass, in place."""
    names = {f.name for f in fields(target)}
    for key, value in updates.items():
        key = key.lower()
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown setting {full!r}")
        current = getattr(target, key)
        if is_dataclass(current) and isinstance(value, dict):
            _apply(current, value, f"{full}.")
        elif key == "finders" and isinstance(value, dict):
            for finder_name, finder_values in value.items():
                finder_name = finder_name.lower()
                if not isinstance(finder_values, dict):
                    raise ConfigError(f"setting finders.{finder_name}: expected a table of settings")
                finder = current.setdefault(finder_name, FinderSettings())
                _apply(finder, finder_values, f"finders.{finder_name}.")
        else:
            setattr(target, key, _coerce(value, current, full))


# FACES_* variables that are not settings: the config file, the command line's --user, test-run variables.
_NOT_SETTINGS = frozenset({"FACES_CONFIG", "FACES_USER", "FACES_ARTIFACTS"})


def _env_updates(environ: dict[str, str]) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("FACES_") or key in _NOT_SETTINGS or key.startswith("FACES_TEST_"):
            continue
        path = key[len("FACES_"):].lower().split("__")
        node = updates
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return updates


def load_settings(data_dir: str | Path | None = None, environ: dict[str, str] | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings.

    Args:
        data_dir: the data directory from the command line; beats ``FACES_DATA_DIR``.
        environ: environment to read (default ``os.environ``).
        overrides: nested mapping applied last (used by tests and the command line).
    Returns:
        A new :class:`Settings`.
    Raises:
        ConfigError: a setting is unknown or has a value of the wrong kind.
    """
    environ = dict(os.environ if environ is None else environ)
    settings = Settings()
    env = _env_updates(environ)
    if data_dir is not None:
        env["data_dir"] = str(data_dir)
    if "data_dir" in env:
        settings.data_dir = Path(env["data_dir"]).expanduser()
    config_file = Path(environ.get("FACES_CONFIG") or settings.data_dir / "faces.toml")
    if config_file.is_file():
        try:
            with config_file.open("rb") as handle:
                _apply(settings, tomllib.load(handle))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: not valid TOML ({exc})") from None
    _apply(settings, env)
    if overrides:
        _apply(settings, copy.deepcopy(overrides))
    if settings.metadata.sidecar_name not in ("photo.jpg.xmp", "photo.xmp"):
        raise ConfigError("setting metadata.sidecar_name: expected 'photo.jpg.xmp' or 'photo.xmp', "
                          f"got {settings.metadata.sidecar_name!r}")
    if settings.ann_index not in ("auto", "exact", "ivf"):
        raise ConfigError(f"setting ann_index: expected 'auto', 'exact' or 'ivf', got {settings.ann_index!r}")
    if settings.ann_probes < 1 or settings.ann_min_faces < 0:
        raise ConfigError("settings ann_probes and ann_min_faces: expected ann_probes >= 1 and ann_min_faces >= 0")
    if settings.executor not in ("inprocess", "celery"):
        raise ConfigError(f"setting executor: expected 'inprocess' or 'celery', got {settings.executor!r}")
    return settings
