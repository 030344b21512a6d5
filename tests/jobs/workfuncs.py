"""Task functions run by worker processes in the executor tests (imported by name in the workers)."""

import os
import signal
import time

_state = {}


def init(tag: str) -> None:
    _state["tag"] = tag
    _state["pid"] = os.getpid()


def init_fails(_tag: str) -> None:
    raise RuntimeError("model file missing")


def work(payload):
    if payload == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if payload == "memory":
        raise MemoryError()
    if payload == "boom":
        raise ValueError("bad pixel")
    if payload == "hang":
        time.sleep(60)
    return (_state["tag"], _state["pid"], payload * 2)


def init_dies(_tag: str) -> None:
    os._exit(1)


def init_opencv(settings) -> None:  # noqa: ANN001 - faces.config.Settings
    """Note whether this worker was forked with the opencv finder's sessions made, then load it."""
    from faces.finders import opencv_finder
    from faces.jobs import detect

    _state["inherited_sessions"] = bool(opencv_finder._sface)
    detect.init_worker(settings, ["opencv"])


def detect_opencv(path: str):  # noqa: ANN201
    """(whether the sessions were inherited, [(box, embedding bytes)] of the faces the opencv finder finds)."""
    from faces.jobs import detect

    result = detect.process_image(detect.DetectTask(image_id=0, path=path, finders=["opencv"], max_side=None))
    return _state["inherited_sessions"], [(list(face.box), face.vector.hex()) for face in result.finders["opencv"].faces]
