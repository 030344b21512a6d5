"""Detection jobs: adding images, running the finders in worker processes, writing their results."""

# What the detection worker processes import once, in the fork server, before any worker starts (see
# faces.jobs.executor.default_context; dlib's import fails quietly where it is missing). Named here, in a module
# that imports nothing, so that ``faces scan`` can start the fork server before it imports anything heavy.
WORKER_PRELOAD = ("numpy", "PIL.Image", "cv2", "onnxruntime", "dlib", "faces.media", "faces.finders.dlib_finder",
                  "faces.finders.opencv_finder", "faces.jobs.fork_server", "faces.jobs.detect")
