"""Writing confirmed names into image files (or their ``.xmp`` sidecars), safely.

Images go through one stay-open exiftool in batches of :data:`WRITE_BATCH`:

1. one exiftool command reads the people tags of every image of the batch (and of their sidecars); each file
   is checked to be still the one scanned (same stored size and orientation), writable, and of a kind
   exiftool can write;
2. the new tags of each file are planned (:func:`faces.metadata.tags.plan`): other programs' regions and
   keywords kept; a file that already says that is left alone (not rewritten, it keeps its date);
3. one exiftool command per file writes all its tags at once (a JSON document) into a copy next to the target;
4. one exiftool command reads all the copies back, and each is compared with its plan;
5. each copy that reads back as planned replaces its target in one atomic rename, unless the target changed
   meanwhile (size, date, inode).

A failure of one file at any step leaves that file untouched and is reported for that file only; the others go
on. No ``_original`` backup or temporary file is left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from faces.metadata import geometry
from faces.metadata import tags as T
from faces.metadata.errors import (
    FileChanged,
    FileMissing,
    MetadataError,
    NotAnImage,
    OptedOut,
    ReadOnlyFile,
    UnsupportedFormat,
    WriteFailed,
)
from faces.metadata.exiftool import ExifTool, check_arguments, exiftool_path_for
from faces.store.models import Face, FaceState, Image, Name, User

log = logging.getLogger(__name__)

SIDECAR_NAMES = ("photo.jpg.xmp", "photo.xmp")
WRITE_BATCH = 50  # images per batch: files per exiftool read command
# file types (exiftool's FileType) that faces writes names into; others need a sidecar
IN_FILE_TYPES = frozenset({"JPEG", "TIFF", "PNG", "WEBP", "HEIC", "HEIF", "AVIF", "GIF", "JXL", "PSD", "DNG", "JP2"})
IPTC_TYPES = frozenset({"JPEG", "TIFF", "PSD"})  # where IPTC IIM keywords belong
_TURNED_BY_CONTAINER = frozenset({"HEIC", "HEIF", "AVIF"})  # rotation lives in the container, not only in EXIF
# types exiftool writes straight into a new file (-o); the others are copied first and written in place
# (exiftool 12.57 refuses "-o" for WebP: "Can't write RIFF files")
_WRITE_TO_NEW = frozenset({"JPEG", "TIFF", "PNG", "GIF", "JXL", "PSD", "DNG", "JP2", "HEIC", "HEIF", "AVIF"})
# rewrite the other IPTC texts too, so that they stay right under the UTF-8 character set of our keywords
_CONVERT_IPTC = ("-tagsFromFile", "@", "-IPTC:all", f"--{T.KEYWORDS}", f"--{T.CHARSET}")
_MANAGED_XMP = ("-XMP-mwg-rs:all", "-XMP-MP:all", f"-{T.SUBJECT}", f"-{T.PERSON}", f"-{T.MANAGED}")


def sidecar_path(path: str | Path, style: str = "photo.jpg.xmp") -> Path:
    """The sidecar of ``path``: ``photo.jpg.xmp`` (digiKam, darktable) or ``photo.xmp`` (Lightroom)."""
    path = Path(path)
    if style == "photo.jpg.xmp":
        return path.with_name(path.name + ".xmp")
    if style == "photo.xmp":
        return path.with_suffix(".xmp")
    raise ValueError(f"setting metadata.sidecar_name must be 'photo.jpg.xmp' or 'photo.xmp', not {style!r}")


def existing_sidecars(path: str | Path) -> list[Path]:
    """The sidecars of ``path`` that exist, ``photo.jpg.xmp`` first."""
    return [p for p in (sidecar_path(path, s) for s in SIDECAR_NAMES) if p.is_file()]


def sha256_file(path: str | Path) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of a file (the content hash faces keeps for every image)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@dataclass
class ImageJob:
    """One image to write: where it is, its upright size and orientation, and all its faces."""

    image_id: int
    path: str
    upright_size: tuple[int, int]
    orientation: int
    faces: list[T.FaceTag]


@dataclass
class FileOutcome:
    """What happened to one file."""

    status: str  # "written" or "unchanged"
    target: str  # the file (or sidecar) that holds the names
    regions: int = 0  # regions of ours now in the file
    foreign_regions: int = 0  # regions of other programs, kept
    content_hash: str | None = None  # new hash of the image file when it was rewritten
    bytes: int | None = None


def _check_readable(path: Path) -> Path:
    if not path.exists():
        raise FileMissing(f"{path} is missing (moved or deleted?); scan its folder again")
    if not path.is_file():
        raise NotAnImage(f"{path} is not a file")
    return Path(os.path.realpath(path))


def _check_writable(path: Path, what: str = "the file") -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise FileMissing(f"{path} cannot be read ({exc.strerror})") from None
    # root may write anything: a file without any write permission bit is still meant to stay as it is
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise ReadOnlyFile(f"{path} is read-only, so faces leaves {what} as it is; make it writable, or turn "
                           f"on sidecar files (setting metadata.sidecar) to keep the names next to it")


def _temp_name(target: Path, token: str | None = None) -> Path:
    # same folder (so the final rename is atomic), hidden, same extension (exiftool goes by it)
    return target.with_name(f".{target.stem}.faces-{token or secrets.token_hex(4)}{target.suffix}")


# Our copies (see _temp_name), as exiftool may leave them; one older than STALE_COPY_SECONDS was left by a killed
# process: nothing else will ever rename or remove it.
_COPY_NAME = re.compile(r"^\..+\.faces-[0-9a-f]{8}\.[^.]+(_exiftool_tmp)?$")
STALE_COPY_SECONDS = 600


def remove_stale_copies(folders: Iterable[Path]) -> int:
    """Remove, in ``folders``, the hidden copies that a write killed half-way left behind. Returns how many."""
    removed = 0
    cutoff = time.time() - STALE_COPY_SECONDS
    for folder in set(folders):
        try:
            entries = [e for e in os.scandir(folder) if _COPY_NAME.match(e.name)]
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass  # gone already, or not ours to remove: left alone
    if removed:
        log.info("removed %d temporary copies left by an interrupted write", removed)
    return removed


def _remove(path: Path | None) -> None:
    if path is None:
        return
    for leftover in (path, path.with_name(path.name + "_exiftool_tmp")):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove temporary file %s: %s", leftover, exc.strerror)


@dataclass
class _Task:
    """One image on its way through :meth:`FileWriter.write_many`; ``error`` set means it stops here."""

    job: ImageJob
    image: Path | None = None  # the image file (symlinks resolved)
    target: Path | None = None  # the file that holds the names: the image, or its sidecar
    stamp: tuple[int, int, int] | None = None  # (size, mtime, inode) of the target before it was read
    exists: bool = True  # the target exists (a new sidecar does not)
    iptc: bool = False
    copy_first: bool = False
    plan: T.Plan | None = None
    temp: Path | None = None  # the written copy, until it is renamed into place
    outcome: FileOutcome | None = None
    error: MetadataError | None = None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file: size, modification time and inode; None when there is no file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


class FileWriter:
    """Writes the people tags of images through one (stay-open) exiftool. See the module docstring.

    Args:
        exiftool: a started or startable :class:`ExifTool` (the caller closes it).
        sidecar: write into an ``.xmp`` sidecar instead of the image file.
        sidecar_name: ``"photo.jpg.xmp"`` or ``"photo.xmp"``.
    """

    def __init__(self, exiftool: ExifTool, *, sidecar: bool = False, sidecar_name: str = "photo.jpg.xmp"):
        sidecar_path("x.jpg", sidecar_name)  # validates the setting
        self.exiftool = exiftool
        self.sidecar = sidecar
        self.sidecar_name = sidecar_name
        self._json_dir = tempfile.mkdtemp(prefix="faces-metadata-")

    def close(self) -> None:
        """Remove this writer's temporary folder."""
        shutil.rmtree(self._json_dir, ignore_errors=True)

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------------------

    def read_tags(self, path: Path) -> T.FileTags:
        """The people tags of ``path`` (an image or a sidecar). Raises NotAnImage / MetadataError."""
        found = self.read_many([path])[path]
        if isinstance(found, MetadataError):
            raise found
        return found

    def read_many(self, paths: Sequence[Path], args: Sequence[str] = T.READ_ARGS
                  ) -> dict[Path, T.FileTags | MetadataError]:
        """The people tags of many files (``args``: what to read), :data:`WRITE_BATCH` per exiftool command; a
        file exiftool cannot read gets a NotAnImage error (the others are read all the same). When exiftool
        itself breaks, it is restarted and the files are read one by one, so that only the file that breaks it
        fails."""
        out: dict[Path, T.FileTags | MetadataError] = {}
        for start in range(0, len(paths), WRITE_BATCH):
            part = list(dict.fromkeys(paths[start:start + WRITE_BATCH]))
            names = [exiftool_path_for(p) for p in part]
            try:
                records, result = self.exiftool.read_json(*args, *names)
            except MetadataError:
                raise
            except Exception:
                if len(part) == 1:
                    raise
                self.exiftool.close()
                for path in part:
                    try:
                        out.update(self.read_many([path], args))
                    except MetadataError as exc:
                        out[path] = exc
                    except Exception as exc:  # noqa: BLE001 - this file breaks exiftool
                        self.exiftool.close()
                        out[path] = _broken(path, exc)
                continue
            by_arg = {str(r.get("SourceFile")): r for r in records}
            for path, arg in zip(part, names):
                record = by_arg.get(arg)
                if record is None:
                    # exiftool names the file at the end of its error line: "Error: File not found - PATH"
                    lines = [line for line in result.error_lines() if line.endswith(f" - {arg}")]
                    message = "; ".join(lines) or "exiftool could not read it"
                    out[path] = NotAnImage(f"{path} cannot be read as an image: {message}")
                    continue
                tags = T.parse_record(record)
                out[path] = NotAnImage(f"{path} cannot be read as an image: {tags.error}") if tags.error else tags
        return out

    def _image_tags(self, path: Path, tags: T.FileTags, job: ImageJob) -> ImageJob:
        """Check the image's tags against what faces scanned; return the job to plan with."""
        if not tags.mime_type.startswith("image/") and tags.file_type not in IN_FILE_TYPES:
            kind = tags.file_type or "unknown"
            raise NotAnImage(f"{path} is not an image file (exiftool sees {kind} data)")
        expected = geometry.stored_size(*job.upright_size, job.orientation)
        if tags.stored_size is None:
            raise NotAnImage(f"{path}: exiftool cannot tell the size of this image")
        file_orientation = tags.orientation or 1
        turned_by_container = tags.file_type in _TURNED_BY_CONTAINER
        if tags.stored_size != expected and not (turned_by_container and tags.stored_size == job.upright_size):
            raise FileChanged(f"{path} is now {tags.stored_size[0]}x{tags.stored_size[1]} pixels, not the "
                              f"{expected[0]}x{expected[1]} that faces scanned; scan it again before writing names")
        if file_orientation != job.orientation and not turned_by_container:
            raise FileChanged(f"{path} has EXIF orientation {file_orientation} now, not {job.orientation} as when "
                              f"faces scanned it; scan it again before writing names")
        if turned_by_container and tags.stored_size == job.upright_size:
            # HEIF players apply the container's rotation; treat the upright pixels as the stored ones
            job = ImageJob(job.image_id, job.path, job.upright_size, 1, job.faces)
        return job

    # -- writing -----------------------------------------------------------------------------------------

    def write(self, job: ImageJob) -> FileOutcome:
        """Write the names of ``job`` into its file or sidecar. Raises a MetadataError subclass with a plain
        message on any problem; the file is then exactly as it was."""
        [result] = self.write_many([job])
        if isinstance(result, MetadataError):
            raise result
        return result

    def write_many(self, jobs: Sequence[ImageJob]) -> list[FileOutcome | MetadataError]:
        """Write the names of many images, :data:`WRITE_BATCH` at a time (see the module docstring).

        Returns, in the order of ``jobs``, a :class:`FileOutcome` or the MetadataError of that file; a file
        that fails leaves its original untouched and does not stop the others.
        """
        tasks = [_Task(job) for job in jobs]
        group: list[_Task] = []
        targets: set[Path] = set()
        for task in tasks:
            self._guard(task, self._locate, task)
        remove_stale_copies(t.target.parent for t in tasks if t.error is None)
        for task in tasks:
            if task.error is None and (task.target in targets or len(group) == WRITE_BATCH):
                self._write_group(group)  # the same file twice: the second write must see the first
                group, targets = [], set()
            if task.error is None:
                group.append(task)
                targets.add(task.target)
        self._write_group(group)
        return [task.error or task.outcome for task in tasks]  # type: ignore[misc]

    def _guard(self, task: _Task, step: Callable[..., None], *args: object) -> None:
        """Run one step of one file; any failure becomes that file's error (the others go on)."""
        try:
            step(*args)
        except MetadataError as exc:
            task.error = exc
        except OSError as exc:
            task.error = WriteFailed(f"{task.job.path}: {exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - exiftool itself broke: restart it, go on with the next file
            log.warning("image %s: exiftool failed (%s)", task.job.image_id, type(exc).__name__,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            self.exiftool.close()
            task.error = _broken(Path(task.job.path), exc)

    def _locate(self, task: _Task) -> None:
        """Which file gets the names, and whether exiftool can be given its name."""
        image = _check_readable(Path(task.job.path))
        check_arguments([os.fspath(image)])
        if self.sidecar:
            # next to the path as the library knows it (a symlinked photo gets its sidecar beside the link)
            target = sidecar_path(Path(task.job.path), self.sidecar_name)
            check_arguments([os.fspath(target)])
        else:
            target = image
        task.image, task.target = image, target

    def _write_group(self, tasks: list[_Task]) -> None:
        if not tasks:
            return
        for task in tasks:
            self._guard(task, self._take_stamp, task)
        tasks = [t for t in tasks if t.error is None]
        try:
            # 1. one exiftool command reads the images (and their sidecars)
            wanted = [t.image for t in tasks] + [t.target for t in tasks if t.target != t.image and t.exists]
            found = self._read_or_fail(tasks, wanted)
            for task in tasks:
                self._guard(task, self._plan, task, found)
            # 2. exiftool writes each file into a copy
            todo = [t for t in tasks if t.error is None and t.outcome is None]
            self._write_copies(todo)
            # 3. one command reads the copies back; 4. each copy that says what was planned replaces its file
            todo = [t for t in todo if t.error is None]
            written = self._read_or_fail(todo, [t.temp for t in todo], T.VERIFY_ARGS)
            for task in todo:
                self._guard(task, self._check_copy, task, written)
                self._guard(task, self._commit, task)
        finally:
            for task in tasks:
                _remove(task.temp)
                task.temp = None

    @staticmethod
    def _take_stamp(task: _Task) -> None:
        task.stamp = _stamp(task.target)
        task.exists = task.stamp is not None

    def _read_or_fail(self, tasks: list[_Task], paths: list[Path], args: Sequence[str] = T.READ_ARGS
                      ) -> dict[Path, T.FileTags | MetadataError]:
        """:meth:`read_many`; if that fails as a whole, every one of ``tasks`` gets the error."""
        try:
            return self.read_many(paths, args)
        except Exception as exc:  # noqa: BLE001 - e.g. exiftool would not start again
            for task in tasks:
                if task.error is None:
                    self._guard(task, _raise, exc)
            return {}

    def _plan(self, task: _Task, found: dict[Path, T.FileTags | MetadataError]) -> None:
        job, image, target = task.job, task.image, task.target
        image_tags = _found(found, image)
        job = self._image_tags(image, image_tags, job)
        if self.sidecar:
            existing = _found(found, target) if task.exists else image_tags
            if task.exists:
                _check_writable(target, "its sidecar")
            iptc = False
        else:
            if image_tags.file_type not in IN_FILE_TYPES:
                kind = image_tags.file_type or "this kind of"
                raise UnsupportedFormat(
                    f"exiftool cannot write names into {kind} files such as {image}; turn on sidecar files "
                    f"(setting metadata.sidecar) to keep the names in an .xmp file next to it")
            _check_writable(image)
            existing, iptc = image_tags, image_tags.file_type in IPTC_TYPES
        existing.stored_size = image_tags.stored_size
        plan = T.plan(existing, job.faces, upright_size=job.upright_size, orientation=job.orientation, iptc=iptc)
        task.outcome = FileOutcome(status="unchanged", target=str(target), regions=plan.regions_written,
                                   foreign_regions=plan.foreign_regions)
        if not plan.unchanged:
            task.plan, task.iptc = plan, iptc
            task.copy_first = self.sidecar or image_tags.file_type not in _WRITE_TO_NEW
            task.outcome = None

    def _write_copies(self, tasks: list[_Task]) -> None:
        """Write each task's planned tags into a copy of its target (``task.temp``). Files that exiftool writes
        straight into a new file share one command (each gets its own tags from one JSON document); the others
        (a new or existing sidecar, a WebP, an odd file name) get one command each."""
        alone = [t for t in tasks if not _shareable(t)]
        for legacy in (False, True):
            shared = [t for t in tasks if _shareable(t) and _convert_iptc(t) == legacy]
            if len(shared) > 1:
                self._write_together(shared, legacy)
            else:
                alone += shared
        for task in alone:
            self._guard(task, self._write_copy, task)

    def _write_together(self, tasks: list[_Task], legacy: bool) -> None:
        token = secrets.token_hex(4)
        entries, args = [], []
        for task in tasks:
            if not os.access(task.target.parent, os.W_OK):
                task.error = ReadOnlyFile(f"the folder {task.target.parent} is read-only, so faces cannot write "
                                          f"{task.target.name} safely")
                continue
            task.temp = _temp_name(task.target, token)
            args.append(exiftool_path_for(task.target))
            entries.append(T.json_entry(task.plan.assign, task.plan.delete, source=args[-1]))
        tasks = [t for t in tasks if t.error is None]
        if not tasks:
            return
        doc = os.path.join(self._json_dir, f"{token}.json")
        with open(doc, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(entries, ensure_ascii=False))
        try:
            # "-f": a tag set to "-" in the document is deleted; "%d.%f...": the same names as _temp_name
            result = self.exiftool.run("-m", "-f", f"-json={doc}", *(_CONVERT_IPTC if legacy else ()),
                                       "-o", f"%d.%f.faces-{token}.%e", *args)
        except MetadataError:
            raise
        except Exception:  # noqa: BLE001 - exiftool broke on one of them: restart it, write them one by one
            self.exiftool.close()
            for task in tasks:
                _remove(task.temp)
                task.temp = None
                self._guard(task, self._write_copy, task)
            return
        finally:
            try:
                os.unlink(doc)
            except OSError:
                pass
        errors, lines = result.error_lines(), result.stderr.splitlines()
        for task, arg in zip(tasks, args):
            # exiftool names the file at the end of its message: "Error: Not a valid JPEG - PATH"
            mine = [line for line in errors if line.endswith(f" - {arg}")]
            if mine or not task.temp.is_file():
                said = mine or [line.strip() for line in lines if line.rstrip().endswith(f" - {arg}")]
                task.error = _write_error(task.target, said[0] if said else "exiftool did not write it")
                continue
            try:
                shutil.copymode(task.target, task.temp)
            except OSError:
                pass

    def _write_copy(self, task: _Task) -> None:
        """Write the planned tags into a new copy of the target (``task.temp``), next to it."""
        plan, image, target, exists = task.plan, task.image, task.target, task.exists
        doc = os.path.join(self._json_dir, f"{secrets.token_hex(8)}.json")
        with open(doc, "w", encoding="utf-8") as handle:
            # json.dumps, not json.dump: the latter takes the pure-Python encoder (twice the Python time here)
            handle.write(json.dumps(T.json_document(plan.assign), ensure_ascii=False))
        task.temp = temp = _temp_name(target)
        try:
            args = ["-m", f"-json={doc}", *[f"-{tag}=" for tag in plan.delete]]
            if _convert_iptc(task):
                args += _CONVERT_IPTC
            if exists and not task.copy_first:
                if not os.access(target.parent, os.W_OK):
                    raise ReadOnlyFile(f"the folder {target.parent} is read-only, so faces cannot write "
                                       f"{target.name} safely")
                result = self.exiftool.run(*args, "-o", exiftool_path_for(temp), exiftool_path_for(target))
                if temp.is_file():
                    try:
                        shutil.copymode(target, temp)
                    except OSError:
                        pass
            elif exists:
                try:
                    shutil.copy2(target, temp)
                except PermissionError:
                    raise ReadOnlyFile(f"the folder {target.parent} is read-only, so faces cannot write "
                                       f"{target.name} safely") from None
                except OSError as exc:
                    raise WriteFailed(f"cannot copy {target} to write it safely: {exc.strerror}") from None
                result = self.exiftool.run(*args, "-overwrite_original", exiftool_path_for(temp))
            else:
                if not os.access(target.parent, os.W_OK):
                    raise ReadOnlyFile(f"the folder {target.parent} is read-only, so faces cannot create "
                                       f"{target.name}")
                # a new sidecar starts as a copy of the image's own XMP (minus the tags planned here)
                result = self.exiftool.run(*args, "-tagsFromFile", exiftool_path_for(image), "-XMP:all",
                                           *["-" + t for t in _MANAGED_XMP], "-o", exiftool_path_for(temp))
        finally:
            try:
                os.unlink(doc)
            except OSError:
                pass
        errors = result.error_lines()
        if result.status != 0 or errors or not temp.is_file():
            raise _write_error(target, errors[0] if errors else f"exiftool exit status {result.status}")

    def _check_copy(self, task: _Task, written: dict[Path, T.FileTags | MetadataError]) -> None:
        tags = written.get(task.temp)
        if not isinstance(tags, T.FileTags) or T.view(tags, iptc=task.iptc) != task.plan.expected:
            raise WriteFailed(f"the names written into {task.target.name} did not read back as written; "
                              f"the file was left as it was")

    def _commit(self, task: _Task) -> None:
        """Put the checked copy in the target's place (unless the target changed meanwhile)."""
        if task.error is not None:
            return
        target, temp = task.target, task.temp
        if _stamp(target) != task.stamp:
            raise FileChanged(f"{target} changed while faces was writing names into it; it was left as it is, "
                              f"write the names again")
        if task.exists:
            try:
                st = target.stat()
                if (st.st_uid, st.st_gid) != (temp.stat().st_uid, temp.stat().st_gid):
                    os.chown(temp, st.st_uid, st.st_gid)
            except OSError:
                pass  # not allowed to give the file back to its owner: it stays ours, still readable
        os.replace(temp, target)
        task.temp = None
        task.outcome = FileOutcome(status="written", target=str(target), regions=task.plan.regions_written,
                                   foreign_regions=task.plan.foreign_regions)
        if target == task.image:
            task.outcome.content_hash, task.outcome.bytes = sha256_file(target)


def _found(found: dict[Path, T.FileTags | MetadataError], path: Path) -> T.FileTags:
    tags = found.get(path)
    if isinstance(tags, MetadataError):
        raise tags
    if tags is None:
        raise NotAnImage(f"{path} cannot be read as an image: exiftool could not read it")
    return tags


def _shareable(task: _Task) -> bool:
    """Whether exiftool can write this file in a command with others: straight into a new file, whose name
    exiftool's "%d.%f...%e" spells as :func:`_temp_name` does (an extension, no backslash)."""
    return task.exists and not task.copy_first and bool(task.target.suffix) and "\\" not in str(task.target)


def _convert_iptc(task: _Task) -> bool:
    """Whether the file's other IPTC texts must be rewritten with our keywords (they are not declared UTF-8)."""
    return task.iptc and T.KEYWORDS in task.plan.assign and task.plan.iptc_legacy


def _write_error(target: Path, message: str) -> MetadataError:
    """The error of a write that exiftool refused, from its message."""
    if "can't write" in message.lower() or "not yet supported" in message.lower():
        return UnsupportedFormat(f"exiftool cannot write into {target.name}: {message}; turn on sidecar files "
                                 f"(setting metadata.sidecar) to keep the names next to it")
    return WriteFailed(f"exiftool could not write the names into {target}: {message}")


def _broken(path: Path, exc: BaseException) -> WriteFailed:
    return WriteFailed(f"exiftool failed on {path} ({type(exc).__name__}); the file was left as it was")


def _raise(exc: BaseException) -> None:
    raise exc


# ----------------------------------------------------------------------------------------------- library


@dataclass
class WriteFailure:
    image_id: int
    path: str
    code: str
    message: str


@dataclass
class WriteReport:
    """What :func:`write_names` did."""

    images: int = 0
    written: int = 0
    unchanged: int = 0
    failed: list[WriteFailure] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"images": self.images, "written": self.written, "unchanged": self.unchanged,
                "failed": [f.__dict__ for f in self.failed]}


def local_path(settings, path: str) -> str:  # noqa: ANN001
    """``path`` with the first matching ``settings.path_map`` prefix replaced (shared storage)."""
    for prefix, local in (getattr(settings, "path_map", None) or {}).items():
        if path.startswith(prefix):
            return local + path[len(prefix):]
    return path


def check_allowed(session, settings, owner_id: int) -> None:  # noqa: ANN001
    """Raise OptedOut unless names may be written into ``owner_id``'s files (admin setting and owner choice)."""
    if not settings.metadata.write_names:
        raise OptedOut("writing names into image files is turned off (setting metadata.write_names, e.g. "
                       "FACES_METADATA__WRITE_NAMES=true or the admin page)")
    user = session.get(User, owner_id)
    if user is None:
        raise OptedOut(f"there is no library with owner id {owner_id}")
    if not user.write_names_to_files:
        raise OptedOut(f"{user.username} chose not to have names written into their image files")


def images_with_names(session, owner_id: int) -> list[int]:  # noqa: ANN001
    """The images of ``owner_id`` that have at least one face with a confirmed name."""
    return list(session.scalars(
        select(Face.image_id).where(Face.owner_id == owner_id, Face.state == FaceState.CONFIRMED,
                                    Face.name_id.is_not(None)).distinct().order_by(Face.image_id)))


def load_jobs(session, settings, owner_id: int, image_ids: Sequence[int]) -> tuple[list[ImageJob], list[int]]:  # noqa: ANN001
    """The write jobs of ``image_ids`` that belong to ``owner_id`` (and can be read); and the ids that do not."""
    images = {i.id: i for i in session.scalars(select(Image).where(Image.owner_id == owner_id,
                                                                    Image.id.in_(list(image_ids))))}
    faces: dict[int, list[T.FaceTag]] = {i: [] for i in images}
    rows = session.execute(
        select(Face.image_id, Face.x, Face.y, Face.w, Face.h, Face.state, Face.source, Name.name)
        .outerjoin(Name, Name.id == Face.name_id)
        .where(Face.owner_id == owner_id, Face.image_id.in_(list(images))).order_by(Face.id))
    for image_id, x, y, w, h, state, source, name in rows:
        confirmed = state == FaceState.CONFIRMED and name
        faces[image_id].append(T.FaceTag((x, y, w, h), name if confirmed else None, source or "detected"))
    jobs, missing = [], [i for i in image_ids if i not in images]
    for image_id in image_ids:
        image = images.get(image_id)
        if image is None:
            continue
        if image.error_code or not image.width or not image.height:
            missing.append(image_id)
            continue
        jobs.append(ImageJob(image.id, local_path(settings, image.path), (image.width, image.height),
                             image.orientation or 1, faces[image.id]))
    return jobs, missing


def write_names(store, settings, owner_id: int, image_ids: Iterable[int] | None = None, *,  # noqa: ANN001
                exiftool: ExifTool | None = None, progress: Callable[[int, int, str], None] | None = None,
                chunk: int = 200, batch: int = WRITE_BATCH) -> WriteReport:
    """Write the confirmed names of ``owner_id``'s images into the files (or sidecars).

    Args:
        store: anything with a ``session()`` context manager (a :class:`faces.store.db.Store`).
        settings: the effective settings (``metadata.*``, ``path_map``).
        owner_id: the library.
        image_ids: the images to write; None: every image with a confirmed name.
        exiftool: a stay-open exiftool to use (default: one started for this call).
        progress: called as ``progress(done, total, path)`` after each image (after each batch of them).
        chunk: images loaded from the database at a time.
        batch: images written together (:meth:`FileWriter.write_many`); 1: file by file (for comparison).
    Returns:
        A :class:`WriteReport`; a file that fails is in ``failed`` with its reason, the others go on.
    Raises:
        OptedOut: writing is turned off by the admin or by the owner.
        ExifToolUnavailable: exiftool is not installed.
    """
    with store.session() as session:
        check_allowed(session, settings, owner_id)
        ids = list(dict.fromkeys(image_ids)) if image_ids is not None else images_with_names(session, owner_id)
    report = WriteReport(images=len(ids))
    own = exiftool is None
    tool = exiftool or ExifTool()
    try:
        tool.start()
        with FileWriter(tool, sidecar=settings.metadata.sidecar,
                        sidecar_name=getattr(settings.metadata, "sidecar_name", "photo.jpg.xmp")) as writer:
            done = 0
            for start in range(0, len(ids), chunk):
                part = ids[start:start + chunk]
                with store.session() as session:
                    jobs, missing = load_jobs(session, settings, owner_id, part)
                for image_id in missing:
                    report.failed.append(WriteFailure(image_id, "", "not_found", f"image {image_id} is not in this "
                                                      f"library, or its file could not be read when scanned"))
                    done += 1
                for first in range(0, len(jobs), batch):
                    part_jobs = jobs[first:first + batch]
                    hashes = []
                    for job, result in zip(part_jobs, writer.write_many(part_jobs)):
                        if isinstance(result, MetadataError):
                            log.warning("names not written into image %s: %s", job.image_id, result.code)
                            report.failed.append(WriteFailure(job.image_id, job.path, result.code, result.message))
                        elif result.status == "unchanged":
                            report.unchanged += 1
                        else:
                            report.written += 1
                            if result.content_hash:
                                hashes.append((job.image_id, result.content_hash, result.bytes))
                    # the files' bytes changed: keep their content hashes right, or a rescan would see new images
                    _save_hashes(store, owner_id, hashes)
                    for job in part_jobs:
                        done += 1
                        if progress:
                            progress(done, len(ids), job.path)
    finally:
        if own:
            tool.close()
    return report


def _save_hashes(store, owner_id: int, hashes: list[tuple[int, str, int]]) -> None:  # noqa: ANN001
    """Store the new content hash and size of rewritten images: one transaction, or one per image when an
    image's new content is already another image of the library."""
    if not hashes:
        return
    table = Image.__table__
    statement = (update(table).where(table.c.id == bindparam("image_id"), table.c.owner_id == owner_id)
                 .values(content_hash=bindparam("digest"), bytes=bindparam("size")))
    try:
        with store.session() as session:
            session.execute(statement, [{"image_id": i, "digest": d, "size": n} for i, d, n in hashes])
        return
    except IntegrityError:
        if len(hashes) == 1:
            log.warning("image %s: its new content is already another image of this library", hashes[0][0])
            return
    for item in hashes:
        _save_hashes(store, owner_id, [item])
