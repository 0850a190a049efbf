"""ONNX -> IR. Reads a model without its external weight bytes, folds shape arithmetic.

Initializers stored as external data become described-only constants (shape, dtype, file,
offset): a 16 GB model imports without reading a byte of weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, numpy_helper

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, parse_dim, symbol
from compiler.ir.tensor import Constant, ExternalLocation, TensorType
from compiler.ops.registry import is_registered, supported_ops
from compiler.passes.dce import eliminate_dead_code
from compiler.passes.fold import GraphBuilder

# From opset 7 on, elementwise ops broadcast numpy-style; older graphs are not read.
MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Ops whose meaning changed at an opset boundary we do not model.
_MIN_OPSET_FOR_OP = {Op.SOFTMAX: 13, Op.LOG_SOFTMAX: 13, Op.CLIP: 11, Op.TOPK: 10}


class OnnxImportError(ValueError):
    """A model the front end cannot read; the message names the file, node or field."""


def load_model(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.exists():
        raise OnnxImportError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxImportError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise OnnxImportError(f"{path}: not an ONNX model (no graph)")
    return model


def import_onnx(source: str | Path | onnx.ModelProto, base_dir: str | Path | None = None) -> Graph:
    """Import a model file (or proto) into the IR, folding constants and removing dead code."""
    if isinstance(source, onnx.ModelProto):
        model, origin = source, "<model>"
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        model, origin = load_model(source), str(source)
        base = Path(base_dir) if base_dir is not None else Path(source).parent
    opset = _check_opset(model, origin)
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    graph = Graph(model.graph.name or Path(origin).stem, opset)
    builder = GraphBuilder(graph)
    initializer_names = {t.name for t in model.graph.initializer}
    for init in model.graph.initializer:
        builder.add_constant(_constant_from_tensor(init, base, is_parameter=True))
    if model.graph.sparse_initializer:
        raise OnnxImportError(f"{origin}: sparse initializers are not supported")
    for value in model.graph.input:
        if value.name not in initializer_names:
            graph.add_input(value.name, _value_type(value, origin))
    for index, proto in enumerate(model.graph.node):
        _import_node(builder, proto, index, opset, origin)
    for value in model.graph.output:
        if not graph.has_value(value.name):
            raise OnnxImportError(f"{origin}: graph output {value.name!r} is not produced by any node")
        graph.outputs.append(value.name)
    return eliminate_dead_code(graph)


def _check_opset(model: onnx.ModelProto, origin: str) -> int:
    opset = None
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            opset = entry.version
    if opset is None:
        raise OnnxImportError(f"{origin}: no default-domain opset_import; cannot tell which ONNX op semantics apply")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(f"{origin}: opset {opset} is not supported (supported: {MIN_OPSET}..{MAX_OPSET})")
    return opset


def _import_node(builder: GraphBuilder, proto: onnx.NodeProto, index: int, opset: int, origin: str) -> None:
    node_name = proto.name or f"{proto.op_type}_{index}"
    where = f"{origin}: {proto.op_type} node {node_name!r}"
    if proto.domain not in _DEFAULT_DOMAINS:
        raise OnnxImportError(f"{where}: domain {proto.domain!r} is not supported (only the default ONNX domain)")
    op = Op.from_onnx(proto.op_type)
    if op is None or (op != Op.CONSTANT and not is_registered(op)):
        raise OnnxImportError(f"{where}: op {proto.op_type} is not supported; supported: {', '.join(supported_ops())}")
    if opset < _MIN_OPSET_FOR_OP.get(op, 0):
        raise OnnxImportError(f"{where}: {proto.op_type} before opset {_MIN_OPSET_FOR_OP[op]} is not supported")
    for value in proto.input:
        if value and not builder.graph.has_value(value):
            raise OnnxImportError(f"{where}: input {value!r} is not defined before this node")
    attrs = {a.name: _attribute(a, where) for a in proto.attribute}
    if op == Op.CONSTANT:
        builder.add_constant(_constant_node(proto, attrs, where))
        return
    try:
        builder.emit(node_name, op, list(proto.input), list(proto.output), attrs)
    except OnnxImportError:
        raise
    except ValueError as exc:
        message = str(exc)
        raise OnnxImportError(message if message.startswith(origin) else f"{origin}: {message}") from None


def _attribute(attr: AttributeProto, where: str) -> Any:
    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        raise OnnxImportError(f"{where}: attribute {attr.name!r} holds a subgraph; control flow is not supported")
    if attr.ref_attr_name:
        raise OnnxImportError(f"{where}: attribute {attr.name!r} references a function attribute")
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return tuple(v.decode() if isinstance(v, bytes) else v for v in value)
    return value


def _constant_node(proto: onnx.NodeProto, attrs: dict[str, Any], where: str) -> Constant:
    if len(attrs) != 1:
        raise OnnxImportError(f"{where}: Constant needs exactly one value attribute, got {sorted(attrs)}")
    key, value = next(iter(attrs.items()))
    if key == "value":
        array = value
    elif key in ("value_float", "value_int"):
        array = np.array(value, dtype=np.float32 if key == "value_float" else np.int64)
    elif key in ("value_floats", "value_ints"):
        array = np.array(value, dtype=np.float32 if key == "value_floats" else np.int64)
    else:
        raise OnnxImportError(
            f"{where}: Constant attribute {key!r} is not supported (value, value_float(s), value_int(s))"
        )
    array = np.asarray(array)
    ttype = TensorType(DType.from_numpy(array.dtype), tuple(int(d) for d in array.shape))
    return Constant(proto.output[0], ttype, data=array, is_parameter=False)


def _constant_from_tensor(tensor: TensorProto, base: Path, is_parameter: bool) -> Constant:
    try:
        dtype = DType.from_onnx(tensor.data_type)
    except ValueError as exc:
        raise OnnxImportError(f"initializer {tensor.name!r}: {exc}") from None
    ttype = TensorType(dtype, tuple(int(d) for d in tensor.dims))
    if tensor.data_location == TensorProto.EXTERNAL:
        info = {entry.key: entry.value for entry in tensor.external_data}
        if "location" not in info:
            raise OnnxImportError(f"initializer {tensor.name!r}: external data without a location")
        location = ExternalLocation(
            path=base / info["location"],
            offset=int(info.get("offset", 0)),
            length=int(info["length"]) if "length" in info else None,
        )
        return Constant(tensor.name, ttype, location=location, is_parameter=is_parameter and dtype.is_float)
    return Constant(tensor.name, ttype, data=numpy_helper.to_array(tensor),
                    is_parameter=is_parameter and dtype.is_float)


def _value_type(value: onnx.ValueInfoProto, origin: str) -> TensorType:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise OnnxImportError(f"{origin}: graph input {value.name!r} has type {kind}; only tensors are supported")
    tensor_type = value.type.tensor_type
    try:
        dtype = DType.from_onnx(tensor_type.elem_type)
    except ValueError as exc:
        raise OnnxImportError(f"{origin}: graph input {value.name!r}: {exc}") from None
    if not tensor_type.HasField("shape"):
        raise OnnxImportError(f"{origin}: graph input {value.name!r} has no shape (rank must be known)")
    dims: list[Dim] = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(parse_dim(dim.dim_param))
        else:
            dims.append(symbol(f"{value.name}_d{axis}".replace(".", "_")))
    return TensorType(dtype, tuple(dims))
