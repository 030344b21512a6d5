"""onnxruntime as the finders use it: one thread per session, and whether it is installed at all.

onnxruntime is a dependency of faces, but the finders keep working with OpenCV alone when it cannot be imported
(an unusual platform): each caller falls back to ``cv2.dnn`` and its self check names the engine used.
"""

from __future__ import annotations


def onnxruntime_version() -> str:
    """The installed onnxruntime's version, "" when it cannot be imported."""
    try:
        import onnxruntime
    except ImportError:
        return ""
    return onnxruntime.__version__


def single_thread_session(model: bytes, arena: bool = False):
    """An onnxruntime CPU session of ``model`` (ONNX bytes) that runs on the calling thread only.

    Detection runs one worker process per core, so a session starts no threads of its own. Memory: with ``arena``
    the session keeps the buffers of its biggest run for the next ones, which YuNet needs (without it, 60 % more
    CPU on photos of varying sizes) and the 8-bit SFace too (25 % more CPU without, 15-20 MB less); for the dlib
    ResNet it only holds memory (25 MB in a worker). Memory patterns (buffers planned per input shape) are off:
    the same speed, 35 MB less for YuNet.
    Measured on the photos of benchmarks/scan.py, both finders in one process: 346 MB RSS after a photo instead
    of 430 MB with onnxruntime's defaults, with the same CPU time.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = arena
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: it warns about every output shape left open
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
