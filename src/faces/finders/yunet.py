"""YuNet run by onnxruntime, with the post-processing of OpenCV's ``cv2.FaceDetectorYN`` (same rows, 2.3x faster).

Measured here (AMD EPYC, one thread, CPU time): YuNet on a 1280x960 image takes 50 ms in ``cv2.FaceDetectorYN``
(OpenCV 5.0, classic or new engine alike) and 22 ms in onnxruntime 1.32; on the 65 photos of
benchmarks/scan.py the opencv finder then finds the same 222 faces with the same boxes, and takes 20 % less CPU.
(SFace runs in onnxruntime too, on 8-bit numbers: see :mod:`faces.finders.sface_int8`.)

:class:`YuNetRuntime` has the three methods of ``cv2.FaceDetectorYN`` the finder uses, and does what
OpenCV's ``modules/objdetect/src/face_detect.cpp`` does: the BGR image is padded at the right and bottom to a
multiple of 32 and given to the network as float32 without scaling; for each of the strides 8, 16 and 32 every
grid cell gives a score ``sqrt(clip(cls) * clip(obj))``, a box centred at ``(col + dx, row + dy) * stride``
of size ``exp(dw, dh) * stride`` and 5 landmarks at ``(col + kx, row + ky) * stride``; rows above the score
threshold go through ``cv2.dnn.NMSBoxes``. A row is ``(x, y, w, h, 10 landmark coordinates, score)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from faces.finders.onnx_proto import float_weights
from faces.finders.ort import single_thread_session

STRIDES = (8, 16, 32)
DIVISOR = 32


@lru_cache(maxsize=2)
def session(model: bytes):  # noqa: ANN201 - an onnxruntime.InferenceSession
    """The onnxruntime session of YuNet file ``model``, made once per process for the same bytes.

    The detection fork server makes it before the workers fork (faces.jobs.prebuild): they share it and
    start 0.03 s of CPU sooner. It runs on its caller's thread only, so no thread of it is lost in the fork.
    """
    return single_thread_session(float_weights(model), arena=True)


class YuNetRuntime:
    """YuNet (an OpenCV model zoo file, ONNX bytes) in onnxruntime, used like ``cv2.FaceDetectorYN``."""

    def __init__(self, model: bytes, score_threshold: float, nms_threshold: float, top_k: int):
        self._session = session(bytes(model))
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]
        missing = {f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES} - set(self._outputs)
        if missing:
            raise ValueError(f"not a YuNet 2023mar model: no output {', '.join(sorted(missing))}")
        self.score_threshold, self.nms_threshold, self.top_k = score_threshold, nms_threshold, top_k

    def setScoreThreshold(self, value: float) -> None:  # noqa: N802 - cv2.FaceDetectorYN's name
        self.score_threshold = float(value)

    def setInputSize(self, size: tuple[int, int]) -> None:  # noqa: N802,ARG002 - any size is taken as it comes
        """Kept for the finder's calls to ``cv2.FaceDetectorYN``: here the image's own size is used."""

    def detect(self, bgr: np.ndarray) -> tuple[int, np.ndarray | None]:
        """``(1, rows)`` for the faces of ``bgr`` (uint8, H x W x 3), rows None when there is none."""
        import cv2

        height, width = bgr.shape[:2]
        padded_h = (height - 1) // DIVISOR * DIVISOR + DIVISOR
        padded_w = (width - 1) // DIVISOR * DIVISOR + DIVISOR
        blob = np.zeros((1, 3, padded_h, padded_w), np.float32)
        for channel, plane in enumerate(cv2.split(bgr)):  # plane by plane: 2x faster than one transposed copy
            blob[0, channel, :height, :width] = plane
        outputs = dict(zip(self._outputs, self._session.run(self._outputs, {self._input: blob})))
        found = [rows for stride in STRIDES
                 if len(rows := self._rows(outputs, stride, padded_w // stride))]
        if not found:
            return 1, None
        rows = np.vstack(found)
        keep = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), self.score_threshold,
                                self.nms_threshold, top_k=self.top_k)
        if len(keep) == 0:
            return 1, None
        return 1, rows[np.asarray(keep).reshape(-1)]

    def _rows(self, outputs: dict[str, np.ndarray], stride: int, columns: int) -> np.ndarray:
        """The rows of one stride's grid scoring at least the threshold."""
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        cells = np.nonzero(score >= self.score_threshold)[0]
        rows = np.empty((len(cells), 15), np.float32)
        if not len(cells):
            return rows
        box = outputs[f"bbox_{stride}"].reshape(-1, 4)[cells]
        points = outputs[f"kps_{stride}"].reshape(-1, 10)[cells]
        row, col = (cells // columns).astype(np.float32), (cells % columns).astype(np.float32)
        w, h = np.exp(box[:, 2]) * stride, np.exp(box[:, 3]) * stride
        rows[:, 0] = (col + box[:, 0]) * stride - w / 2
        rows[:, 1] = (row + box[:, 1]) * stride - h / 2
        rows[:, 2], rows[:, 3] = w, h
        rows[:, 4:14:2] = (points[:, 0::2] + col[:, None]) * stride
        rows[:, 5:14:2] = (points[:, 1::2] + row[:, None]) * stride
        rows[:, 14] = score[cells]
        return rows
