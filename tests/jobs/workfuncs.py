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


def init_finder(settings, name: str) -> None:  # noqa: ANN001 - faces.config.Settings
    """Note whether this worker was forked with finder ``name``'s models made, then load that finder."""
    from faces.finders import dlib_finder, opencv_finder
    from faces.jobs import detect

    made = {"opencv": lambda: bool(opencv_finder._sface), "dlib": lambda: dlib_finder._Models.embedder is not None}
    _state["inherited_models"] = made[name]()
    _state["finder"] = name
    detect.init_worker(settings, [name])


def detect_faces(path: str):  # noqa: ANN201
    """(whether the models were inherited, [(box, embedding as hex)] of the faces the finder finds on ``path``)."""
    from faces.jobs import detect

    name = _state["finder"]
    result = detect.process_image(detect.DetectTask(image_id=0, path=path, finders=[name], max_side=None))
    return _state["inherited_models"], [(list(face.box), face.vector.hex()) for face in result.finders[name].faces]
