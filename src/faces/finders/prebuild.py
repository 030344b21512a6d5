"""Imported by the detection workers' fork server only (``faces.jobs.WORKER_PRELOAD``): work every worker would
otherwise do on its own at start, done once before they fork and shared with them.

The fork server starts with ``faces scan`` and imports its modules on the core the command line leaves free;
building the opencv finder's 8-bit SFace there (0.2 s of CPU) takes that much off each worker's start, when
both cores are busiest. Whatever fails here is left for the workers, which load the models themselves and say
what went wrong.
"""

try:
    from faces.finders.opencv_finder import prebuild_sface

    prebuild_sface()
except Exception:  # noqa: BLE001, S110 - the fork server must start; the workers report model problems
    pass
