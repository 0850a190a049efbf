"""Op-test drivers: a one-node ONNX model on onnxruntime beside the op's own `infer` and `run`.

`against_ort(...)` runs both, checks that the type rule predicted the dtype and shape of every
output, and that the numpy definition agrees with onnxruntime. `run_op(...)` is the first half alone
(no onnxruntime, for types it lacks); `fold(...)` runs a symbolic op on
object arrays of dims as the shape folder does; `infer(...)` calls a type rule alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import pytest
from onnx import ValueInfoProto, helper, numpy_helper

from compiler.ir import DType, Node, Op, TensorType
from compiler.ops.registry import InferContext, opdef


def make_node(
    op_type: str,
    inputs: Sequence[object],
    attrs: dict | None,
    outputs: int,
    output_types: Sequence[TensorType] | None = None,
) -> Node:
    names = tuple(f"x{i}" if v is not None else "" for i, v in enumerate(inputs))
    types = tuple(output_types) if output_types is not None else (TensorType(DType.FLOAT32, ()),) * outputs
    return Node("node", Op(op_type), names, tuple(f"y{i}" for i in range(outputs)), types, attrs or {})


def infer_types(
    op_type: str,
    types: Sequence[TensorType | None],
    values: Sequence[np.ndarray | None],
    attrs: dict | None = None,
    outputs: int = 1,
) -> list[TensorType]:
    node = make_node(op_type, list(types), attrs, outputs)
    return list(opdef(node.op).infer(InferContext(node, list(types), list(values))))


def _type_of(value: np.ndarray) -> TensorType:
    return TensorType(DType.from_numpy(value.dtype), tuple(value.shape))


def run_tessera(
    op_type: str,
    inputs: Sequence[np.ndarray | None],
    attrs: dict | None = None,
    outputs: int = 1,
    known: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Infer, run, and check the inferred types against the arrays the run produced.

    The type rule sees the values of the inputs in `known`: by default the integer and scalar
    operands, which an exported graph holds as constants or folded shape arithmetic.
    """
    if known is None:
        known = [i for i, v in enumerate(inputs) if v is not None and (v.dtype.kind in "iu" or v.ndim == 0)]
    types = [_type_of(v) if v is not None else None for v in inputs]
    values = [v if i in known else None for i, v in enumerate(inputs)]
    out_types = infer_types(op_type, types, values, attrs, outputs)
    node = make_node(op_type, inputs, attrs, outputs, out_types)
    results = [np.asarray(r) for r in opdef(node.op).run(node, list(inputs))]
    for result, predicted in zip(results, out_types, strict=True):
        assert predicted == _type_of(result), f"infer said {predicted}, run gave {_type_of(result)}"
    return results


def fold_op(
    op_type: str, inputs: Sequence[np.ndarray], attrs: dict | None = None, outputs: int = 1
) -> list[np.ndarray]:
    """Run a symbolic op the way the shape folder does: on object arrays of dims, no infer."""
    node = make_node(op_type, inputs, attrs, outputs)
    definition = opdef(node.op)
    assert definition.symbolic, f"{op_type} is not marked symbolic"
    return [np.asarray(r) for r in definition.run(node, list(inputs))]


def run_ort(
    op_type: str, inputs: Sequence[np.ndarray | None], attrs: dict | None = None, outputs: int = 1, opset: int = 18
) -> list[np.ndarray]:
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    # tensor attributes (ConstantOfShape's value) travel as TensorProto
    attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in (attrs or {}).items()}
    node = helper.make_node(op_type, names, [f"y{i}" for i in range(outputs)], **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for n, v in zip(names, inputs, strict=True)
        if v is not None
    ]
    graph_outputs = [ValueInfoProto(name=f"y{i}") for i in range(outputs)]  # onnxruntime infers the types
    graph = helper.make_graph([node], "one_node", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: v for n, v in zip(names, inputs, strict=True) if v is not None}
    return session.run(None, feeds)


def check_against_ort(
    op_type: str,
    inputs: Sequence[np.ndarray | None],
    attrs: dict | None = None,
    outputs: int = 1,
    opset: int = 18,
    rtol: float = 1e-5,
) -> list[np.ndarray]:
    ours = run_tessera(op_type, inputs, attrs, outputs)
    theirs = run_ort(op_type, inputs, attrs, outputs, opset)
    for got, want in zip(ours, theirs, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape, (
            f"{got.dtype}{got.shape} vs {want.dtype}{want.shape}"
        )
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)
    return ours


@pytest.fixture
def against_ort():
    return check_against_ort


@pytest.fixture
def run_op():
    return run_tessera


@pytest.fixture
def infer():
    return infer_types


@pytest.fixture
def fold():
    return fold_op
