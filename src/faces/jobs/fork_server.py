"""Imported by the detection workers' fork server only (``faces.jobs.WORKER_PRELOAD``), after the workers'
libraries: what the fork server does once besides importing them.

- It makes the opencv finder's onnxruntime sessions (YuNet, and SFace on 8-bit numbers: 0.15 s of CPU), which
  every worker would otherwise make on its own at start, when both cores are busiest; the workers fork with
  them. Whatever fails here is left to the workers, which load the models themselves and say what went wrong.
- It ends without the interpreter's teardown (see :mod:`faces.quick_exit`): the fork server holds the
  standard streams of ``faces scan``, and a caller reading them to their end would wait for that teardown.
"""

from faces.quick_exit import arm

# The fork server ends when its parent is gone, with nothing of its own to close. (The exit handlers that
# multiprocessing and logging registered before this have nothing to do here, and are skipped.)
arm()(0)

try:
    from faces.finders.opencv_finder import prebuild_sessions

    prebuild_sessions()
except Exception:  # noqa: BLE001, S110 - the fork server must start; the workers report model problems
    pass
