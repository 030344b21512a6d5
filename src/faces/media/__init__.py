"""Safe image reading for faces: probe, decode (reduced, upright, RGB), find files, thumbnails.

Everything that can go wrong with one image raises a :class:`~faces.media.types.MediaError` subclass whose
``code`` is stable and whose message a person understands.
"""

from faces.media.files import IMAGE_EXTENSIONS, find_image_files, is_image_name
from faces.media.reading import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    content_hash,
    load_image,
    parse_exif_date,
    probe_image,
)
from faces.media.thumbnails import (
    cached_face_thumbnail,
    cached_thumbnail,
    face_crop_box,
    face_thumbnail,
    face_thumbnail_cache_path,
    make_thumbnail,
    remove_all_thumbnails,
    remove_face_thumbnails,
    remove_thumbnails,
    thumbnail_cache_path,
)
from faces.media.types import (
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    FileAccessError,
    ImageInfo,
    LoadedImage,
    MediaError,
    MissingFileError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "SUPPORTED_FORMATS",
    "ImageInfo", "LoadedImage",
    "MediaError", "EmptyFileError", "NotAnImageError", "UnsupportedFormatError", "TruncatedImageError",
    "CorruptImageError", "DecompressionBombError", "FileAccessError", "MissingFileError",
    "probe_image", "load_image", "content_hash", "parse_exif_date", "find_image_files", "is_image_name",
    "make_thumbnail", "face_thumbnail", "face_crop_box", "thumbnail_cache_path", "face_thumbnail_cache_path",
    "cached_thumbnail", "cached_face_thumbnail", "remove_thumbnails", "remove_face_thumbnails",
    "remove_all_thumbnails",
]
