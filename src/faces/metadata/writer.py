"""Writing confirmed names into image files (or their ``.xmp`` sidecars), safely.

One image = one exiftool read, one exiftool write of every tag at once (a JSON document), one read back:

1. read the people tags of the target (the file, or its sidecar) and check the file is still the one scanned
   (same stored size and orientation), writable, and of a kind exiftool can write;
2. plan the new tags (:func:`faces.metadata.tags.plan`): other programs' regions and keywords kept;
3. if the file already says that, stop (nothing is rewritten, the file keeps its date);
4. write into a copy next to the target, read the copy back and compare with the plan;
5. replace the target with the copy in one atomic rename. A failure at any step leaves the target untouched,
   and no ``_original`` backup or temporary file is left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
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
from faces.metadata.exiftool import ExifTool, exiftool_path_for
from faces.store.models import Face, FaceState, Image, Name, User

log = logging.getLogger(__name__)

SIDECAR_NAMES = ("photo.jpg.xmp", "photo.xmp")
# file types (exiftool's FileType) that faces writes names into; others need a sidecar
IN_FILE_TYPES = frozenset({"JPEG", "TIFF", "PNG", "WEBP", "HEIC", "HEIF", "AVIF", "GIF", "JXL", "PSD", "DNG", "JP2"})
IPTC_TYPES = frozenset({"JPEG", "TIFF", "PSD"})  # where IPTC IIM keywords belong
_TURNED_BY_CONTAINER = frozenset({"HEIC", "HEIF", "AVIF"})  # rotation lives in the container, not only in EXIF
# types exiftool writes straight into a new file (-o); the others are copied first and written in place
# (exiftool 12.57 refuses "-o" for WebP: "Can't write RIFF files")
_WRITE_TO_NEW = frozenset({"JPEG", "TIFF", "PNG", "GIF", "JXL", "PSD", "DNG", "JP2", "HEIC", "HEIF", "AVIF"})
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


def _temp_name(target: Path) -> Path:
    # same folder (so the final rename is atomic), hidden, same extension (exiftool goes by it)
    suffix = "".join(target.suffixes[-1:])
    return target.with_name(f".{target.stem}.faces-{secrets.token_hex(4)}{suffix}")


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
        records, result = self.exiftool.read_json(*T.READ_ARGS, exiftool_path_for(path))
        if not records:
            message = "; ".join(result.error_lines()) or "exiftool could not read it"
            raise NotAnImage(f"{path} cannot be read as an image: {message}")
        tags = T.parse_record(records[0])
        if tags.error:
            raise NotAnImage(f"{path} cannot be read as an image: {tags.error}")
        return tags

    def _image_tags(self, path: Path, job: ImageJob) -> tuple[T.FileTags, ImageJob]:
        """The tags of the image file, checked against what faces scanned; and the job to plan with."""
        tags = self.read_tags(path)
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
        return tags, job

    # -- writing -----------------------------------------------------------------------------------------

    def write(self, job: ImageJob) -> FileOutcome:
        """Write the names of ``job`` into its file or sidecar. Raises a MetadataError subclass with a plain
        message on any problem; the file is then exactly as it was."""
        image = _check_readable(Path(job.path))
        image_tags, job = self._image_tags(image, job)
        if self.sidecar:
            # next to the path as the library knows it (a symlinked photo gets its sidecar beside the link)
            target = sidecar_path(Path(job.path), self.sidecar_name)
            exists = target.is_file()
            existing = self.read_tags(target) if exists else image_tags
            if exists:
                _check_writable(target, "its sidecar")
            iptc = False
        else:
            if image_tags.file_type not in IN_FILE_TYPES:
                kind = image_tags.file_type or "this kind of"
                raise UnsupportedFormat(
                    f"exiftool cannot write names into {kind} files such as {image}; turn on sidecar files "
                    f"(setting metadata.sidecar) to keep the names in an .xmp file next to it")
            _check_writable(image)
            target, exists, existing = image, True, image_tags
            iptc = image_tags.file_type in IPTC_TYPES
        existing.stored_size = image_tags.stored_size
        plan = T.plan(existing, job.faces, upright_size=job.upright_size, orientation=job.orientation, iptc=iptc)
        outcome = FileOutcome(status="unchanged", target=str(target), regions=plan.regions_written,
                              foreign_regions=plan.foreign_regions)
        if plan.unchanged:
            return outcome
        self._write_plan(plan, image, target, exists, iptc,
                         copy_first=self.sidecar or image_tags.file_type not in _WRITE_TO_NEW)
        outcome.status = "written"
        if target == image:
            outcome.content_hash, outcome.bytes = sha256_file(image)
        return outcome

    def _write_plan(self, plan: T.Plan, image: Path, target: Path, exists: bool, iptc: bool,
                    copy_first: bool) -> None:
        doc = os.path.join(self._json_dir, f"{secrets.token_hex(8)}.json")
        with open(doc, "w", encoding="utf-8") as handle:
            json.dump(T.json_document(plan.assign), handle, ensure_ascii=False)
        temp = _temp_name(target)
        try:
            args = ["-m", f"-json={doc}", *[f"-{tag}=" for tag in plan.delete]]
            if iptc and T.KEYWORDS in plan.assign and plan.iptc_legacy:
                # rewrite the other IPTC texts too, so that they stay right under the UTF-8 character set
                args += ["-tagsFromFile", "@", "-IPTC:all", f"--{T.KEYWORDS}", f"--{T.CHARSET}"]
            if exists and not copy_first:
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
            errors = result.error_lines()
            if result.status != 0 or errors or not temp.is_file():
                message = errors[0] if errors else f"exiftool exit status {result.status}"
                if "can't write" in message.lower() or "not yet supported" in message.lower():
                    raise UnsupportedFormat(f"exiftool cannot write into {target.name}: {message}; turn on "
                                            f"sidecar files (setting metadata.sidecar) to keep the names next to it")
                raise WriteFailed(f"exiftool could not write the names into {target}: {message}")
            try:
                written = self.read_tags(temp)
            except MetadataError:
                written = None
            if written is None or T.view(written, iptc=iptc) != plan.expected:
                raise WriteFailed(f"the names written into {target.name} did not read back as written; "
                                  f"the file was left as it was")
            if exists:
                try:
                    st = target.stat()
                    if (st.st_uid, st.st_gid) != (temp.stat().st_uid, temp.stat().st_gid):
                        os.chown(temp, st.st_uid, st.st_gid)
                except OSError:
                    pass  # not allowed to give the file back to its owner: it stays ours, still readable
            os.replace(temp, target)
            temp = None
        finally:
            _remove(temp)
            try:
                os.unlink(doc)
            except OSError:
                pass


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
                chunk: int = 200) -> WriteReport:
    """Write the confirmed names of ``owner_id``'s images into the files (or sidecars).

    Args:
        store: anything with a ``session()`` context manager (a :class:`faces.store.db.Store`).
        settings: the effective settings (``metadata.*``, ``path_map``).
        owner_id: the library.
        image_ids: the images to write; None: every image with a confirmed name.
        exiftool: a stay-open exiftool to use (default: one started for this call).
        progress: called as ``progress(done, total, path)`` after each image.
        chunk: images loaded from the database at a time.
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
                for job in jobs:
                    _write_one(store, writer, owner_id, job, report)
                    done += 1
                    if progress:
                        progress(done, len(ids), job.path)
    finally:
        if own:
            tool.close()
    return report


def _write_one(store, writer: FileWriter, owner_id: int, job: ImageJob, report: WriteReport) -> None:  # noqa: ANN001
    try:
        outcome = writer.write(job)
    except MetadataError as exc:
        log.warning("names not written into image %s: %s", job.image_id, exc.code)
        report.failed.append(WriteFailure(job.image_id, job.path, exc.code, exc.message))
        return
    except OSError as exc:
        log.warning("names not written into image %s: %s", job.image_id, exc.strerror)
        report.failed.append(WriteFailure(job.image_id, job.path, "write_failed",
                                          f"{job.path}: {exc.strerror or exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - exiftool itself broke: restart it, go on with the next file
        log.warning("names not written into image %s: exiftool failed (%s)", job.image_id, type(exc).__name__)
        writer.exiftool.close()
        report.failed.append(WriteFailure(job.image_id, job.path, "write_failed",
                                          f"exiftool failed on {job.path} ({type(exc).__name__}); the file was "
                                          f"left as it was"))
        return
    if outcome.status == "unchanged":
        report.unchanged += 1
        return
    report.written += 1
    if outcome.content_hash:
        # the file's bytes changed: keep its content hash right, or a rescan would see a new image
        try:
            with store.session() as session:
                session.execute(update(Image).where(Image.id == job.image_id, Image.owner_id == owner_id)
                                .values(content_hash=outcome.content_hash, bytes=outcome.bytes))
        except IntegrityError:
            log.warning("image %s: its new content is already another image of this library", job.image_id)
