"""The IR graph: building, topological order, value lookup, verifier, printer."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import Constant, DType, Graph, GraphError, Node, Op, TensorType, parse_dim, symbol
from compiler.ir.printer import format_graph
from compiler.ir.shapes import dims_equal, evaluate, shape_str
from compiler.ir.verify import VerificationError, verify

F32 = DType.FLOAT32


def small_graph() -> Graph:
    g = Graph("small")
    batch = symbol("batch")
    g.add_input("x", TensorType(F32, (batch, 4)))
    g.add_constant(Constant("w", TensorType(F32, (4, 2)), data=np.ones((4, 2), np.float32)))
    g.add_node(Node("mm", Op.MATMUL, ("x", "w"), ("y",), (TensorType(F32, (batch, 2)),)))
    g.add_node(Node("act", Op.TANH, ("y",), ("z",), (TensorType(F32, (batch, 2)),)))
    g.outputs = ["z"]
    return g


def test_nodes_are_frozen_records():
    node = small_graph().node("mm")
    with pytest.raises(AttributeError):
        node.op = Op.ADD  # type: ignore[misc]
    with pytest.raises(TypeError):
        node.attrs["k"] = 1  # type: ignore[index]


def test_topological_order_is_deterministic_even_when_built_out_of_order():
    g = Graph("g")
    g.add_input("a", TensorType(F32, (2,)))
    g.add_node(Node("second", Op.NEG, ("b",), ("c",), (TensorType(F32, (2,)),)))
    g.add_node(Node("first", Op.ABS, ("a",), ("b",), (TensorType(F32, (2,)),)))
    g.outputs = ["c"]
    assert [n.name for n in g.nodes()] == ["first", "second"]
    assert g.dg.has_edge("first", "second")
    verify(g)


def test_duplicate_values_are_rejected():
    g = small_graph()
    with pytest.raises(GraphError, match="defined twice"):
        g.add_node(Node("again", Op.NEG, ("x",), ("y",), (TensorType(F32, (2,)),)))


def test_type_of_and_consumers():
    g = small_graph()
    assert str(g.type_of("y")) == "float32[batch,2]"
    assert [n.name for n in g.consumers("y")] == ["act"]
    assert g.producer("z").name == "act"
    with pytest.raises(GraphError, match="not defined"):
        g.type_of("nope")


def test_verifier_reports_undefined_inputs_and_outputs():
    g = small_graph()
    g.add_node(Node("dangling", Op.NEG, ("missing",), ("q",), (TensorType(F32, (2,)),)))
    g.outputs.append("nowhere")
    with pytest.raises(VerificationError) as err:
        verify(g)
    assert "input 'missing' is undefined" in str(err.value)
    assert "graph output 'nowhere' is undefined" in str(err.value)


def test_described_only_constant_needs_a_location():
    with pytest.raises(ValueError, match="neither data nor an external location"):
        Constant("w", TensorType(F32, (2, 2)))


def test_printer_golden():
    assert format_graph(small_graph()) == (
        "graph small (opset 18) {\n"
        "  input x: float32[batch,4]\n"
        "  param w: float32[4,2] = float32[4,2]{1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}\n"
        "  y: float32[batch,2] = MatMul(x, w)  # mm\n"
        "  z: float32[batch,2] = Tanh(y)  # act\n"
        "  return z\n"
        "}\n"
    )


def test_symbolic_dims_parse_and_evaluate():
    dim = parse_dim("past_len + 1")
    assert dims_equal(dim, symbol("past_len") + 1)
    assert evaluate(dim, {"past_len": 7}) == 8
    assert shape_str((symbol("batch"), parse_dim("past_len+seq"), 128)) == "[batch,past_len+seq,128]"
    assert parse_dim("weird-name!") == symbol("weird_name_")


def test_dtype_sizes():
    assert DType.BFLOAT16.bytes_for(10) == 20
    assert DType.INT4.bytes_for(10) == 5
    assert DType.from_onnx(16) == DType.BFLOAT16
    with pytest.raises(ValueError, match="unsupported ONNX element type"):
        DType.from_onnx(999)
