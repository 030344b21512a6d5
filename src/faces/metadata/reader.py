"""Reading face regions that are already in image files (or their sidecars) and taking them in as faces with
confirmed names.

MWG regions (digiKam, Lightroom, Picasa, phones, faces itself) and Microsoft People Tagging regions (Windows
Photo Gallery) are both read; the same face in both is one region. Areas refer to the stored pixels and are
turned into boxes of the upright image with the file's EXIF orientation. A region that frames a face faces
already has (same rule as two finders: :func:`faces.jobs.matching.same_face`) names that face if it has no name
yet, instead of making a second face; the detection pipeline in turn attaches its embeddings to a face from a
file when its box matches.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from faces.jobs.matching import match_boxes, same_face
from faces.metadata import geometry
from faces.metadata import tags as T
from faces.metadata.errors import BadFileName
from faces.metadata.exiftool import ExifTool, check_arguments, exiftool_path_for
from faces.metadata.writer import existing_sidecars, local_path
from faces.store.models import Face, FaceState, Image, Name, utcnow

log = logging.getLogger(__name__)

MIN_REGION_PIXELS = 4  # a region narrower or lower than this (upright pixels) is not a face
READ_BATCH = 50  # files per exiftool command when reading many


@dataclass(frozen=True)
class FoundRegion:
    """A named face region found in a file: ``box`` is ``(x, y, w, h)`` in upright full-resolution pixels."""

    name: str
    box: tuple[int, int, int, int]
    kind: str  # "mwg" or "mp"
    file: str  # the image or the sidecar it was read from


def regions_in(tags: T.FileTags, upright_size: tuple[int, int], orientation: int) -> list[FoundRegion]:
    """The named face regions of one file's tags as upright boxes (MP regions that repeat an MWG region of
    the same name are left out)."""
    uw, uh = upright_size
    sw, sh = tags.stored_size or geometry.stored_size(uw, uh, orientation)
    found: list[FoundRegion] = []
    swapped = T.mwg_frame_swapped(tags, orientation)

    def add(region: T.Region | None, kind: str, upright_frame: bool = False) -> None:
        if region is None:
            return
        if upright_frame:
            box = geometry.denormalise(region.box, uw, uh)
        else:
            box = geometry.stored_to_upright_box(geometry.denormalise(region.box, sw, sh), sw, sh, orientation)
        ibox = geometry.to_int_box(box, uw, uh)
        if min(ibox[2], ibox[3]) < MIN_REGION_PIXELS:
            return
        for other in found:
            if other.name == region.name and same_face(other.box, ibox):
                return
        found.append(FoundRegion(region.name, ibox, kind, tags.path))

    for item in tags.mwg_items:
        add(T.mwg_region(item), "mwg", swapped)
    for item in tags.mp_items:
        add(T.mp_region(item), "mp")
    return found


def merge_regions(groups: Iterable[Sequence[FoundRegion]]) -> list[FoundRegion]:
    """Regions from several files of one image (sidecars first), each face once."""
    result: list[FoundRegion] = []
    for group in groups:
        for region in group:
            if not any(r.name == region.name and same_face(r.box, region.box) for r in result):
                result.append(region)
    return result


def read_regions(exiftool: ExifTool, path: str | Path, *, upright_size: tuple[int, int] | None = None,
                 orientation: int | None = None) -> list[FoundRegion]:
    """The named face regions of the image at ``path`` and of its sidecars.

    Args:
        exiftool: a stay-open exiftool.
        path: the image file.
        upright_size, orientation: as faces scanned the image; default: what the file says.
    Returns:
        Regions with upright boxes; empty when there are none (or the file cannot be read).
    """
    return read_many(exiftool, [(Path(path), upright_size, orientation)])[0]


def read_many(exiftool: ExifTool, items: Sequence[tuple[Path, tuple[int, int] | None, int | None]]
              ) -> list[list[FoundRegion]]:
    """:func:`read_regions` for many images, :data:`READ_BATCH` files per exiftool command."""
    results: list[list[FoundRegion]] = []
    for start in range(0, len(items), READ_BATCH):
        part = items[start:start + READ_BATCH]
        files: list[str] = []
        for path, _, _ in part:
            try:
                check_arguments([str(path)])
            except BadFileName:
                continue  # left out: no regions for it
            files.append(str(path))
            files.extend(str(p) for p in existing_sidecars(path))
        records, _ = exiftool.read_json(*T.READ_ARGS, *[exiftool_path_for(f) for f in files])
        by_file = {str(r.get("SourceFile")): T.parse_record(r) for r in records}
        for path, upright, orientation in part:
            image_tags = by_file.get(str(path))
            if image_tags is None or image_tags.error or image_tags.stored_size is None:
                results.append([])
                continue
            o = orientation or image_tags.orientation or 1
            size = upright or geometry.upright_size(*image_tags.stored_size, o)
            if geometry.stored_size(*size, o) != image_tags.stored_size:
                # the file is not what was scanned (or its container turns it): trust the scan's upright size
                if image_tags.file_type in ("HEIC", "HEIF", "AVIF") and image_tags.stored_size == size:
                    o = 1
                else:
                    log.warning("%s: size differs from the scan; its face regions are not read", path.name)
                    results.append([])
                    continue
            groups = []
            for sidecar in existing_sidecars(path):
                side = by_file.get(str(sidecar))
                if side is not None and not side.error:
                    side.stored_size = image_tags.stored_size
                    groups.append(regions_in(side, size, o))
            groups.append(regions_in(image_tags, size, o))
            results.append(merge_regions(groups))
    return results


# --------------------------------------------------------------------------------------------- intake


@dataclass
class ImportReport:
    """What :func:`import_regions` did."""

    images: int = 0  # images looked at
    regions: int = 0  # named regions found in them
    created: int = 0  # new faces (source "file")
    named: int = 0  # faces faces had already found, now with the name from the file
    kept: int = 0  # regions on a face that already had a decision of its own (left as it is)
    face_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "face_ids"}


def _clean(name: str) -> str | None:
    from faces.naming.actions import NamingError, clean_name

    try:
        return clean_name(name) or None
    except NamingError:
        return None


def _name(session, owner_id: int, text: str) -> Name:  # noqa: ANN001
    found = session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == text))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            found = Name(owner_id=owner_id, name=text)
            session.add(found)
            session.flush()
        return found
    except IntegrityError:  # made by another process at the same moment
        return session.scalar(select(Name).where(Name.owner_id == owner_id, Name.name == text))


def apply_regions(session, owner_id: int, image: Image, regions: Sequence[FoundRegion],  # noqa: ANN001
                  report: ImportReport) -> list[int]:
    """Turn ``regions`` of ``image`` into faces with confirmed names, in the caller's transaction; returns the
    ids of faces that existed before and got a name."""
    named: list[int] = []
    faces = list(session.scalars(select(Face).where(Face.image_id == image.id).order_by(Face.id)))
    cleaned = [(r, _clean(r.name)) for r in regions]
    cleaned = [(r, n) for r, n in cleaned if n]
    report.regions += len(cleaned)
    pairs = match_boxes([r.box for r, _ in cleaned], [f.box for f in faces])
    now = utcnow()
    for i, (region, text) in enumerate(cleaned):
        if i in pairs:
            face = faces[pairs[i]]
            if face.state in (FaceState.UNNAMED, FaceState.GUESSED):
                face.state, face.name_id = FaceState.CONFIRMED, _name(session, owner_id, text).id
                face.guess_name_id = face.guess_distance = face.guess_finders = None
                face.guess_anchor_face_id = face.guessed_at = face.cluster_id = None
                face.decided_at = face.updated_at = now
                report.named += 1
                report.face_ids.append(face.id)
                named.append(face.id)
            else:
                report.kept += 1  # a decision made in faces (another name, unknown, ignored, removed) wins
            continue
        x, y, w, h = region.box
        face = Face(owner_id=owner_id, image_id=image.id, x=x, y=y, w=w, h=h, score=1.0, source="file",
                    state=FaceState.CONFIRMED, name_id=_name(session, owner_id, text).id, decided_at=now,
                    updated_at=now)
        session.add(face)
        session.flush()
        faces.append(face)
        report.created += 1
        report.face_ids.append(face.id)
    return named


REGION_MARKERS = (b"RegionInfo", b"mwg-rs:Regions", b"MPRI:Regions")  # in the XMP of a file with regions


def may_hold_regions(path: Path) -> bool:
    """Whether the image at ``path`` could hold face regions, without exiftool: it has a sidecar, or its bytes
    name a region list. XMP is stored as plain text in every format that carries it, so a file without these
    words has no MWG or Microsoft regions (most photos: exiftool is then not even started)."""
    if existing_sidecars(path):
        return True
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return any(data.find(marker) >= 0 for marker in REGION_MARKERS)
    except (OSError, ValueError):  # unreadable or empty: exiftool would find nothing either
        return False


def import_regions(store, settings, owner_id: int, image_ids: Sequence[int], *,  # noqa: ANN001
                   exiftool: ExifTool | Callable[[], AbstractContextManager[ExifTool]] | None = None
                   ) -> ImportReport:
    """Read the face regions of ``owner_id``'s images ``image_ids`` and take them in as confirmed names.

    ``exiftool`` is a started stay-open exiftool, or a function giving one as a context manager (called only when
    some file may hold regions), or None (one is started and stopped here when needed).
    Running it twice adds nothing the second time. Faces already named in faces keep their names.
    Raises ExifToolUnavailable when exiftool is missing and some file may hold regions.
    """
    report = ImportReport()
    with store.session() as session:
        rows = session.execute(select(Image.id, Image.path, Image.width, Image.height, Image.orientation)
                               .where(Image.owner_id == owner_id, Image.id.in_(list(image_ids)),
                                      Image.error_code.is_(None))).all()
    items = [(row[0], Path(local_path(settings, row[1])), (row[2], row[3]), row[4] or 1) for row in rows
             if row[2] and row[3]]
    report.images = len(items)
    items = [item for item in items if may_hold_regions(item[1])]
    if not items:
        return report
    if exiftool is None:
        opened: AbstractContextManager[ExifTool] = closing(ExifTool())
    elif isinstance(exiftool, ExifTool):
        opened = nullcontext(exiftool)
    else:
        opened = exiftool()
    with opened as tool:
        found = read_many(tool, [(path, size, o) for _, path, size, o in items])
    for (image_id, _, _, _), regions in zip(items, found):
        if not regions:
            continue
        with store.session() as session:
            image = session.scalar(select(Image).where(Image.id == image_id, Image.owner_id == owner_id)
                                   .with_for_update())
            if image is None:
                continue
            named = apply_regions(session, owner_id, image, regions, report)
            if named:
                # faces found earlier got a name: the guesses of the library may change
                from faces.naming.refresh import refresh_guesses

                refresh_guesses(session, settings, owner_id, named)
    return report
