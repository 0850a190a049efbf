"""ONNX import: described-only weights, symbolic shape folding, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.frontend import OnnxImportError, import_onnx
from compiler.interp import InterpreterError, run_graph
from compiler.ir import Op
from compiler.ir.verify import verify


def make_model(nodes, inputs, outputs, initializers=(), opset=18, domain=""):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)])


def reshape_heads_model():
    """x[batch, seq, 8] -> [batch, seq, 2, 4] via the Shape/Gather/Concat chain exporters emit."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        helper.make_node("Gather", ["shape", "one"], ["s"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Unsqueeze", ["s", "axes0"], ["s1"]),
        helper.make_node("Concat", ["b1", "s1", "heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
        numpy_helper.from_array(np.array([2, 4], np.int64), "heads"),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 2, 4])],
        inits,
    )


def test_symbolic_shape_arithmetic_gives_exact_reshape_type():
    graph = import_onnx(reshape_heads_model())
    verify(graph)
    assert str(graph.type_of("y")) == "float32[batch,seq,2,4]"
    x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    out = run_graph(graph, {"x": x}, check_types=True)
    np.testing.assert_array_equal(out["y"], x.reshape(2, 3, 2, 4))


def test_static_shapes_fold_away_entirely():
    model = reshape_heads_model()
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8]))
    graph = import_onnx(model)
    assert graph.op_counts() == {"Reshape": 1}


def test_described_only_weights_import_without_reading(tmp_path):
    weight = TensorProto(name="w", data_type=TensorProto.BFLOAT16, dims=[4096, 4096])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "absent.bin"), ("offset", "0"), ("length", str(4096 * 4096 * 2))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["seq", 4096])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["seq", 4096])],
        [weight],
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    graph = import_onnx(path)
    const = graph.constants["w"]
    assert not const.is_materialized
    assert const.location.path == tmp_path / "absent.bin"
    assert const.type.nbytes == 4096 * 4096 * 2
    with pytest.raises(Exception, match="described only"):
        run_graph(graph, {"x": np.zeros((1, 4096), dtype=const.type.dtype.numpy)})


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    with pytest.raises(OnnxImportError, match="junk.onnx"):
        import_onnx(path)


def test_unsupported_op_names_op_node_and_lists_supported():
    model = make_model(
        [helper.make_node("NonMaxSuppression", ["x", "x"], ["y"], name="nms_7")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 3])],
    )
    with pytest.raises(OnnxImportError) as err:
        import_onnx(model)
    message = str(err.value)
    assert "NonMaxSuppression" in message and "nms_7" in message and "MatMul" in message


def test_unreadable_opset():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        opset=6,
    )
    with pytest.raises(OnnxImportError, match="opset 6 is not supported"):
        import_onnx(model)


def test_foreign_domain_and_control_flow_are_rejected():
    foreign = make_model(
        [helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft", name="fm")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    foreign.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(OnnxImportError, match="domain 'com.microsoft'"):
        import_onnx(foreign)
    body = helper.make_graph([], "body", [], [])
    loop = make_model(
        [helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body, name="branch")],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(OnnxImportError, match="If"):
        import_onnx(loop)


def test_run_time_input_errors():
    graph = import_onnx(reshape_heads_model())
    with pytest.raises(InterpreterError, match="missing graph inputs: x"):
        run_graph(graph, {})
    with pytest.raises(InterpreterError, match="dtype float64"):
        run_graph(graph, {"x": np.zeros((2, 3, 8))})
    with pytest.raises(InterpreterError, match="axis 2 is 5"):
        run_graph(graph, {"x": np.zeros((2, 3, 5), np.float32)})


def test_symbol_bound_to_two_sizes():
    model = make_model(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["seq", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["seq", 4])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["seq", 4])],
    )
    graph = import_onnx(model)
    with pytest.raises(InterpreterError, match="bound to two different sizes"):
        run_graph(graph, {"a": np.zeros((3, 4), np.float32), "b": np.zeros((5, 4), np.float32)})


def test_dead_code_and_unused_constants_are_removed():
    model = make_model(
        [helper.make_node("Neg", ["x"], ["unused"]), helper.make_node("Abs", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(3, np.float32), "orphan")],
    )
    graph = import_onnx(model)
    assert [n.op for n in graph.nodes()] == [Op.ABS]
    assert "orphan" not in graph.constants
