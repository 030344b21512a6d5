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
