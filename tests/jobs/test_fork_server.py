"""faces.jobs.fork_server makes the opencv finder's onnxruntime sessions before the detection workers fork from
it. A worker forked after that must find exactly what a worker that made its own sessions finds."""

from __future__ import annotations

import multiprocessing

import pytest

from faces.config import load_settings
from faces.jobs import detect

pytest.importorskip("onnxruntime")
PHOTOS = ["wikimedia_commons_people/bildes/Rumba_Kings_Band_Group_Photo_2023.jpg",  # 13 faces
          "dlib_faces_gt/dev/2008_001322.jpg"]


def _detect(settings, paths: list[str]) -> list[list[tuple]]:
    """Load the opencv finder in this process and return, per photo, its faces' boxes and embeddings."""
    detect.init_worker(settings, ["opencv"])
    out = []
    for number, path in enumerate(paths):
        result = detect.process_image(detect.DetectTask(image_id=number, path=path, finders=["opencv"],
                                                        max_side=None))
        out.append([(face.box, face.vector) for face in result.finders["opencv"].faces])
    return out


def _in_process(method: str, settings, paths: list[str]) -> list[list[tuple]]:
    context = multiprocessing.get_context(method)
    with context.Pool(1) as pool:
        return pool.apply(_detect, (settings, paths))


def test_a_worker_forked_after_the_sessions_were_made_finds_the_same_faces(tmp_path, data_root):
    from faces.finders import opencv_finder

    settings = load_settings(tmp_path, environ={})
    paths = [str(data_root / p) for p in PHOTOS]
    own = _in_process("spawn", settings, paths)  # a fresh interpreter: its own sessions
    opencv_finder.prebuild_sessions()  # what the fork server does
    assert opencv_finder._sface, "the sessions were not made"
    forked = _in_process("fork", settings, paths)
    assert [len(faces) for faces in own] == [13, 3]
    assert forked == own
