"""Run many small matrix products on one BLAS thread.

numpy's OpenBLAS splits every product above a small size over all cores. For the index search (hundreds of
products of ~100 x 1000 x 128) that costs a thread hand-over each time, and when the other cores are busy
(detection workers, other users) each hand-over waits for a scheduler slot: measured on 2 busy cores, one such
product took 9 ms on two threads and 0.08 ms on one. ``one_blas_thread()`` switches OpenBLAS to one thread for
the duration (what ``threadpoolctl`` does, reduced to the OpenBLAS that numpy ships); without OpenBLAS it does
nothing. The setting is process-wide, so nested and concurrent uses are counted.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_lock = threading.Lock()
_users = 0
_previous = 0
_api: tuple | None = None


def _openblas() -> tuple | None:
    """(set_threads, get_threads) of the OpenBLAS loaded by numpy, or None."""
    global _api
    if _api is None:
        _api = ()
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.split()[-1]}
        except OSError:
            paths = set()
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in _SETTERS:
                if hasattr(lib, name) and hasattr(lib, name.replace("set_num", "get_num")):
                    _api = (getattr(lib, name), getattr(lib, name.replace("set_num", "get_num")))
                    break
            if _api:
                break
    return _api or None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, numpy's matrix products run on one thread (when numpy uses OpenBLAS)."""
    global _users, _previous
    api = _openblas()
    if api is None:
        yield
        return
    setter, getter = api
    with _lock:
        if _users == 0:
            _previous = getter()
            setter(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                setter(_previous)
