"""Every bad file raises its own specific error, with a message a person understands, from both entry points."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from faces.media import (
    DecompressionBombError,
    EmptyFileError,
    FileAccessError,
    MediaError,
    MissingFileError,
    NotAnImageError,
    UnsupportedFormatError,
    load_image,
    probe_image,
)
from tests.badfiles import LEFT_OUT, png_declaring

# what each message must say, so that a person knows what is wrong
MESSAGE_WORDS = {
    "empty.jpg": "empty (0 bytes)",
    "truncated.jpg": "truncated",
    "text.jpg": "starts with text",
    "page.png": "web page",
    "random.png": "not an image",
    "bomb.png": "40000x40000",
    "huge.jpg": "60000x50000",
    "document.jpg": "PDF",
    "damaged.png": "damaged",
    "unreadable.jpg": "permission",
}


def test_corpus_is_complete(bad_files):
    _, expected = bad_files
    assert set(expected) | set(LEFT_OUT) == set(MESSAGE_WORDS)
    assert len(set(expected.values())) >= 7, "the corpus should cover most error codes"


@pytest.mark.parametrize("function", [probe_image, load_image], ids=["probe", "load"])
@pytest.mark.parametrize("name", sorted(MESSAGE_WORDS))
def test_bad_file_has_its_error(bad_files, function, name):
    folder, expected = bad_files
    if name not in expected:
        pytest.skip(LEFT_OUT[name])
    with pytest.raises(MediaError) as caught:
        function(folder / name)
    error = caught.value
    assert error.code == expected[name]
    assert MESSAGE_WORDS[name] in error.message
    assert error.message == str(error)
    assert "Traceback" not in error.message and str(folder) not in error.message


def test_bomb_limit_is_the_given_one(data_root, tmp_path):
    photo = data_root / "public_domain_faces" / "astronaut.png"  # 512x512
    with pytest.raises(DecompressionBombError, match=r"512x512 is over the 0\.2 megapixel limit"):
        probe_image(photo, max_pixels=200_000)
    with pytest.raises(DecompressionBombError):
        load_image(photo, max_side=100, max_pixels=200_000)
    assert probe_image(photo, max_pixels=262_144).width == 512


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_limit_is_ours_not_pillows(tmp_path):
    """Pillow warns at 89 MP; faces' default limit is 120 MP: a 100 MP header is not refused."""
    path = tmp_path / "100mp.png"
    path.write_bytes(png_declaring(10_000, 10_000))
    info = probe_image(path)  # PNG probing checks the chunks, it does not inflate 100 MB
    assert (info.width, info.height) == (10_000, 10_000)
    path.write_bytes(png_declaring(12_000, 12_000))
    with pytest.raises(DecompressionBombError, match="12000x12000 is over the 120 megapixel limit"):
        probe_image(path)


def test_missing_file_folder_and_pipe(tmp_path):
    with pytest.raises(MissingFileError) as caught:
        load_image(tmp_path / "gone.jpg")
    assert caught.value.code == "missing" and isinstance(caught.value, FileAccessError)
    with pytest.raises(NotAnImageError, match="folder"):
        probe_image(tmp_path)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(NotAnImageError, match="not a regular file"):  # and does not hang
        probe_image(fifo)


@pytest.mark.parametrize("name, data, words", [
    ("drawing.png", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\n',
     "SVG"),
    ("clip.jpg", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64, "video"),
    ("archive.jpg", b"PK\x03\x04" + b"\x00" * 64, "ZIP"),
])
def test_other_kinds_of_file_are_named(tmp_path, name, data, words):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UnsupportedFormatError, match=words):
        probe_image(tmp_path / name)


def test_image_format_that_faces_does_not_read(tmp_path, photo):
    """An icon (ICO) named .png is an image, but not a format faces reads: the message names the format."""
    out = io.BytesIO()
    photo.resize((64, 64)).save(out, "ICO")
    (tmp_path / "icon.png").write_bytes(out.getvalue())
    with pytest.raises(UnsupportedFormatError, match="ICO"):
        load_image(tmp_path / "icon.png")


def test_every_cut_of_a_jpeg_is_caught(photo, tmp_path):
    """Cut anywhere, a JPEG is refused by probe_image already (the reduced decode still reads every byte)."""
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    data = out.getvalue()
    path = tmp_path / "cut.jpg"
    for cut in (2, 20, 300, len(data) // 3, len(data) - 100, len(data) - 2):
        path.write_bytes(data[:cut])
        with pytest.raises(MediaError) as caught:
            probe_image(path)
        assert caught.value.code in ("truncated", "corrupt"), (cut, caught.value.message)


def test_a_whole_jpeg_is_good_with_or_without_bytes_after_its_end(photo, tmp_path):
    """A JPEG that ends with its end marker is whole; one with a trailer after it (some cameras) is decoded."""
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    path = tmp_path / "photo.jpg"
    for tail in (b"", b"\x00" * 4096, b"SEFH trailer"):
        path.write_bytes(out.getvalue() + tail)
        assert (probe_image(path).width, probe_image(path).height) == photo.size


def test_empty_file_is_empty(tmp_path):
    (tmp_path / "e.png").touch()
    with pytest.raises(EmptyFileError, match=r"the file is empty \(0 bytes\)"):
        load_image(tmp_path / "e.png")


def _probe_as_nobody(path: Path) -> str:
    """Run probe_image on ``path`` in a child process that has dropped root for user ``nobody``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = "error"
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                probe_image(path)
                code = "ok"
            except MediaError as exc:
                code = exc.code
        finally:
            os.write(write, code.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = pipe.read()
    os.waitpid(pid, 0)
    return result


def test_chmod_000_file_is_no_access(photo):
    """A photo with mode 000 is refused with ``no_access`` for an ordinary user (as root: in a child as nobody)."""
    folder = Path(tempfile.mkdtemp(prefix="faces-perm-"))  # not under pytest's 0700 tmp folder: nobody must enter
    try:
        folder.chmod(0o755)
        path = folder / "locked.jpg"
        photo.save(path, "JPEG")
        path.chmod(0o644)
        readable = _probe_as_nobody(path) if os.geteuid() == 0 else "ok"
        path.chmod(0)
        if os.geteuid() == 0:
            assert readable == "ok"  # the same file, readable: the child works at all
            assert _probe_as_nobody(path) == "no_access"
        else:
            with pytest.raises(FileAccessError, match="permission"):
                probe_image(path)
    finally:
        shutil.rmtree(folder)


def test_pillow_is_never_asked_to_run_other_programs(tmp_path):
    """An EPS file named .jpg must not reach Ghostscript: faces does not open EPS at all."""
    (tmp_path / "x.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(UnsupportedFormatError):
        load_image(tmp_path / "x.jpg")
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard stays on
