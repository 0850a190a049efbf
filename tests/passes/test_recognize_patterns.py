"""Recognition on small hand-written graphs: the forms that match, and the near misses that must
be left alone (a rewrite there would change what the graph computes)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.frontend import import_onnx
from compiler.interp import run_graph
from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.ops.attention import run_attention
from compiler.ops.registry import InferContext, opdef
from compiler.passes.pipeline import recognize

B, HQ, HKV, S, D = 2, 4, 2, 5, 8
Q_SHAPE, K_SHAPE = [B, HQ, S, D], [B, HKV, S, D]


def model(nodes, inputs, outputs, constants) -> onnx.ModelProto:
    """A float32 opset-18 model; `constants` (name -> array) become Constant nodes."""
    const_nodes = [
        helper.make_node("Constant", [], [n], value=numpy_helper.from_array(np.asarray(a), n + ":v"))
        for n, a in constants.items()
    ]
    graph = helper.make_graph(
        const_nodes + nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run_before_after(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]):
    graph = import_onnx(proto)
    before = run_graph(graph, feeds)
    graph = recognize(graph)
    after = run_graph(graph, feeds, check_types=True)
    for key, want in before.items():
        np.testing.assert_allclose(after[key], want, rtol=1e-5, atol=1e-5)
    return graph


def feeds_for(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}


def attention_model(score_nodes, extra_inputs=None, outputs=("y",), constants=None, scores_in="s"):
    """Q [B,Hq,S,D], K/V [B,Hkv,S,D] with repeat_kv; `score_nodes` turn "qk" into `scores_in`."""
    nodes = []
    for name in ("k", "v"):
        nodes += [
            helper.make_node("Unsqueeze", [name, "axis2"], [f"{name}_u"]),
            helper.make_node("Expand", [f"{name}_u", "rep"], [f"{name}_e"]),
            helper.make_node("Reshape", [f"{name}_e", "heads"], [f"{name}_r"]),
        ]
    nodes += [
        helper.make_node("Transpose", ["k_r"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"]),
        *score_nodes,
        helper.make_node("Softmax", [scores_in], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v_r"], ["y"]),
    ]
    consts = {"axis2": np.array([2]), "rep": np.array([1, 1, HQ // HKV, 1, 1]), "heads": np.array([B, HQ, S, D])}
    consts.update(constants or {})
    inputs = {"q": Q_SHAPE, "k": K_SHAPE, "v": K_SHAPE, **(extra_inputs or {})}
    return model(nodes, inputs, list(outputs), consts)


def test_scaled_masked_attention_matches():
    proto = attention_model(
        [helper.make_node("Div", ["qk", "c"], ["qs"]), helper.make_node("Add", ["m", "qs"], ["s"])],
        extra_inputs={"m": [S, S]}, constants={"c": np.array(2.0, np.float32)},
    )
    graph = run_before_after(proto, feeds_for({"q": Q_SHAPE, "k": K_SHAPE, "v": K_SHAPE, "m": [S, S]}))
    (node,) = [n for n in graph.nodes() if n.op == Op.ATTENTION]
    assert node.inputs[:4] == ("q", "k", "v", "m") and node.attr("scale") == 0.5
    assert node.attr("tessera_mask") == "bias"  # a float input added to the scores


def test_where_masks_become_bool_masks():
    keep = [helper.make_node("Where", ["keep", "qk", "ninf"], ["s"])]
    drop = [helper.make_node("Where", ["keep", "ninf", "qk"], ["s"])]
    rng = np.random.default_rng(1)
    for nodes, op in ((keep, None), (drop, Op.NOT)):
        proto = attention_model(nodes, extra_inputs={"keep": [S, S]}, constants={"ninf": np.array(-np.inf, np.float32)})
        proto.graph.input[-1].type.tensor_type.elem_type = TensorProto.BOOL
        feeds = feeds_for({"q": Q_SHAPE, "k": K_SHAPE, "v": K_SHAPE})
        feeds["keep"] = rng.random((S, S)) < 0.7
        feeds["keep"][:, 0] = op is None  # every row sees a key: softmax of an all -inf row is NaN
        graph = run_before_after(proto, feeds)
        (node,) = [n for n in graph.nodes() if n.op == Op.ATTENTION]
        assert node.attr("tessera_mask") == "padding"
        assert op is None or graph.producer(node.inputs[3]).op == op


@pytest.mark.parametrize("case", ["scale-after-mask", "probs-read-elsewhere", "mask-spans-one-key"])
def test_attention_near_misses_are_left_alone(case):
    consts = {"c": np.array(0.5, np.float32)}
    if case == "scale-after-mask":  # (qk + m) * c also scales the mask: not Attention's scale
        nodes, extra = [helper.make_node("Add", ["qk", "m"], ["a"]), helper.make_node("Mul", ["a", "c"], ["s"])], {
            "m": [S, S]}
        outputs = ("y",)
    elif case == "probs-read-elsewhere":  # fusing would compute the scores twice
        nodes, extra, outputs = [helper.make_node("Mul", ["qk", "c"], ["s"])], {}, ("y", "p")
    else:  # a per-row bias [S, 1]: Attention would pad it with "masked" keys
        nodes, extra = [helper.make_node("Add", ["qk", "m"], ["s"])], {"m": [S, 1]}
        outputs = ("y",)
    proto = attention_model(nodes, extra_inputs=extra, outputs=outputs, constants=consts)
    graph = run_before_after(proto, feeds_for({"q": Q_SHAPE, "k": K_SHAPE, "v": K_SHAPE, **extra}))
    assert "Attention" not in graph.op_counts() and graph.op_counts()["Softmax"] == 1


def rope_model(cos_from_input: bool) -> tuple[onnx.ModelProto, dict[str, list[int]]]:
    h = D // 2
    nodes = [
        helper.make_node("Slice", ["x", "zero", "half", "last"], ["x1"]),
        helper.make_node("Slice", ["x", "half", "end", "last"], ["x2"]),
        helper.make_node("Neg", ["x2"], ["nx2"]),
        helper.make_node("Concat", ["nx2", "x1"], ["rot"], axis=-1),
        helper.make_node("Mul", ["x", "cos"], ["xc"]),
        helper.make_node("Mul", ["rot", "sin"], ["rs"]),
        helper.make_node("Add", ["xc", "rs"], ["y"]),
    ]
    shapes = {"x": Q_SHAPE}
    if cos_from_input:
        shapes.update({"cos": [1, 1, S, D], "sin": [1, 1, S, D]})
    else:
        nodes = [helper.make_node("Concat", ["f", "f"], ["ff"], axis=-1),
                 helper.make_node("Unsqueeze", ["ff", "axis1"], ["fu"]),
                 helper.make_node("Cos", ["fu"], ["cos"]), helper.make_node("Sin", ["fu"], ["sin"])] + nodes
        shapes["f"] = [B, S, h]
    consts = {"zero": np.array([0]), "half": np.array([h]), "end": np.array([D]), "last": np.array([-1]),
              "axis1": np.array([1])}
    return model(nodes, shapes, ["y"], consts), shapes


def test_rope_with_duplicated_frequencies_matches():
    proto, shapes = rope_model(cos_from_input=False)
    graph = run_before_after(proto, feeds_for(shapes))
    assert graph.op_counts().get("RotaryEmbedding") == 1 and "Neg" not in graph.op_counts()


def test_rope_with_opaque_tables_is_left_alone():
    """cos/sin given as inputs: nothing proves their halves equal, so no RotaryEmbedding."""
    proto, shapes = rope_model(cos_from_input=True)
    graph = run_before_after(proto, feeds_for(shapes))
    assert "RotaryEmbedding" not in graph.op_counts()


def rms_model(axis: int, variance_is_output: bool) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["x2"]),
        helper.make_node("ReduceMean", ["x2", "axes"], ["var"], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["rms"]),
        helper.make_node("Div", ["x", "rms"], ["n"]),
        helper.make_node("Mul", ["n", "w"], ["y"]),
    ]
    consts = {"two": np.array(2.0, np.float32), "axes": np.array([axis]), "eps": np.array(1e-6, np.float32),
              "w": np.linspace(0.5, 1.5, D).astype(np.float32)}
    return model(nodes, {"x": [B, S, D]}, ["y", "var"] if variance_is_output else ["y"], consts)


@pytest.mark.parametrize(("axis", "variance_is_output", "fused"), [(-1, False, 1), (1, False, 0), (-1, True, 0)])
def test_rmsnorm_forms(axis, variance_is_output, fused):
    graph = run_before_after(rms_model(axis, variance_is_output), feeds_for({"x": [B, S, D]}))
    assert graph.op_counts().get("RMSNormalization", 0) == fused


def test_attention_semantics_ignore_tessera_attributes():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in (Q_SHAPE, K_SHAPE, K_SHAPE))
    y_type = (TensorType(DType.FLOAT32, tuple(Q_SHAPE)),)
    plain = {"scale": 0.3}
    tagged = {**plain, "tessera_mask": "sliding_window", "tessera_window": 2, "tessera_mask_parts": ("causal",)}
    nodes = [Node("a", Op.ATTENTION, ("q", "k", "v"), ("y",), y_type, attrs) for attrs in (plain, tagged)]
    outputs = [run_attention(node, [q, k, v])[0] for node in nodes]
    assert np.array_equal(outputs[0], outputs[1])
    types = [TensorType(DType.FLOAT32, tuple(s)) for s in (Q_SHAPE, K_SHAPE, K_SHAPE)]
    inferred = [opdef(Op.ATTENTION).infer(InferContext(node, list(types), [None] * 3)) for node in nodes]
    assert inferred[0] == inferred[1]
