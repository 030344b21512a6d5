"""The opencv finder's onnxruntime sessions, YuNet and the 8-bit SFace (0.15 s of CPU), for the workers to fork with."""

try:
    from faces.finders.opencv_finder import prebuild_sessions

    prebuild_sessions()
except Exception:  # noqa: BLE001, S110 - the fork server must start; the workers report model problems
    pass
