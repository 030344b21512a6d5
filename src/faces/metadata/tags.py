"""What is in a file's people tags, and what faces will write there: pure functions, no exiftool, no database.

The tags faces manages (exiftool names, group 1):

- ``XMP-mwg-rs:RegionInfo``: MWG face regions (``AppliedToDimensions`` = the stored pixels; each ``RegionList``
  item has ``Type=Face``, ``Name`` and ``Area`` = centre x, y, width, height normalised to the stored pixels);
- ``XMP-MP:RegionInfoMP``: Microsoft People Tagging regions (``Rectangle`` = "left, top, width, height",
  normalised, same frame as MWG, as digiKam writes them);
- ``XMP-dc:Subject`` and ``IPTC:Keywords`` (keywords) and ``XMP-iptcExt:PersonInImage``;
- ``XMP-faces:Managed``: faces' own record of the regions and names it wrote (JSON text).

A region is *ours* when it is in that record (same name and area), or when it frames one of our faces that
came from the file (``source == "file"``) or a confirmed face of ours with the same name (:func:`plan`).
Every other region is another program's and is kept exactly as it is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faces.jobs.matching import iou, same_face
from faces.metadata import geometry

MWG = "XMP-mwg-rs:RegionInfo"
MP = "XMP-MP:RegionInfoMP"
SUBJECT = "XMP-dc:Subject"
KEYWORDS = "IPTC:Keywords"
CHARSET = "IPTC:CodedCharacterSet"
PERSON = "XMP-iptcExt:PersonInImage"
MANAGED = "XMP-faces:Managed"
FILE_TYPE = "File:FileType"
MIME_TYPE = "File:MIMEType"
IMAGE_SIZE = "Composite:ImageSize"
ORIENTATION = "IFD0:Orientation"

# exiftool arguments that read everything this module needs (group-1 names, structures as JSON objects)
READ_ARGS = ["-struct", "-G1", f"-{MWG}", f"-{MP}", f"-{SUBJECT}", "-IPTC:all", f"-{PERSON}",
             f"-{MANAGED}", f"-{FILE_TYPE}", f"-{MIME_TYPE}", f"-{IMAGE_SIZE}#", f"-{ORIENTATION}#"]
# what :func:`view` compares, to check a written file (no composite tags: "-e")
VERIFY_ARGS = ["-e", "-struct", "-G1", f"-{MWG}", f"-{MP}", f"-{SUBJECT}", f"-{KEYWORDS}", f"-{PERSON}", f"-{MANAGED}"]

IPTC_KEYWORD_BYTES = 64  # IPTC IIM limit of one keyword
AREA_TOLERANCE = 2e-5  # two normalised areas closer than this are the same (we write 6 decimals)
_RECORD_VERSION = 1


@dataclass(frozen=True)
class FaceTag:
    """One face of ours in one image, as the writer needs it.

    ``box`` is ``(x, y, w, h)`` in upright full-resolution pixels; ``name`` is the confirmed name (None when
    the face has no confirmed name: it is then not written, and a region of ours there is removed).
    """

    box: tuple[int, int, int, int]
    name: str | None
    source: str = "detected"


@dataclass
class FileTags:
    """The people tags read from one file (or sidecar), plus the facts needed to place regions."""

    path: str
    file_type: str = ""
    mime_type: str = ""
    stored_size: tuple[int, int] | None = None  # pixels as stored (before orientation)
    orientation: int | None = None  # EXIF orientation in the file, None when absent
    mwg: dict[str, Any] | None = None
    mp: dict[str, Any] | None = None
    subject: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    iptc_charset: str = ""
    iptc_other: bool = False  # IPTC datasets besides keywords and the character set
    person: list[str] = field(default_factory=list)
    managed: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # exiftool's error for this file

    @property
    def mwg_items(self) -> list[dict[str, Any]]:
        items = (self.mwg or {}).get("RegionList") or []
        return [dict(i) for i in (items if isinstance(items, list) else [items]) if isinstance(i, dict)]

    @property
    def mp_items(self) -> list[dict[str, Any]]:
        items = (self.mp or {}).get("Regions") or []
        return [dict(i) for i in (items if isinstance(items, list) else [items]) if isinstance(i, dict)]


def _text_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [str(value)]


def parse_record(record: dict[str, Any]) -> FileTags:
    """A :class:`FileTags` from one exiftool ``-j -struct -G1`` record made with :data:`READ_ARGS`."""
    tags = FileTags(path=str(record.get("SourceFile", "")))
    tags.error = str(record.get("ExifTool:Error", "") or "")
    tags.file_type = str(record.get(FILE_TYPE, "") or "")
    tags.mime_type = str(record.get(MIME_TYPE, "") or "")
    size = str(record.get(IMAGE_SIZE, "") or "").replace("x", " ").split()
    if len(size) == 2:
        try:
            tags.stored_size = (int(float(size[0])), int(float(size[1])))
        except ValueError:
            tags.stored_size = None
    try:
        orientation = int(record[ORIENTATION])
        tags.orientation = orientation if 1 <= orientation <= 8 else None
    except (KeyError, TypeError, ValueError):
        tags.orientation = None
    mwg, mp = record.get(MWG), record.get(MP)
    tags.mwg = mwg if isinstance(mwg, dict) else None
    tags.mp = mp if isinstance(mp, dict) else None
    tags.subject = _text_list(record.get(SUBJECT))
    tags.keywords = _text_list(record.get(KEYWORDS))
    tags.person = _text_list(record.get(PERSON))
    tags.iptc_charset = str(record.get(CHARSET, "") or "")
    tags.iptc_other = any(k.startswith("IPTC:") and k not in (KEYWORDS, CHARSET) for k in record)
    raw = record.get(MANAGED)
    if isinstance(raw, str) and raw.strip():
        try:
            managed = json.loads(raw)
            tags.managed = managed if isinstance(managed, dict) else {}
        except json.JSONDecodeError:
            tags.managed = {}
    return tags


# ----------------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Region:
    """A named region, as a normalised top-left box of the stored pixels."""

    name: str
    box: tuple[float, float, float, float]


def mwg_region(item: dict[str, Any]) -> Region | None:
    """The face region of one MWG ``RegionList`` item; None for a non-face, unnamed or unreadable region."""
    kind = str(item.get("Type", "Face") or "Face").strip().lower()
    name = str(item.get("Name", "") or "").strip()
    area = item.get("Area")
    if kind != "face" or not name or not isinstance(area, dict):
        return None
    box = geometry.from_mwg_area(area)
    return Region(name, box) if box else None


def mp_region(item: dict[str, Any]) -> Region | None:
    """The region of one Microsoft ``Regions`` item; None when unnamed or without a readable rectangle."""
    name = str(item.get("PersonDisplayName", "") or "").strip()
    box = geometry.from_mp_rectangle(item.get("Rectangle")) if item.get("Rectangle") is not None else None
    return Region(name, box) if name and box else None


def mwg_frame_swapped(tags: FileTags, orientation: int) -> bool:
    """True when the file's MWG ``AppliedToDimensions`` are those of the *upright* image of a turned photo
    (some programs wrote regions that way): its areas then refer to the upright image."""
    if tags.stored_size is None or not geometry.swaps_axes(orientation):
        return False
    dims = (tags.mwg or {}).get("AppliedToDimensions")
    if not isinstance(dims, dict):
        return False
    try:
        w, h = float(dims.get("W")), float(dims.get("H"))
    except (TypeError, ValueError):
        return False
    sw, sh = tags.stored_size
    return sw != sh and abs(w - sh) < 1 and abs(h - sw) < 1


def _same_area(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(x - y) <= AREA_TOLERANCE for x, y in zip(a, b))


def _close(region: Region, recorded: list[tuple[str, tuple[float, ...]]]) -> int | None:
    for index, (name, box) in enumerate(recorded):
        if name == region.name and _same_area(box, region.box):
            return index
    return None


def _recorded_regions(managed: dict[str, Any]) -> list[tuple[str, tuple[float, ...]]]:
    out = []
    for entry in managed.get("regions") or []:
        try:
            name, box = str(entry[0]), tuple(float(v) for v in entry[1:5])
        except (TypeError, ValueError, IndexError):
            continue
        if len(box) == 4:
            out.append((name, box))
    return out


# -------------------------------------------------------------------------------------------------- plan


@dataclass
class Plan:
    """What to write into one file: JSON assignments for exiftool, tags to delete, and the resulting view."""

    assign: dict[str, Any]
    delete: list[str]
    expected: dict[str, Any]  # :func:`view` of the file once written
    unchanged: bool  # the file already says exactly this: nothing to write
    regions_written: int = 0
    foreign_regions: int = 0
    iptc_legacy: bool = False  # the file has IPTC texts not declared UTF-8, to be converted with ours


def _truncate_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


class Text(str):
    """A text of ours (a name, our record): sent to exiftool base64-encoded, because exiftool's JSON import
    decodes any string that starts with "base64:" and a name must stay exactly as the person typed it."""


def _b64(text: str) -> str:
    return "base64:" + base64.b64encode(text.encode("utf-8")).decode("ascii")


def _dedupe(values: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _round_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 6) for v in box)  # type: ignore[return-value]


def view(tags: FileTags, *, iptc: bool) -> dict[str, Any]:
    """The part of a file's tags that faces manages, in a comparable form (areas rounded to 5 decimals)."""

    def key_mwg(item: dict[str, Any]) -> str:
        area = item.get("Area") if isinstance(item.get("Area"), dict) else {}
        rest = {k: v for k, v in item.items() if k != "Area"}
        rounded = {}
        for k, v in area.items():
            try:
                rounded[k] = round(float(v), 5)
            except (TypeError, ValueError):
                rounded[k] = str(v)
        return json.dumps([rest, rounded], sort_keys=True, default=str)

    def key_mp(item: dict[str, Any]) -> str:
        rest = {k: v for k, v in item.items() if k != "Rectangle"}
        box = geometry.from_mp_rectangle(item.get("Rectangle"))
        rect = [round(v, 5) for v in box] if box else str(item.get("Rectangle"))
        return json.dumps([rest, rect], sort_keys=True, default=str)

    dims = (tags.mwg or {}).get("AppliedToDimensions") if tags.mwg else None
    result = {
        "mwg": sorted(key_mwg(i) for i in tags.mwg_items),
        "mwg_dims": json.dumps(dims, sort_keys=True, default=str) if tags.mwg_items else None,
        "mp": sorted(key_mp(i) for i in tags.mp_items),
        "subject": sorted(tags.subject),
        "person": sorted(tags.person),
        "managed": json.dumps(tags.managed, sort_keys=True) if tags.managed else None,
    }
    if iptc:
        result["keywords"] = sorted(tags.keywords)
    return result


def plan(tags: FileTags, faces: Sequence[FaceTag], *, upright_size: tuple[int, int], orientation: int,
         iptc: bool) -> Plan:
    """Plan the people tags of one file: other programs' regions and keywords kept, ours replaced by ``faces``.

    Args:
        tags: what the file (or its sidecar) holds now; ``tags.stored_size`` must be known.
        faces: every face of ours in the image; those with a name are written.
        upright_size: ``(width, height)`` of the upright image, where the face boxes are.
        orientation: the EXIF orientation of the stored pixels.
        iptc: also manage ``IPTC:Keywords`` (JPEG, TIFF, PSD; never in an XMP sidecar).
    Returns:
        A :class:`Plan`.
    """
    uw, uh = upright_size
    sw, sh = tags.stored_size or geometry.stored_size(uw, uh, orientation)
    recorded = _recorded_regions(tags.managed)
    recorded_names = {str(n) for n in tags.managed.get("names") or []}

    # normalised stored-frame boxes of our faces, and the pixel boxes used for overlap tests
    ours = []
    for face in faces:
        stored = geometry.upright_to_stored_box(face.box, uw, uh, orientation)
        ours.append((face, _round_box(geometry.normalise(stored, sw, sh))))

    def split(items: list[dict[str, Any]], read) -> tuple[list[dict], dict[int, dict], set[str]]:
        """(foreign items, face index -> taken-over item, names of our items found)."""
        taken: dict[int, dict] = {}
        names: set[str] = set()
        candidates = []
        for item in items:
            region = read(item)
            if region is not None and _close(region, recorded) is not None:
                names.add(region.name)
                continue  # ours: rewritten below from the faces
            candidates.append((item, region))
        # regions of other programs that frame a face of ours that came from the file, or a confirmed face of
        # ours with the same name, are taken over (their extra fields kept)
        pairs = []
        for ci, (item, region) in enumerate(candidates):
            if region is None:
                continue
            rbox = geometry.denormalise(region.box, sw, sh)
            for fi, (face, nbox) in enumerate(ours):
                if face.source != "file" and face.name != region.name:
                    continue
                fbox = geometry.denormalise(nbox, sw, sh)
                if same_face(rbox, fbox):
                    pairs.append((iou(rbox, fbox), ci, fi))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        used_c: set[int] = set()
        for _, ci, fi in pairs:
            if ci in used_c or fi in taken:
                continue
            used_c.add(ci)
            taken[fi] = candidates[ci][0]
            names.add(candidates[ci][1].name)
        foreign = [item for ci, (item, _) in enumerate(candidates) if ci not in used_c]
        return foreign, taken, names

    foreign_mwg, taken_mwg, names_mwg = split(tags.mwg_items, mwg_region)
    foreign_mp, taken_mp, names_mp = split(tags.mp_items, mp_region)

    named = [(i, face, nbox) for i, (face, nbox) in enumerate(ours) if face.name]
    new_mwg: list[dict[str, Any]] = []
    new_mp: list[dict[str, Any]] = []
    for i, face, nbox in named:
        item = {k: v for k, v in taken_mwg.get(i, {}).items() if k not in ("Name", "Area", "Type")}
        new_mwg.append({**item, "Area": geometry.mwg_area(nbox), "Name": Text(face.name), "Type": "Face"})
        mp_item = {k: v for k, v in taken_mp.get(i, {}).items() if k not in ("PersonDisplayName", "Rectangle")}
        new_mp.append({**mp_item, "PersonDisplayName": Text(face.name), "Rectangle": geometry.mp_rectangle(nbox)})

    current_names = _dedupe([face.name for _, face, _ in named])
    ours_names = recorded_names | names_mwg | names_mp
    foreign_region_names = {r.name for r in map(mwg_region, foreign_mwg) if r} | {
        r.name for r in map(mp_region, foreign_mp) if r}

    def merge_list(existing: list[str], limit: int | None = None) -> list[str]:
        mine = _dedupe([_truncate_bytes(n, limit) if limit else n for n in current_names])
        owned = {(_truncate_bytes(n, limit) if limit else n) for n in ours_names}
        kept = [v for v in existing if v not in owned or v in foreign_region_names]
        return _dedupe(kept + [n for n in mine if n not in kept])

    subject = merge_list(tags.subject)
    person = merge_list(tags.person)
    keywords = merge_list(tags.keywords, IPTC_KEYWORD_BYTES) if iptc else tags.keywords

    managed: dict[str, Any] = {}
    if named or current_names:
        managed = {"v": _RECORD_VERSION,
                   "regions": [[face.name, *nbox] for _, face, nbox in named],
                   "names": current_names}

    assign: dict[str, Any] = {}
    delete: list[str] = []
    foreign_count = len(foreign_mwg)
    mwg_list = foreign_mwg + new_mwg
    if mwg_list:
        extra = {k: v for k, v in (tags.mwg or {}).items() if k not in ("AppliedToDimensions", "RegionList")}
        assign[MWG] = {**extra, "AppliedToDimensions": {"W": sw, "H": sh, "Unit": "pixel"},
                       "RegionList": mwg_list}
    elif tags.mwg is not None:
        delete.append(MWG)
    mp_list = foreign_mp + new_mp
    if mp_list:
        extra = {k: v for k, v in (tags.mp or {}).items() if k != "Regions"}
        assign[MP] = {**extra, "Regions": mp_list}
    elif tags.mp is not None:
        delete.append(MP)
    for tag, values, before in ((SUBJECT, subject, tags.subject), (PERSON, person, tags.person)):
        if values:
            assign[tag] = [Text(v) if v in current_names else v for v in values]
        elif before:
            delete.append(tag)
    if iptc:
        if keywords:
            assign[KEYWORDS] = [Text(v) for v in keywords]  # IPTC is rewritten whole, in UTF-8
            assign[CHARSET] = "UTF8"
        elif tags.keywords:
            delete.append(KEYWORDS)
    if managed:
        assign[MANAGED] = Text(json.dumps(managed, ensure_ascii=False, separators=(",", ":")))
    elif tags.managed:
        delete.append(MANAGED)

    # the file as it will read back
    after = FileTags(path=tags.path, file_type=tags.file_type, stored_size=(sw, sh),
                     orientation=tags.orientation,
                     mwg=({"AppliedToDimensions": {"W": sw, "H": sh, "Unit": "pixel"}, "RegionList": mwg_list}
                          if mwg_list else None),
                     mp={"Regions": mp_list} if mp_list else None,
                     subject=subject, keywords=keywords if iptc else [], person=person, managed=managed)
    expected = view(after, iptc=iptc)
    # keywords of ours in IPTC that is not declared UTF-8 are rewritten so that other programs read them right
    unchanged = expected == view(tags, iptc=iptc) and not (iptc and current_names and tags.iptc_charset != "UTF8")
    legacy = iptc and tags.iptc_charset != "UTF8" and bool(tags.iptc_charset or tags.keywords or tags.iptc_other)
    return Plan(assign=assign, delete=delete, expected=expected, unchanged=unchanged,
                regions_written=len(new_mwg), foreign_regions=foreign_count, iptc_legacy=legacy)


def json_document(assign: dict[str, Any]) -> list[dict[str, Any]]:
    """The exiftool ``-json=`` document of a plan's assignments, for every file of the command."""
    return [json_entry(assign)]


def json_entry(assign: dict[str, Any], delete: Sequence[str] = (), source: str = "*") -> dict[str, Any]:
    """One object of an exiftool ``-json=`` document: the tags of file ``source`` ("*": every file of the
    command). Our texts are base64-encoded, other programs' values passed back exactly as exiftool gave them.
    The tags in ``delete`` get the value "-", which deletes them when exiftool runs with ``-f``; any other text
    "-" is base64-encoded, so that it stays a value."""

    def convert(value: Any) -> Any:
        if isinstance(value, Text) or value == "-":
            return _b64(value)
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {"SourceFile": source, **{tag: convert(value) for tag, value in assign.items()},
            **{tag: "-" for tag in delete}}
