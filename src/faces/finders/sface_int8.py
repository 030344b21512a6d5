"""SFace on 8-bit numbers: the same network, 1.8x faster in onnxruntime, built from the zoo file at load.

SFace (the OpenCV model zoo's ``face_recognition_sface_2021dec``) is a MobileNet of 27 convolutions, each followed
by batch normalization and a PRelu. The zoo file keeps its weights in 8 bits but computes in float32: 16 ms a face
on this machine's CPU, most of the opencv finder's time. Here every convolution runs on 8-bit numbers (onnxruntime
fuses the ``DequantizeLinear -> Conv -> QuantizeLinear`` patterns written here into ``QLinearConv``, and the
embedding layer into ``QGemm``): 8.4 ms.

* Each batch normalization is folded into its convolution (weights and a bias), exactly.
* Each PRelu becomes ``Max(z, slope * z)``, which is exact for a slope up to 1; a channel whose slope is above 1
  has its convolution's sign flipped (``z = -x``, so the Max gives ``-PRelu(x)``) and the next convolution's
  input channel flipped back, also exact. ``slope * z`` is read straight from the convolution's 8-bit output by a
  per-channel ``DequantizeLinear`` whose scales carry the slopes.
* Weights are quantized per output channel to 7 bits (see :data:`WEIGHT_MAX`), activations per tensor to uint8
  with the ranges in :data:`RANGES`, measured on the 240 faces of the group photos in ../shared/data (none of
  them in identities.csv) by ``benchmarks/calibrate_sface.py``, which also writes them here.
* The last batch normalization, the dropout and the fully connected layer with its batch normalization become
  one fully connected layer (:func:`_embedding_layer`), exactly.
* The first convolution reads ``(pixel - 128) / 128``, exactly representable in 8 bits, instead of SFace's
  ``(pixel - 127.5) / 128``; the half step is added back in its bias (it differs only in the zero padding at the
  border, by 0.004).

On the 197 faces of every third photo of identities.csv the 8-bit embeddings have a cosine similarity of 0.991 on
average (0.974 at worst) with the float32 ones, and ``benchmarks/recognition.py`` makes the same guesses (0 wrong;
one face fewer guessed of 498 with one photo named per person).
:func:`build` with ``ranges=None`` writes the rewritten graph in float32: the embeddings of the zoo file, which
the calibration runs to read the activations named by :func:`activation_names`.
"""

from __future__ import annotations

import numpy as np

from faces.finders.onnx_proto import (
    FloatGraph,
    fields,
    float_attributes,
    float_graph,
    int_attributes,
    node,
    strings,
    value_info,
)

# Weights use 7 bits (-63..63): two products of a uint8 activation and a weight, summed, stay below 2**15, so x86
# CPUs without VNNI (which sum pairs into saturating 16-bit integers) compute the same numbers as every other.
# 8 bits would bring the embeddings 0.001 closer to the float ones (cosine 0.9939 instead of 0.9926 on average,
# measured with the embedding layer in float32).
WEIGHT_MAX = 63

# (low, high) of each quantized activation, written by benchmarks/calibrate_sface.py (percentiles 0.001, 99.999)
RANGES: dict[str, tuple[float, float]] = {
    'conv_1_conv2d/input': (-1, 0.992188),
    'conv_1_conv2d/output': (-7.04695, 8.21067),
    'conv_2_dw_conv2d/input': (-5.56258, 8.21067),
    'conv_2_dw_conv2d/output': (-11.7938, 9.23692),
    'conv_2_conv2d/input': (-5.39206, 8.93524),
    'conv_2_conv2d/output': (-10.8595, 8.88154),
    'conv_3_dw_conv2d/input': (-3.46839, 8.6516),
    'conv_3_dw_conv2d/output': (-9.18253, 10.8317),
    'conv_3_conv2d/input': (-3.76717, 10.946),
    'conv_3_conv2d/output': (-8.25433, 7.30506),
    'conv_4_dw_conv2d/input': (-4.4207, 7.40962),
    'conv_4_dw_conv2d/output': (-8.63547, 9.55649),
    'conv_4_conv2d/input': (-2.96049, 9.97186),
    'conv_4_conv2d/output': (-7.71275, 6.40518),
    'conv_5_dw_conv2d/input': (-2.65361, 6.27424),
    'conv_5_dw_conv2d/output': (-7.89378, 8.50702),
    'conv_5_conv2d/input': (-4.7156, 8.37556),
    'conv_5_conv2d/output': (-5.97383, 6.37705),
    'conv_6_dw_conv2d/input': (-2.73781, 6.58286),
    'conv_6_dw_conv2d/output': (-7.07576, 8.72917),
    'conv_6_conv2d/input': (-2.52383, 8.92801),
    'conv_6_conv2d/output': (-6.65932, 6.94228),
    'conv_7_dw_conv2d/input': (-2.42514, 7.22546),
    'conv_7_dw_conv2d/output': (-7.73545, 9.57121),
    'conv_7_conv2d/input': (-4.71627, 9.60516),
    'conv_7_conv2d/output': (-5.49755, 7.06102),
    'conv_8_dw_conv2d/input': (-2.19471, 7.18931),
    'conv_8_dw_conv2d/output': (-6.16916, 10.4862),
    'conv_8_conv2d/input': (-2.85899, 10.5072),
    'conv_8_conv2d/output': (-6.10347, 6.83819),
    'conv_9_dw_conv2d/input': (-2.51058, 6.99473),
    'conv_9_dw_conv2d/output': (-6.53099, 10.8861),
    'conv_9_conv2d/input': (-3.25556, 10.5331),
    'conv_9_conv2d/output': (-5.63959, 7.19286),
    'conv_10_dw_conv2d/input': (-2.4854, 7.23126),
    'conv_10_dw_conv2d/output': (-7.09769, 11.2868),
    'conv_10_conv2d/input': (-3.66346, 11.3705),
    'conv_10_conv2d/output': (-6.22055, 7.27795),
    'conv_11_dw_conv2d/input': (-2.2497, 7.27795),
    'conv_11_dw_conv2d/output': (-6.57107, 9.88921),
    'conv_11_conv2d/input': (-2.63093, 9.8994),
    'conv_11_conv2d/output': (-6.17597, 7.23006),
    'conv_12_dw_conv2d/input': (-1.87209, 7.41656),
    'conv_12_dw_conv2d/output': (-6.11715, 10.4032),
    'conv_12_conv2d/input': (-2.48391, 10.7752),
    'conv_12_conv2d/output': (-8.96445, 7.34349),
    'conv_13_dw_conv2d/input': (-1.78511, 7.1891),
    'conv_13_dw_conv2d/output': (-7.86758, 10.5994),
    'conv_13_conv2d/input': (-3.46258, 10.0735),
    'conv_13_conv2d/output': (-5.89488, 6.70303),
    'conv_14_dw_conv2d/input': (-1.12504, 6.65825),
    'conv_14_dw_conv2d/output': (-6.71712, 8.62988),
    'conv_14_conv2d/input': (-0.829701, 8.49636),
    'conv_14_conv2d/output': (-6.16691, 4.98703),
    'fc/input': (-0.614075, 5.08129),
}


class _Graph:
    """The nodes (as dicts) and constants of the zoo file once :func:`float_graph` computed its weights."""

    def __init__(self, zoo_model: bytes):
        self.float = float_graph(zoo_model)
        self.array = self.float.array
        self.nodes = [{"op": strings(value, 4)[0], "in": strings(value, 1), "out": strings(value, 2),
                       "attributes": [bytes(v) for n, _, v, _ in fields(value) if n == 5],
                       "ints": int_attributes(value), "floats": float_attributes(value)}
                      for value in self.float.nodes]

    def layers(self) -> list[dict]:
        """SFace's ``Conv -> BatchNormalization -> PRelu`` triples in order, with the names the new graph uses."""
        layers = []
        for i, conv in enumerate(self.nodes):
            if conv["op"] != "Conv":
                continue
            norm, prelu = self.nodes[i + 1:i + 3]
            if norm["op"] != "BatchNormalization" or prelu["op"] != "PRelu" or norm["in"][0] != conv["out"][0] \
                    or prelu["in"][0] != norm["out"][0]:
                raise ValueError(f"not an SFace model: {conv['out'][0]} is not Conv, BatchNormalization, PRelu")
            name = conv["out"][0]
            layers.append({"conv": conv, "norm": norm, "prelu": prelu, "input": f"{name}/input",
                           "output": f"{name}/output"})
        if not layers:
            raise ValueError("not an SFace model: no convolution")
        return layers


FC_INPUT = "fc/input"  # the flattened output of the last convolution layer, read by the embedding layer


def activation_names(zoo_model: bytes) -> list[str]:
    """The activations whose ranges :func:`build` needs: each convolution's input and output, in order, then the
    embedding layer's input."""
    layers = _Graph(zoo_model).layers()
    return [name for layer in layers for name in (layer["input"], layer["output"])] + [FC_INPUT]


def build(zoo_model: bytes, ranges: dict[str, tuple[float, float]] | None = RANGES, expose: bool = False) -> bytes:
    """SFace (the zoo file's bytes) rewritten as the module says: 8-bit with ``ranges``, float32 with None.

    ``expose`` adds the activations of :func:`activation_names` to the graph's outputs (for the calibration).
    Raises ValueError when the file is not SFace 2021dec or a range is missing.
    """
    graph = _Graph(zoo_model)
    layers = graph.layers()
    start, end = graph.nodes.index(layers[0]["conv"]), graph.nodes.index(layers[-1]["prelu"]) + 1
    head = graph.nodes[:start]
    if [n["op"] for n in head] != ["Sub", "Mul"] or head[1]["out"][0] != layers[0]["conv"]["in"][0]:
        raise ValueError("not an SFace model: it does not start with (pixels - mean) * scale")
    mean, scale = (float(graph.array(n["in"][1]).reshape(-1)[0]) for n in head)
    out = _Writer()
    out.add("Sub", [head[0]["in"][0], out.constant("pixels/zero", np.float32([128.0]))], "pixels/centred")
    out.add("Mul", ["pixels/centred", out.constant("pixels/scale", np.float32([scale]))], layers[0]["input"])
    flipped = np.ones(1)  # -1 for the input channels whose sign the previous layer flipped
    for index, layer in enumerate(layers):
        weight, bias, slope, flip = _folded(graph, layer, flipped)
        if index == 0:  # the input is (pixel - 128) * scale: SFace's (pixel - mean) * scale minus a constant
            bias = bias + weight.sum(axis=(1, 2, 3)) * (128.0 - mean) * scale
        if ranges is None:
            _float_layer(out, layer, weight, bias, slope)
        else:
            # the pixels' (pixel - 128) / 128 is exact with zero point 128 and scale 1/128
            x_params = (1.0 / 128.0, 128) if index == 0 else _params(ranges, layer["input"])
            _quantized_layer(out, layer, weight, bias, slope, x_params, _params(ranges, layer["output"]))
        result = layers[index + 1]["input"] if index + 1 < len(layers) else layer["prelu"]["out"][0]
        out.add("Max", [layer["output"], f"{layer['output']}/sloped"], result)
        flipped = flip
    if (flipped < 0).any():
        raise ValueError("not the SFace model this was written for: its last PRelu has a slope above 1")
    weight, bias, output = _embedding_layer(graph, graph.nodes[end:])
    out.add("Flatten", [layers[-1]["prelu"]["out"][0]], FC_INPUT)
    if ranges is None:
        out.add("Gemm", [FC_INPUT, out.constant("fc/weight", weight.astype(np.float32)),
                         out.constant("fc/bias", bias.astype(np.float32))], output, transB=1)
    else:
        _quantized_gemm(out, weight, bias, _params(ranges, FC_INPUT), output)
    outputs = graph.float.outputs + ([value_info(name, None) for name in activation_names(zoo_model)] if expose
                                     else [])
    written = graph.float
    return FloatGraph(written.model_fields, out.nodes, out.constants, written.inputs, outputs,
                      written.others).to_bytes()


class _Writer:
    """The nodes and constants of the graph being written."""

    def __init__(self):
        self.nodes: list[bytes] = []
        self.constants: dict[str, np.ndarray] = {}

    def constant(self, name: str, array: np.ndarray) -> str:
        self.constants[name] = np.asarray(array)
        return name

    def add(self, op: str, inputs: list[str], output: str, attributes: list[bytes] = (), **ints: int) -> str:
        self.nodes.append(node(op, inputs, [output], attributes, **ints))
        return output


def _folded(graph: _Graph, layer: dict, flipped: np.ndarray) -> tuple[np.ndarray, ...]:
    """(weight, bias, slope, flip) of one layer: batch normalization folded in, the signs of the input channels
    in ``flipped`` undone, output channels whose slope is above 1 flipped (``flip`` is -1 for those)."""
    conv, prelu = layer["conv"], layer["prelu"]
    weight = graph.array(conv["in"][1]).astype(np.float64)
    factor, shift = _affine(graph, layer["norm"])
    slope = graph.array(prelu["in"][1]).astype(np.float64).reshape(-1)
    flip = np.where(slope > 1, -1.0, 1.0)
    weight = weight * (factor * flip)[:, None, None, None]
    if conv["ints"].get("group", 1) > 1:  # depthwise: input channel c is output channel c
        weight = weight * flipped.reshape(-1, 1, 1, 1)
    else:
        weight = weight * flipped.reshape(1, -1, 1, 1)
    return weight, shift * flip, slope, flip


def _affine(graph: _Graph, norm: dict) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization node as ``x * factor + shift`` per channel."""
    gamma, beta, mean, var = (graph.array(n).astype(np.float64).reshape(-1) for n in norm["in"][1:5])
    factor = gamma / np.sqrt(var + norm["floats"].get("epsilon", 1e-5))
    return factor, beta - mean * factor


def _embedding_layer(graph: _Graph, tail: list[dict]) -> tuple[np.ndarray, np.ndarray, str]:
    """SFace's last nodes (batch normalization, dropout, flatten, fully connected, batch normalization) as one
    fully connected layer of the flattened convolution output: (weight (128, n), bias, the output's name)."""
    ops = [n["op"] for n in tail]
    gemm = tail[4] if len(tail) > 4 else {"ints": {}, "floats": {}}
    if ops != ["BatchNormalization", "Constant", "Dropout", "Flatten", "Gemm", "BatchNormalization"] \
            or gemm["ints"].get("transB") != 1 or gemm["ints"].get("transA", 0) \
            or any(gemm["floats"].get(k, 1.0) != 1.0 for k in ("alpha", "beta")):
        raise ValueError("not an SFace model: it does not end with its embedding layer")
    before, gemm, after = tail[0], tail[4], tail[5]
    weight = graph.array(gemm["in"][1])  # float32: 6.4 million weights, float64 would take twice the time
    bias = graph.array(gemm["in"][2]).astype(np.float64)
    factor, shift = _affine(graph, before)  # per channel of the flattened (channel, row, column) input
    per_channel = weight.shape[1] // len(factor)
    bias = bias + weight.astype(np.float64) @ np.repeat(shift, per_channel)
    out_factor, out_shift = _affine(graph, after)  # per output
    weight = weight * np.repeat(factor, per_channel).astype(np.float32)[None, :]
    weight *= out_factor.astype(np.float32)[:, None]
    return weight, bias * out_factor + out_shift, after["out"][0]


def _quantized_gemm(out: _Writer, weight: np.ndarray, bias: np.ndarray, x_params: tuple[float, int],
                    output: str) -> None:
    """The embedding layer on the 8-bit flattened input, int8 weights per output and an int32 bias; its
    output stays float (onnxruntime's QGemm)."""
    x_dq = _quantized_input(out, FC_INPUT, *x_params)
    w_name, b_name = _quantized_weights(out, "fc", weight, bias, x_params[0])
    out.add("Gemm", [x_dq, w_name, b_name], output, transB=1)


def _float_layer(out: _Writer, layer: dict, weight: np.ndarray, bias: np.ndarray, slope: np.ndarray) -> None:
    name = layer["output"]
    out.add("Conv", [layer["input"], out.constant(f"{name}/weight", weight.astype(np.float32)),
                     out.constant(f"{name}/bias", bias.astype(np.float32))], name, layer["conv"]["attributes"])
    out.add("Mul", [name, out.constant(f"{name}/slope", slope.astype(np.float32).reshape(-1, 1, 1))],
            f"{name}/sloped")


def _quantized_layer(out: _Writer, layer: dict, weight: np.ndarray, bias: np.ndarray, slope: np.ndarray,
                     x_params: tuple[float, int], y_params: tuple[float, int]) -> None:
    """The 8-bit input, the convolution on int8 weights and an int32 bias, ``QuantizeLinear`` of its output and two
    ``DequantizeLinear`` of that: plain, and times the slopes."""
    name = layer["output"]
    x_dq = _quantized_input(out, layer["input"], *x_params)
    w_name, b_name = _quantized_weights(out, name, weight, bias, x_params[0])
    out.add("Conv", [x_dq, w_name, b_name], f"{name}/float", layer["conv"]["attributes"])
    y_scale, y_zero = y_params
    out.add("QuantizeLinear", [f"{name}/float", out.constant(f"{name}/scale", np.float32(y_scale)),
                               out.constant(f"{name}/zero", np.uint8(y_zero))], f"{name}/q")
    out.add("DequantizeLinear", [f"{name}/q", f"{name}/scale", f"{name}/zero"], name)
    out.add("DequantizeLinear", [f"{name}/q", out.constant(f"{name}/slope/scale", (slope * y_scale).astype(np.float32)),
                                 out.constant(f"{name}/slope/zero", np.full(len(slope), y_zero, np.uint8))],
            f"{name}/sloped", axis=1)


def _quantized_input(out: _Writer, name: str, scale: float, zero: int) -> str:
    """``QuantizeLinear -> DequantizeLinear`` of activation ``name`` (uint8); the name of what they give."""
    out.add("QuantizeLinear", [name, out.constant(f"{name}/scale", np.float32(scale)),
                               out.constant(f"{name}/zero", np.uint8(zero))], f"{name}/q")
    return out.add("DequantizeLinear", [f"{name}/q", f"{name}/scale", f"{name}/zero"], f"{name}/dq")


def _quantized_weights(out: _Writer, name: str, weight: np.ndarray, bias: np.ndarray,
                       x_scale: float) -> tuple[str, str]:
    """``weight`` as int8 per output (first axis) and ``bias`` as int32 at the scale of input times weight,
    each behind a ``DequantizeLinear``; the names of the two."""
    w_scale = np.maximum(np.abs(weight).reshape(len(weight), -1).max(axis=1), 1e-12).astype(np.float64) / WEIGHT_MAX
    w_int = _rounded(weight / w_scale.astype(weight.dtype).reshape((-1,) + (1,) * (weight.ndim - 1)))
    b_scale = x_scale * w_scale
    w_name = out.add("DequantizeLinear", [out.constant(f"{name}/weight/q", w_int),
                                          out.constant(f"{name}/weight/scale", w_scale.astype(np.float32)),
                                          out.constant(f"{name}/weight/zero", np.zeros(len(w_int), np.int8))],
                     f"{name}/weight", axis=0)
    b_name = out.add("DequantizeLinear", [out.constant(f"{name}/bias/q", np.round(bias / b_scale).astype(np.int32)),
                                          out.constant(f"{name}/bias/scale", b_scale.astype(np.float32)),
                                          out.constant(f"{name}/bias/zero", np.zeros(len(w_int), np.int32))],
                     f"{name}/bias", axis=0)
    return w_name, b_name


def _rounded(scaled: np.ndarray) -> np.ndarray:
    """``scaled`` weights rounded to int8 between -WEIGHT_MAX and WEIGHT_MAX (``scaled`` is overwritten)."""
    np.rint(scaled, out=scaled)
    np.clip(scaled, -WEIGHT_MAX, WEIGHT_MAX, out=scaled)
    return scaled.astype(np.int8)


def _params(ranges: dict[str, tuple[float, float]], name: str) -> tuple[float, int]:
    """uint8 (scale, zero point) covering the range of activation ``name`` (with 0 always inside it)."""
    if name not in ranges:
        raise ValueError(f"no calibrated range for {name}")
    low, high = min(0.0, ranges[name][0]), max(0.0, ranges[name][1])
    scale = max(high - low, 1e-8) / 255.0
    return scale, int(np.clip(round(-low / scale), 0, 255))
