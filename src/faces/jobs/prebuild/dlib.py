"""The dlib finder's shape predictor, ResNet session and HOG detector (0.4 s of CPU), for the workers to fork with."""

try:
    from faces.finders.dlib_finder import prebuild_models

    prebuild_models()
except Exception:  # noqa: BLE001, S110 - the fork server must start; the workers report model problems
    pass
