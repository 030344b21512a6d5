"""dlib's 128-d face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) run by OpenCV's dnn instead of dlib.

In: 150x150 RGB face chips (uint8), exactly those dlib's ``compute_face_descriptor(img, shapes, 0, 0.25)`` makes:
``dlib.get_face_chips(img, shapes, size=150, padding=0.25)`` (both call ``get_face_chip_details(shape, 150, 0.25)``
then ``extract_image_chips``). Out: one float32 128-d vector a chip, dlib's own to within 5e-7 per component
(measured on the 204 faces HOG finds in benchmarks/scan.py's photos; OpenCV 5.0 and 4.11 alike).

Why: the dlib-bin wheel has no BLAS. Measured here (AMD EPYC, 2 shared cores; one process, one thread, CPU time,
the two alternating image by image on those 204 faces): dlib's ``compute_face_descriptor`` 136 ms a face, this
module 17 ms a face including the chips (8x). The engine is the faster of the two candidates, timed on the same 3
chips (best of 15, CPU time, one thread):

- OpenCV's ``cv2.dnn`` running the network given to it as an in-memory ONNX model: 13.6 ms a face (about 19 ms
  with its Winograd 3x3 convolutions turned off). It also obeys ``cv2.setNumThreads(1)``, which detection
  workers already set (numpy's OpenBLAS cannot be limited after numpy is imported without threadpoolctl);
- numpy + its OpenBLAS, im2col and one matrix product per convolution, all faces as one batch: 19.3 ms a face.

(onnxruntime runs the same ONNX model in 7-9 ms a face, but it is not a dependency of faces.) No BLAS is used
here: the preprocessing is elementwise numpy, the rest runs in OpenCV.

The weights are read from dlib's own serialization of the network (``anet_type`` of dlib's
``examples/dnn_face_recognition_ex.cpp``) and checked layer by layer against that architecture; anything else
raises :class:`ResNetFormatError` (the finder then keeps dlib's own ``compute_face_descriptor``). The format
(dlib's ``serialize.h``, ``dnn/core.h``, ``dnn/layers.h``, ``dnn/input.h``): integers are dlib's portable varints
(a control byte with the sign in bit 7 and the length in the low nibble, then that many little-endian bytes),
scalar floats a varint mantissa and a varint exponent, bools the characters '0'/'1', strings a varint length and
the bytes, tensors (version 2) a version, four dimensions and raw little-endian float32. A network is written
as every wrapper's version number, outermost first, then each layer's own data in forward order (the input
layer first), each followed by its wrapper's state (three bools, three empty tensors).

The network, as dlib runs it: input (pixel - mean RGB) / 256; con 7x7/2 (32, no padding), affine, relu, max_pool
3x3/2; residual units (con 3x3, affine, relu, con 3x3, affine, add the unit's input, relu) at 32 x3, 64 x4,
128 x3, 256 x3, 256 x1 filters, the first unit of each size after 32 with a stride-2 unpadded first convolution
and a 2x2/2 average pool of its input as shortcut (3x3 convolutions of stride 1 pad 1); dlib's add of tensors of
different shapes sums over the larger one with the smaller zero-padded at the end of each axis (channels 32->64,
64->128, 128->256; rows and columns 3x3 + 4x4 -> 4x4 and 1x1 + 2x2 -> 2x2 at the two 256 downsamplings); then the
average over all positions and fc_no_bias 128. Each affine layer is folded into the convolution before it (float
rounding differences only).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faces.finders.onnx_proto import field, tensor, value_info
from faces.finders.ort import onnxruntime_version, single_thread_session

CHIP_SIZE = 150
EMBEDDING_DIM = 128
BATCH = 16  # chips per forward pass, as dlib does: bounds memory on crowd photos
# Residual units of anet_type after the stem, in forward order: (filters, downsampling).
UNITS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),) + ((64, False),) * 3
    + ((128, True),) + ((128, False),) * 2
    + ((256, True),) + ((256, False),) * 2
    + ((256, True),)
)
# Wrappers of anet_type below its loss layer (add_layer, tag and skip), each written as one version number.
WRAPPERS = 130


class ResNetFormatError(ValueError):
    """The file is not dlib's face ResNet as this module knows it."""


# -- reading dlib's serialization ---------------------------------------------------------------------------------

class _Reader:
    """Reads dlib's serialized values from ``data``, front to back."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int_(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise ResNetFormatError(f"bad integer at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float_(self) -> float:
        mantissa = self.int_()
        exponent = self.int_()
        return float(mantissa * 2.0 ** exponent)

    def bool_(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise ResNetFormatError(f"bad bool at byte {self.pos - 1}")
        return char == b"1"

    def str_(self) -> str:
        return self._take(self.int_()).decode("latin-1")

    def tensor(self) -> np.ndarray:
        """A tensor's values, flat float32."""
        if self.int_() != 2:
            raise ResNetFormatError(f"unexpected tensor version at byte {self.pos}")
        count = int(np.prod([self.int_() for _ in range(4)]))
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        """An alias_tensor's dimensions (num_samples, k, nr, nc)."""
        if self.int_() != 1:
            raise ResNetFormatError(f"unexpected alias_tensor version at byte {self.pos}")
        return tuple(self.int_() for _ in range(4))

    def _take(self, size: int) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise ResNetFormatError("the file ends too early")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk


@dataclass
class _Layer:
    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    values: np.ndarray | None = None
    shape: tuple[int, ...] = ()  # con: (filters, channels, rows, cols); pools: (rows, cols); fc: (inputs, outputs)
    stride: int = 1
    padding: int = 0


def _read_layer(r: _Reader) -> _Layer:
    name = r.str_()
    if name in ("con_4", "con_5"):
        params = r.tensor()
        filters, rows, cols = r.int_(), r.int_(), r.int_()
        stride_y, stride_x, pad_y, pad_x = r.int_(), r.int_(), r.int_(), r.int_()
        shape = r.alias()
        r.alias()  # biases
        for _ in range(4):
            r.float_()  # learning-rate and weight-decay multipliers: training only
        has_bias = r.bool_() if name == "con_5" else True
        if (stride_y, pad_y) != (stride_x, pad_x) or shape[0] != filters or shape[2:] != (rows, cols):
            raise ResNetFormatError("unexpected convolution geometry")
        if not has_bias or params.size != int(np.prod(shape)) + filters:
            raise ResNetFormatError("unexpected convolution parameters")
        return _Layer("con", params, shape, stride_y, pad_y)
    if name == "affine_":
        params = r.tensor()
        gamma, beta = r.alias(), r.alias()
        if r.int_() != 0 or gamma != beta or params.size != 2 * gamma[1]:  # mode 0: one gamma and beta a channel
            raise ResNetFormatError("unexpected affine layer")
        return _Layer("affine", params)
    if name in ("relu_", "add_prev_"):
        return _Layer(name[:-1])
    if name in ("max_pool_2", "avg_pool_2"):
        rows, cols, stride_y, stride_x, pad_y, pad_x = (r.int_() for _ in range(6))
        if (rows, stride_y, pad_y) != (cols, stride_x, pad_x):
            raise ResNetFormatError("unexpected pooling geometry")
        return _Layer(name[:8], shape=(rows, cols), stride=stride_y, padding=pad_y)
    if name == "fc_2":
        outputs, inputs = r.int_(), r.int_()
        params = r.tensor()
        weights, biases = r.alias(), r.alias()
        bias_mode = r.int_()
        for _ in range(4):
            r.float_()
        if bias_mode != 1 or weights[:2] != (inputs, outputs) or biases != (0, 0, 0, 0):  # 1: FC_NO_BIAS
            raise ResNetFormatError("unexpected fc layer")
        return _Layer("fc", params, (inputs, outputs))
    raise ResNetFormatError(f"unexpected layer {name!r}")


def _read_layers(data: bytes) -> tuple[np.ndarray, list[_Layer]]:
    """The input layer's mean RGB and every computational layer of the file, in forward order."""
    r = _Reader(data)
    if r.int_() != 1 or not r.str_().startswith("loss_metric"):
        raise ResNetFormatError("not a loss_metric network")
    r.float_(), r.float_()  # margin and distance threshold: training only
    if [r.int_() for _ in range(WRAPPERS)][-1] != 3:  # 3: the innermost add_layer, over the input layer
        raise ResNetFormatError("unexpected layer wrappers")
    if r.str_() != "input_rgb_image_sized":
        raise ResNetFormatError("unexpected input layer")
    mean = np.array([r.float_() for _ in range(3)], dtype=np.float32)
    if (r.int_(), r.int_()) != (CHIP_SIZE, CHIP_SIZE):
        raise ResNetFormatError("unexpected input size")
    layers = []
    while r.pos < len(data):
        layers.append(_read_layer(r))
        for _ in range(3):
            r.bool_()
        for _ in range(3):
            if r.tensor().size:
                raise ResNetFormatError("unexpected saved outputs or gradients")
        if len(layers) == 1:
            r.int_()  # sample expansion factor of the innermost wrapper
    return mean, layers


# -- the network's weights ------------------------------------------------------------------------------------------

@dataclass
class Conv:
    """A convolution with its affine layer folded in: weights (filters, channels, rows, cols), bias (filters,)."""

    weights: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int


@dataclass
class Unit:
    """One residual unit: two 3x3 convolutions; ``down``: stride 2 and a 2x2/2 average-pool shortcut."""

    first: Conv
    second: Conv
    down: bool


@dataclass
class ResNetWeights:
    """Everything the forward pass needs, read from the .dat file."""

    mean: np.ndarray  # (3,) RGB
    stem: Conv
    units: list[Unit]
    fc: np.ndarray  # (256, 128)


def _folded(con: _Layer, affine: _Layer) -> Conv:
    filters = con.shape[0]
    count = int(np.prod(con.shape))
    gamma, beta = affine.values[:filters], affine.values[filters:]
    weights = con.values[:count].reshape(con.shape) * gamma[:, None, None, None]
    return Conv(np.ascontiguousarray(weights), con.values[count:] * gamma + beta, con.stride, con.padding)


def read_weights(path: str | Path) -> ResNetWeights:
    """The weights of dlib's face ResNet file ``path``; ResNetFormatError if it is not that network."""
    mean, layers = _read_layers(Path(path).read_bytes())
    expected = ["con", "affine", "relu", "max_pool"]
    for _, down in UNITS:
        expected += ["con", "affine", "relu", "con", "affine"] + ["avg_pool"] * down + ["add_prev", "relu"]
    expected += ["avg_pool", "fc"]
    if [layer.kind for layer in layers] != expected:
        raise ResNetFormatError("the layers are not those of dlib's face ResNet")
    stem, pool = layers[0], layers[3]
    if stem.shape != (32, 3, 7, 7) or (stem.stride, stem.padding) != (2, 0):
        raise ResNetFormatError("unexpected first convolution")
    if (pool.shape, pool.stride, pool.padding) != ((3, 3), 2, 0):
        raise ResNetFormatError("unexpected max pooling")
    units = []
    at, channels = 4, 32
    for filters, down in UNITS:
        first, second = layers[at], layers[at + 3]
        if first.shape != (filters, channels, 3, 3) or (first.stride, first.padding) != ((2, 0) if down else (1, 1)):
            raise ResNetFormatError("unexpected residual convolution")
        if second.shape != (filters, filters, 3, 3) or (second.stride, second.padding) != (1, 1):
            raise ResNetFormatError("unexpected residual convolution")
        if down and (layers[at + 5].shape, layers[at + 5].stride, layers[at + 5].padding) != ((2, 2), 2, 0):
            raise ResNetFormatError("unexpected shortcut pooling")
        units.append(Unit(_folded(first, layers[at + 1]), _folded(second, layers[at + 4]), down))
        at += 8 if down else 7
        channels = filters
    last_pool, fc = layers[at], layers[at + 1]
    if last_pool.shape != (0, 0) or fc.shape != (channels, EMBEDDING_DIM):  # (0, 0): avg_pool_everything
        raise ResNetFormatError("unexpected head")
    return ResNetWeights(mean, _folded(stem, layers[1]), units, fc.values.reshape(fc.shape))


# -- the network as an ONNX model (written with faces.finders.onnx_proto: the onnx package is not a dependency) --

class _Graph:
    """Collects ONNX nodes (NodeProto: input 1, output 2, name 3, op_type 4, attribute 5) and initializers."""

    def __init__(self):
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []
        self.count = 0

    def constant(self, array: np.ndarray) -> str:
        self.count += 1
        name = f"w{self.count}"
        self.initializers.append(tensor(name, array))
        return name

    def node(self, op: str, inputs: list[str], **ints: list[int]) -> str:
        """Adds ``op`` on ``inputs`` with int-list attributes; returns its output's name."""
        self.count += 1
        output = f"{op.lower()}{self.count}"
        # AttributeProto: name 1, ints 8, type 20 (7: INTS)
        attributes = b"".join(field(5, field(1, key) + b"".join(field(8, v) for v in values) + field(20, 7))
                              for key, values in ints.items())
        self.nodes.append(b"".join(field(1, i) for i in inputs) + field(2, output) + field(3, output)
                          + field(4, op) + attributes)
        return output

    def conv(self, x: str, conv: Conv) -> str:
        k = conv.weights.shape[2]
        return self.node("Conv", [x, self.constant(conv.weights), self.constant(conv.bias)],
                         kernel_shape=[k, k], strides=[conv.stride] * 2, pads=[conv.padding] * 4)

    def pad(self, x: str, shape: tuple[int, int, int], to: tuple[int, int, int]) -> str:
        """Zero-pads ``x`` (channels, rows, cols) at the end of each axis up to ``to``, as dlib's add does."""
        if shape == to:
            return x
        ends = [0] + [b - a for a, b in zip(shape, to)]
        return self.node("Pad", [x, self.constant(np.array([0, 0, 0, 0] + ends, np.int64))])


def onnx_model(weights: ResNetWeights) -> bytes:
    """The network (input: float32 (n, 3, 150, 150), already mean-subtracted and scaled) as ONNX bytes."""
    g = _Graph()
    x = g.node("Relu", [g.conv("input", weights.stem)])
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = ((CHIP_SIZE - 7) // 2 + 1 - 3) // 2 + 1
    channels = weights.stem.weights.shape[0]
    for unit in weights.units:
        filters = unit.first.weights.shape[0]
        y = g.conv(g.node("Relu", [g.conv(x, unit.first)]), unit.second)
        if unit.down:
            y_size, x_size = (size - 3) // 2 + 1, (size - 2) // 2 + 1
            x = g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
        else:
            y_size = x_size = size
        size = max(y_size, x_size)
        out = (filters, size, size)
        x = g.node("Relu", [g.node("Add", [g.pad(y, (filters, y_size, y_size), out),
                                           g.pad(x, (channels, x_size, x_size), out)])])
        channels = filters
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])])
    x = g.node("MatMul", [x, g.constant(weights.fc)])
    # GraphProto: node 1, name 2, initializer 5, input 11, output 12
    graph = (b"".join(field(1, n) for n in g.nodes) + field(2, "dlib_face_recognition_resnet_model_v1")
             + b"".join(field(5, t) for t in g.initializers)
             + field(11, value_info("input", ["n", 3, CHIP_SIZE, CHIP_SIZE]))
             + field(12, value_info(x, ["n", EMBEDDING_DIM])))
    # ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (OperatorSetIdProto: domain 1, version 2)
    return field(1, 7) + field(2, "faces") + field(7, graph) + field(8, field(1, "") + field(2, 13))


# -- running it ---------------------------------------------------------------------------------------------------

class DlibResNet:
    """dlib's face ResNet run by onnxruntime, or by OpenCV's dnn without it: ``embed(chips)`` gives the embeddings
    dlib would. ``engine`` names which runs it."""

    def __init__(self, path: str | Path):
        """Read ``path`` (ResNetFormatError if it is not dlib's face ResNet) and build the network."""
        weights = read_weights(path)
        self.mean = weights.mean
        model = onnx_model(weights)
        self.engine = engine_name()
        if self.engine == "onnxruntime":
            self._session = single_thread_session(model)
        else:
            import cv2  # noqa: PLC0415 - a dependency of faces, imported only by the finder that loads this

            self._net = cv2.dnn.readNetFromONNX(np.frombuffer(model, np.uint8))
        self._lock = threading.Lock()  # a cv2.dnn.Net runs one forward pass at a time

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings (n, 128) float32 of ``chips`` (n, 150, 150, 3) uint8 RGB."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be (n, {CHIP_SIZE}, {CHIP_SIZE}, 3), not {chips.shape}")
        out = np.zeros((len(chips), EMBEDDING_DIM), np.float32)
        for start in range(0, len(chips), BATCH):
            batch = (chips[start:start + BATCH].astype(np.float32) - self.mean) / np.float32(256)
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
            if self.engine == "onnxruntime":
                out[start:start + BATCH] = self._session.run(None, {"input": batch})[0]
                continue
            with self._lock:
                self._net.setInput(batch)
                out[start:start + BATCH] = self._net.forward().reshape(-1, EMBEDDING_DIM)
        return out


def engine_name() -> str:
    """What runs the network: "onnxruntime" when it can be imported (3x faster), else "opencv-dnn"."""
    return "onnxruntime" if onnxruntime_version() else "opencv-dnn"
