"""Names and face regions in image files, through exiftool (one stay-open process per batch).

- :func:`write_names` writes confirmed names into the files (or ``.xmp`` sidecars): MWG and Microsoft face
  regions in the stored pixels' frame, XMP ``dc:subject``, IPTC ``Keywords`` and IPTC Extension
  ``PersonInImage``, merged with other programs' tags (see :mod:`faces.metadata.tags`, :mod:`.writer`).
- :func:`import_regions` / :func:`read_regions` take regions already in files in as confirmed names
  (:mod:`.reader`).
- :func:`self_check` says whether this works here; without exiftool the feature is off and nothing else breaks.
- :mod:`.subscribers` does both on the ``names_changed`` and ``images_added`` events.
"""

from faces.metadata.errors import (
    ExifToolUnavailable,
    FileChanged,
    FileMissing,
    MetadataError,
    NotAnImage,
    OptedOut,
    ReadOnlyFile,
    UnsupportedFormat,
    WriteFailed,
)
from faces.metadata.exiftool import ExifTool, OneShotExifTool, self_check
from faces.metadata.reader import FoundRegion, ImportReport, import_regions, read_regions
from faces.metadata.writer import FileWriter, ImageJob, WriteReport, sidecar_path, write_names

__all__ = [
    "ExifTool", "ExifToolUnavailable", "FileChanged", "FileMissing", "FileWriter", "FoundRegion", "ImageJob",
    "ImportReport", "MetadataError", "NotAnImage", "OneShotExifTool", "OptedOut", "ReadOnlyFile",
    "UnsupportedFormat", "WriteFailed", "WriteReport", "import_regions", "read_regions", "self_check",
    "sidecar_path", "write_names",
]
