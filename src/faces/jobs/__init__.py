"""Detection jobs: adding images, running the finders in worker processes, writing their results."""

from __future__ import annotations

from collections.abc import Iterable

# What the detection worker processes import once, in the fork server, before any worker starts (see
# faces.jobs.executor.default_context; dlib's import fails quietly where it is missing). Named here, in a module
# that imports nothing, so that ``faces scan`` can start the fork server before it imports anything heavy.
WORKER_LIBRARIES = ("numpy", "PIL.Image", "cv2", "onnxruntime", "dlib", "faces.media", "faces.finders.dlib_finder",
                    "faces.finders.opencv_finder", "faces.jobs.detect", "faces.jobs.fork_server")
PREBUILD = {"opencv": "faces.jobs.prebuild.opencv", "dlib": "faces.jobs.prebuild.dlib"}


def worker_preload(finders: Iterable[str] | None = None) -> tuple[str, ...]:
    """The modules the fork server imports: the workers' libraries, then the prebuilt models of ``finders``
    (default: every finder; an unknown name is ignored)."""
    wanted = PREBUILD if finders is None else [name for name in finders if name in PREBUILD]
    return WORKER_LIBRARIES + tuple(PREBUILD[name] for name in wanted)
