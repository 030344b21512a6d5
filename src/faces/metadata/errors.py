"""Errors of writing and reading names in image files. ``code`` is stable (for scripts); the message is a
sentence for people."""

from __future__ import annotations


class MetadataError(Exception):
    """Names could not be written into, or read from, one image file."""

    code = "metadata_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ExifToolUnavailable(MetadataError):
    """exiftool (or pyexiftool) is not installed or does not start: the feature is unavailable."""

    code = "exiftool_unavailable"


class FileMissing(MetadataError):
    code = "file_missing"


class ReadOnlyFile(MetadataError):
    code = "read_only"


class NotAnImage(MetadataError):
    code = "not_an_image"


class BadFileName(MetadataError):
    """A file name exiftool cannot be given (a line break in it, or bytes that are not text)."""

    code = "bad_file_name"


class UnsupportedFormat(MetadataError):
    """exiftool cannot write this kind of file (a sidecar file can hold the names instead)."""

    code = "unsupported_format"


class FileChanged(MetadataError):
    """The file's size or orientation is no longer what faces measured when it scanned it."""

    code = "file_changed"


class WriteFailed(MetadataError):
    """exiftool failed, or what it wrote did not read back as planned; the original file is untouched."""

    code = "write_failed"


class OptedOut(MetadataError):
    """Writing names into files is turned off (admin setting, or the owner's choice)."""

    code = "turned_off"
