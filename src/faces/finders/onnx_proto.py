"""Just enough of ONNX's protobuf format to write a small model and to make OpenCV's zoo files run in onnxruntime.

The onnx package is not a dependency (it is big and only this needs it): messages are read and written here with
the protobuf wire format (varints, and length-delimited fields for strings, bytes and nested messages). Field
numbers are those of onnx.proto: ModelProto graph 7; GraphProto node 1, initializer 5, input 11, output 12;
NodeProto input 1, output 2, op_type 4, attribute 5; AttributeProto name 1, i 3; TensorProto dims 1, data_type
2, name 8, raw_data 9; ValueInfoProto name 1, type 2; TypeProto tensor_type 1; TypeProto.Tensor shape 2.

:func:`float_weights` is what onnxruntime needs to run the OpenCV model zoo's int8 block-quantized files
(``*_int8bq.onnx``): onnxruntime refuses their ``DequantizeLinear`` nodes (a ``block_size`` on what it reads as
per-tensor quantization), and their inputs and outputs have a fixed 640x640 shape. The weights are turned back
into float32 once, exactly as ``DequantizeLinear`` defines it, which is what OpenCV does at load too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# TensorProto.data_type -> numpy type, for the types these models hold
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}


def varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | str | bytes) -> bytes:
    """One protobuf field: an int as a varint, a str or bytes (strings and messages) length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto holding ``array`` (one of the types of :data:`DTYPES`) as little-endian raw data."""
    return b"".join(_tensor_pieces(name, np.asarray(array)))


def node(op: str, inputs: list[str], outputs: list[str], attributes: list[bytes] = (), **ints: int) -> bytes:
    """A NodeProto named after its first output: ``attributes`` as written (AttributeProtos), ``ints`` added."""
    parts = [field(1, name) for name in inputs] + [field(2, name) for name in outputs]
    parts += [field(3, outputs[0]), field(4, op)] + [field(5, a) for a in attributes]
    parts += [field(5, field(1, key) + field(3, value) + field(20, 2)) for key, value in ints.items()]  # 2: INT
    return b"".join(parts)


def value_info(name: str, dims: list[int | str] | None) -> bytes:
    """A ValueInfoProto of a float tensor with ``dims`` (an int is a fixed size, a str a named free one; None:
    any shape)."""
    if dims is None:
        return field(1, name) + field(2, field(1, field(1, 1)))
    shape = b"".join(field(1, field(2, d) if isinstance(d, str) else field(1, d)) for d in dims)
    return field(1, name) + field(2, field(1, field(1, 1) + field(2, shape)))


# -- reading ------------------------------------------------------------------------------------------------------

def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, int | bytes, bytes]]:
    """The fields of one message: (number, wire type, value, the field's own bytes as written).

    The value is an int for varints, the bytes (a memoryview, not a copy) for length-delimited and fixed-size
    fields. Raises ValueError on bytes that are not a protobuf message.
    """
    data = memoryview(data)
    out = []
    at = 0
    try:
        while at < len(data):
            start = at
            key, at = _read_varint(data, at)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, at = _read_varint(data, at)
            elif wire == 2:
                size, at = _read_varint(data, at)
                value, at = data[at:at + size], at + size
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                value, at = data[at:at + size], at + size
            else:
                raise ValueError(f"unsupported protobuf wire type {wire}")
            if at > len(data):
                raise ValueError("a protobuf field runs past the end of its message")
            out.append((number, wire, value, data[start:at]))
    except IndexError as exc:
        raise ValueError("a protobuf message ends in the middle of a field") from exc
    return out


def strings(message: bytes, number: int) -> list[str]:
    return [bytes(v).decode() for n, w, v, _ in fields(message) if n == number and w == 2]


def read_tensor(message: bytes) -> tuple[str, np.ndarray]:
    """(name, array) of a TensorProto whose data is raw_data or float_data (what these model files use)."""
    dims: list[int] = []
    floats: list[bytes] = []
    name, kind, raw = "", 0, None
    for number, wire, value, _ in fields(message):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            at = 0
            while at < len(value):
                dim, at = _read_varint(value, at)
                dims.append(dim)
        elif number == 2:
            kind = value
        elif number == 8:
            name = bytes(value).decode()
        elif number == 9:
            raw = value
        elif number == 4:  # float_data, packed (wire type 2) or one by one (5)
            floats.append(bytes(value))
    if kind == 1 and raw is None and floats:
        raw = b"".join(floats)
    if kind not in DTYPES or raw is None:  # (int32_data and the like: not in these files)
        raise ValueError(f"tensor {name!r}: only raw data of types {sorted(DTYPES)} are read, not type {kind}")
    array = np.frombuffer(raw, dtype=np.dtype(DTYPES[kind]).newbyteorder("<")).astype(DTYPES[kind])
    return name, array.reshape(dims)


def int_attributes(node: bytes) -> dict[str, int]:
    """The int attributes of a NodeProto, by name."""
    return _attributes(node, 3, int)


def float_attributes(node: bytes) -> dict[str, float]:
    """The float attributes of a NodeProto, by name."""
    return _attributes(node, 2, lambda raw: float(np.frombuffer(bytes(raw), "<f4")[0]))


def _attributes(node: bytes, number: int, value) -> dict:  # noqa: ANN001 - value: the field's bytes or int -> value
    """The attributes of a NodeProto that have AttributeProto field ``number`` (2: f, 3: i), by name."""
    out = {}
    for field_number, _, attribute, _ in fields(node):
        if field_number == 5:
            parts = {n: v for n, _, v, _ in fields(attribute)}
            if number in parts:
                out[bytes(parts[1]).decode()] = value(parts[number])
    return out


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int = 1,
               block_size: int = 0) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(x - zero_point) * scale``, per tensor, per axis or per block along ``axis``.

    Blocks are computed on ``x`` seen as ``(..., blocks, block_size, ...)``, with the scales broadcast over
    each block (repeating them to ``x``'s shape took 0.24 s of CPU on SFace's weights, this 0.01 s)."""
    scale = np.asarray(scale, np.float32)
    zero = np.asarray(zero_point).astype(np.float32)
    if scale.ndim == 0:
        out = x.astype(np.float32)
        out -= zero
        out *= scale
        return out
    axis %= x.ndim
    if not block_size:
        shape = [1] * x.ndim
        shape[axis] = -1
        out = x.astype(np.float32)
        out -= zero.reshape(shape)
        out *= scale.reshape(shape)
        return out
    length, blocks = x.shape[axis], scale.shape[axis]
    if blocks * block_size != length:  # the last block is short: pad it, cut it off after
        padding = [(0, 0)] * x.ndim
        padding[axis] = (0, blocks * block_size - length)
        x = np.pad(x, padding)
    out = x.reshape(x.shape[:axis] + (blocks, block_size) + x.shape[axis + 1:]).astype(np.float32)
    out -= np.expand_dims(zero, axis + 1)
    out *= np.expand_dims(scale, axis + 1)
    out = out.reshape(x.shape)
    if out.shape[axis] != length:
        out = np.ascontiguousarray(out[(slice(None),) * axis + (slice(0, length),)])
    return out


@dataclass
class FloatGraph:
    """A model's graph once :func:`float_graph` computed its constant ``DequantizeLinear`` nodes.

    ``nodes`` are NodeProto bytes; ``constants`` the initializers the nodes or outputs use, by name: a float32
    (or int64) array where computed, the TensorProto bytes as stored otherwise (see :meth:`array`); ``inputs``
    and ``outputs`` ValueInfoProto bytes with open shapes; ``others`` the graph's other fields as written, and
    ``model_fields`` the model's own fields (the graph among them).
    """

    model_fields: list
    nodes: list[bytes]
    constants: dict[str, np.ndarray | bytes]
    inputs: list[bytes]
    outputs: list[bytes]
    others: list[bytes]

    def array(self, name: str) -> np.ndarray:
        """Constant ``name`` as an array."""
        value = self.constants[name]
        return value if isinstance(value, np.ndarray) else read_tensor(value)[1]

    def to_bytes(self) -> bytes:
        """The model with this graph, as ONNX bytes."""
        # written as a list of pieces and joined once: the float weights (38 MB for SFace) are copied once, not
        # once per level of nesting
        parts: list = [field(1, node) for node in self.nodes] + self.others
        for name, value in self.constants.items():
            if isinstance(value, np.ndarray):
                parts += _nested(5, _tensor_pieces(name, value))
            else:
                parts.append(field(5, value))
        parts += [field(11, value) for value in self.inputs] + [field(12, value) for value in self.outputs]
        pieces: list = []
        for number, _, _, raw in self.model_fields:
            pieces += _nested(7, parts) if number == 7 else [raw]
        return b"".join(pieces)


def float_graph(model: bytes) -> FloatGraph:
    """The graph of ``model`` (ONNX bytes) with weights that onnxruntime runs on images of any size.

    Every ``DequantizeLinear`` of constant tensors, and every ``Reshape`` of such a result by a constant shape,
    is computed here and replaced by a float32 initializer; initializers left unused are dropped, and so are
    graph inputs that no node reads (the SFace file lists its weights as inputs). The shapes of the graph's
    inputs and outputs are left open. Raises ValueError on a file that is not such a model.
    """
    model_fields = fields(model)
    graphs = [v for n, w, v, _ in model_fields if n == 7 and w == 2]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model: no graph")
    stored: dict[str, bytes] = {}  # initializers as written, decoded only when folded
    computed: dict[str, np.ndarray] = {}
    nodes: list[bytes] = []
    others: list[bytes] = []  # graph fields kept as they are
    inputs: list[tuple[str, bytes]] = []
    outputs: list[bytes] = []
    for number, _, value, raw in fields(graphs[0]):
        if number == 5:
            stored[strings(value, 8)[0]] = value
        elif number == 1:
            nodes.append(value)
        elif number == 11:
            inputs.append((strings(value, 1)[0], value))
        elif number == 12:
            outputs.append(value)
        else:
            others.append(raw)

    def constant(name: str) -> np.ndarray:
        if name not in computed:
            computed[name] = read_tensor(stored[name])[1]
        return computed[name]

    kept: list[bytes] = []
    for node in nodes:
        op = strings(node, 4)[0]
        ins, outs = strings(node, 1), strings(node, 2)
        if op in ("DequantizeLinear", "Reshape") and ins and all(i in stored or i in computed for i in ins if i):
            if op == "DequantizeLinear":
                attributes = int_attributes(node)
                zero_point = constant(ins[2]) if len(ins) > 2 and ins[2] else np.zeros(1, np.int8)
                computed[outs[0]] = dequantize(constant(ins[0]), constant(ins[1]), zero_point,
                                               attributes.get("axis", 1), attributes.get("block_size", 0))
            else:
                computed[outs[0]] = constant(ins[0]).reshape(constant(ins[1]))
            continue
        kept.append(node)
    used = {name for node in kept for name in strings(node, 1)} | {strings(o, 1)[0] for o in outputs}
    constants: dict[str, np.ndarray | bytes] = {}
    for name in sorted(used & (stored.keys() | computed.keys())):
        if name in stored:
            constants[name] = stored[name]
        else:
            array = computed[name]
            constants[name] = array if array.dtype == np.int64 else array.astype(np.float32, copy=False)
    return FloatGraph(model_fields, kept, constants,
                      [_open_shape(value) for name, value in inputs if name in used and name not in constants],
                      [_open_shape(value) for value in outputs], others)


def float_weights(model: bytes) -> bytes:
    """``model`` (ONNX bytes) as :func:`float_graph` rewrites it, as ONNX bytes."""
    return float_graph(model).to_bytes()


def _nested(number: int, pieces: list) -> list:
    """A length-delimited field holding the message made of ``pieces``, as pieces."""
    return [varint(number << 3 | 2) + varint(sum(len(p) for p in pieces)), *pieces]


def _tensor_pieces(name: str, array: np.ndarray) -> list:
    """:func:`tensor`, as pieces whose last one is the array's own memory (little-endian)."""
    kind = {np.dtype(t): k for k, t in DTYPES.items()}[array.dtype]
    data = memoryview(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))).cast("B")
    head = b"".join(field(1, int(d)) for d in array.shape) + field(2, kind) + field(8, name)
    return [head + varint(9 << 3 | 2) + varint(len(data)), data]


def _open_shape(info: bytes) -> bytes:
    """A ValueInfoProto with its tensor shape removed (any shape), keeping its name and element type."""
    out = b""
    for number, _, value, raw in fields(info):
        if number != 2:
            out += raw
            continue
        kinds = b""
        for t_number, _, t_value, t_raw in fields(value):
            if t_number == 1:  # tensor_type: keep elem_type (1), drop shape (2)
                t_raw = field(1, b"".join(r for n, _, _, r in fields(t_value) if n != 2))
            kinds += t_raw
        out += field(2, kinds)
    return out
