"""Elementwise ops on values: small ONNX graphs (arithmetic, comparisons, boolean logic, Where,
casts, integer division, non-trailing reductions) with numpy-broadcast operands, lowered for the
fp32 chip, run by the functional simulator, against the IR interpreter on the same inputs.
Floats to float32 rounding (Div is a * (1 / b)), integers and bools exactly.

Each case runs with its operands in HBM (graph inputs and outputs: streamed through SRAM slots)
and in SRAM (each input first passes through a neutral op: x * 1, or b | false for bools, and
the result through one more), so both paths of vector_steps.run_steps are checked.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from value_runs import chip_with_sram, fp32_chip, fp32_options, run_program

from compiler.frontend import import_onnx
from compiler.interp.run import run_graph
from compiler.targets.programmable.isa import Precision, Vector, Vector2D, VectorOp
from compiler.targets.programmable.lower import lower_graph
from simulator.hardware import load_hardware
from simulator.programmable.costs.vector import vector_cycles
from simulator.programmable.plan import Plan

F32, I64, I32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
_ELEM = {np.float32: F32, np.int64: I64, np.int32: I32, np.bool_: BOOL}
_NEUTRAL = {F32: ("Mul", np.float32(1)), I64: ("Mul", np.int64(1)), I32: ("Mul", np.int32(1)),
            BOOL: ("Or", np.bool_(False))}
RTOL = 1e-6  # float32 rounding; Div is a * (1 / b)


@dataclasses.dataclass
class Case:
    """Nodes over graph inputs `inputs` (name -> array) producing `outputs` (name -> ONNX type)."""

    nodes: list[onnx.NodeProto]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, int]


def _model(case: Case, in_sram: bool) -> onnx.ModelProto:
    nodes, inits = [], []
    rename = {}
    if in_sram:  # inputs and outputs pass through a neutral op: the case's own nodes run in SRAM
        for name, array in case.inputs.items():
            op, unit = _NEUTRAL[_ELEM[array.dtype.type]]
            inits.append(numpy_helper.from_array(np.array(unit), f"{name}_unit"))
            nodes.append(helper.make_node(op, [name, f"{name}_unit"], [f"{name}_sram"]))
            rename[name] = f"{name}_sram"
    for name in case.outputs:
        rename.setdefault(name, f"{name}_sram" if in_sram else name)
    for node in case.nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename.get(v, v) for v in node.input]
        copy.output[:] = [rename.get(v, v) for v in node.output]
        nodes.append(copy)
    if in_sram:
        for name, elem in case.outputs.items():
            op, unit = _NEUTRAL[elem]
            inits.append(numpy_helper.from_array(np.array(unit), f"{name}_unit"))
            nodes.append(helper.make_node(op, [f"{name}_sram", f"{name}_unit"], [name]))
    inputs = [helper.make_tensor_value_info(n, _ELEM[a.dtype.type], list(a.shape)) for n, a in case.inputs.items()]
    outputs = [helper.make_tensor_value_info(n, elem, None) for n, elem in case.outputs.items()]
    graph = helper.make_graph(nodes, "vector", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def sram_chip(kib: int):
    """The fp32 chip with `kib` KiB of SRAM (8 MiB keeps the memory images small and fast)."""
    return chip_with_sram(kib << 10)


def run_case(case: Case, in_sram: bool, chip=None):
    graph = import_onnx(_model(case, in_sram))
    chip = chip or sram_chip(8 << 10)
    program = lower_graph(graph, chip, fp32_options(1, {}))
    assert program.meta["isa_gaps"] == {} and program.meta["not_value_exact"] == []
    _, got = run_program(program, graph, case.inputs, chip)
    expected = run_graph(graph, case.inputs)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=0, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    return program


def _floats(shape, seed: int, low: float = -3.0, high: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _ints(shape, seed: int, low: int = -4, high: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.int64)


def _binary(op: str, a: np.ndarray, b: np.ndarray, out_type: int, **attrs) -> Case:
    return Case([helper.make_node(op, ["a", "b"], ["y"], **attrs)], {"a": a, "b": b}, {"y": out_type})


PLACES = [pytest.param(False, id="hbm"), pytest.param(True, id="sram")]
# (a shape, b shape): a row repeated, a 3-D broadcast of both operands, a scalar, column x row
SHAPES = [((2, 1, 3, 4), (4,)), ((1, 5, 1), (3, 1, 2)), ((3, 4), ()), ((4, 1), (1, 6))]


# ---- arithmetic --------------------------------------------------------------------------------

@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_float_arithmetic_broadcasts(op, shapes, in_sram):
    a, b = _floats(shapes[0], 1), _floats(shapes[1], 2, 0.5, 2.0)
    program = run_case(_binary(op, a, b, F32), in_sram)
    if shapes == ((1, 5, 1), (3, 1, 2)) and not in_sram:   # neither operand covers the output: strided grids
        assert any(isinstance(i, Vector2D) for i in program.instructions)


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Max", "Min"])
def test_int64_arithmetic_past_int32(op, in_sram):
    """Values near 3e9 and products near 1e18: an int32 lane would wrap, int64 lanes do not (and
    wrap where int64 does: the interpreter's numpy int64 wraps the same way)."""
    a = np.array([[3_000_000_000], [-3_000_000_000], [7], [2**62 + 5]], np.int64)      # [4, 1]
    b = np.array([2_900_000_000, -5, 1_000_000_007], np.int64)                        # [3]
    program = run_case(_binary(op, a, b, I64), in_sram)
    assert any(isinstance(i, (Vector, Vector2D)) and i.precision is Precision.INT64 for i in program.instructions)


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("op, attrs", [("Div", {}), ("Mod", {"fmod": 0}), ("Mod", {"fmod": 1})],
                         ids=["div", "mod", "fmod"])
def test_integer_division_signs(op, attrs, in_sram):
    """ONNX integer Div truncates toward zero; Mod fmod=0 takes the divisor's sign, fmod=1 the
    dividend's. Every sign pair, exact multiples and a dividend beyond int32."""
    a = np.array([[7], [-7], [6], [-6], [0], [5_000_000_001]], np.int64)    # [6, 1]
    b = np.array([2, -2, 3, -3, 1_000_000_007], np.int64)                   # [5]
    run_case(_binary(op, a, b, I64, **attrs), in_sram)


# ---- comparisons, logic, tests, Where -----------------------------------------------------------

@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons_write_bools(op, dtype, in_sram):
    a = _ints((2, 1, 3, 4), 3, -2, 3).astype(dtype)     # small integers: many ties
    b = _ints((4,), 4, -2, 3).astype(dtype)
    run_case(_binary(op, a, b, BOOL), in_sram)


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_boolean_logic_broadcasts(op, in_sram):
    rng = np.random.default_rng(5)
    run_case(_binary(op, rng.integers(0, 2, (1, 5, 1)).astype(bool), rng.integers(0, 2, (3, 1, 2)).astype(bool),
                     BOOL), in_sram)


@pytest.mark.parametrize("in_sram", PLACES)
def test_not_and_float_tests(in_sram):
    x = np.array([[0.0, -1.5, np.inf, -np.inf], [np.nan, 2.0, -0.0, 3e38]], np.float32)
    nodes = [helper.make_node("Not", ["b"], ["not_b"]), helper.make_node("IsNaN", ["x"], ["nan"]),
             helper.make_node("IsInf", ["x"], ["inf"]),
             helper.make_node("IsInf", ["x"], ["pos"], detect_negative=0),
             helper.make_node("IsInf", ["x"], ["neg"], detect_positive=0)]
    b = np.array([[True, False, True], [False, False, True]])
    run_case(Case(nodes, {"x": x, "b": b}, {"not_b": BOOL, "nan": BOOL, "inf": BOOL, "pos": BOOL, "neg": BOOL}),
             in_sram)


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("branch", [np.float32, np.int64])
def test_where_broadcasts_condition_and_branches(branch, in_sram):
    """The condition [4, 1], one branch [1, 3], the other a scalar: each read through its strides."""
    rng = np.random.default_rng(6)
    cond = rng.integers(0, 2, (4, 1)).astype(bool)
    x = (rng.standard_normal((1, 3)) * 100).astype(branch)
    y = np.array(-7, branch)
    case = Case([helper.make_node("Where", ["c", "x", "y"], ["out"])], {"c": cond, "x": x, "y": y},
                {"out": F32 if branch is np.float32 else I64})
    run_case(case, in_sram)


# ---- casts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("source, target", [
    (np.int64, F32), (np.float32, I64), (np.float32, I32), (np.bool_, F32), (np.float32, BOOL),
    (np.int64, BOOL), (np.bool_, I64), (np.int64, I32),
], ids=lambda v: str(getattr(v, "__name__", v)))
def test_casts(source, target, in_sram):
    """Float to integer truncates toward zero; to bool is x != 0 (NaN and infinities are true);
    int64 to int32 wraps."""
    if source is np.float32:
        x = np.array([[-2.7, -0.5, 0.0, 0.5], [2.7, 1e9, -1e9, 3.0]], np.float32)
        if target == BOOL:
            x[0, 1], x[1, 2] = np.nan, np.inf
    elif source is np.int64:
        x = np.array([[0, -1, 2**33 + 5, 1_000_000], [-(2**40), 7, 2**31, -(2**31) - 1]], np.int64)
    else:
        x = np.array([[True, False, True, True], [False, False, True, False]])
    run_case(Case([helper.make_node("Cast", ["x"], ["y"], to=target)], {"x": x}, {"y": target}), in_sram)


# ---- views, reductions, streaming ------------------------------------------------------------------

def _expand_then_reshape(source: tuple[int, ...], view: tuple[int, ...]) -> Case:
    """x (source) expanded to [2, 3, 4] (a view with stride 0, no copy), reshaped to `view`, + z."""
    shape = helper.make_tensor("shape", I64, [3], [2, 3, 4])
    target = helper.make_tensor("target", I64, [len(view)], list(view))
    nodes = [helper.make_node("Constant", [], ["s"], value=shape),
             helper.make_node("Constant", [], ["t"], value=target),
             helper.make_node("Expand", ["x", "s"], ["e"]), helper.make_node("Reshape", ["e", "t"], ["r"]),
             helper.make_node("Add", ["r", "z"], ["y"])]
    return Case(nodes, {"x": _floats(source, 7), "z": _floats(view, 8)}, {"y": F32})


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("source, view", [((3, 1), (2, 3, 2, 2)), ((1, 4), (6, 4))], ids=str)
def test_expand_views_are_read_through_their_strides(source, view, in_sram):
    """The Add's operand is traced back through the Reshape and the Expand to the bytes of x."""
    run_case(_expand_then_reshape(source, view), in_sram)


def test_a_view_strides_cannot_express_is_recorded():
    """[3, 1] expanded to [2, 3, 4] and read as [6, 4]: row i is x[i % 3], not a stride: an ISA gap."""
    graph = import_onnx(_model(_expand_then_reshape((3, 1), (6, 4)), False))
    program = lower_graph(graph, sram_chip(8 << 10), fp32_options(1, {}))
    assert "VECTOR broadcast operand" in program.meta["isa_gaps"]


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions_over_middle_axes(op, keepdims):
    axes = helper.make_tensor("axes", I64, [2], [1, 2])
    nodes = [helper.make_node("Constant", [], ["ax"], value=axes),
             helper.make_node(op, ["x", "ax"], ["y"], keepdims=keepdims)]
    program = run_case(Case(nodes, {"x": _floats((2, 3, 4, 5), 9)}, {"y": F32}), in_sram=True)
    # 12 slices halved in pairs (12, 6, 3 with its middle slice carried, 2, 1): no transpose, no
    # trailing-axis REDUCE, at most two grids per level
    assert not any(isinstance(i, Vector) and i.op in (VectorOp.REDUCE_SUM, VectorOp.REDUCE_MAX)
                   for i in program.instructions)
    assert len([i for i in program.instructions if isinstance(i, Vector2D) and i.rows == 2]) <= 2 * 4


def test_streamed_operands_in_several_chunks():
    """256 KiB of SRAM, a [96, 512] output: the full operand and the per-row one stream in chunks,
    the row vector is held, the bool condition is converted chunk by chunk."""
    rng = np.random.default_rng(10)
    x, per_row, row = _floats((96, 512), 11), _floats((96, 1), 12), _floats((512,), 13)
    cond = rng.integers(0, 2, (96, 512)).astype(bool)
    nodes = [helper.make_node("Mul", ["x", "per_row"], ["m"]), helper.make_node("Add", ["m", "row"], ["y"]),
             helper.make_node("Where", ["c", "x", "row"], ["w"])]
    case = Case(nodes, {"x": x, "per_row": per_row, "row": row, "c": cond}, {"y": F32, "w": F32})
    program = run_case(case, in_sram=False, chip=sram_chip(256))
    stores = [i for i in program.instructions if type(i).__name__ == "DmaStore"]
    assert len(stores) > 2     # several chunks per output


def test_three_axis_broadcast_streams():
    """[8, 1, 64] + [1, 16, 64]: no two axes merge; the first operand streams in chunks of its
    rows, the second is held, each chunk is VECTOR_2D grids over rows of 64."""
    case = _binary("Add", _floats((8, 1, 64), 14), _floats((1, 16, 64), 15), F32)
    program = run_case(case, in_sram=False, chip=sram_chip(64))
    grids = [i for i in program.instructions if isinstance(i, Vector2D)]
    stores = [i for i in program.instructions if type(i).__name__ == "DmaStore"]
    assert grids and all(i.cols == 64 for i in grids) and len(stores) > 1


def test_long_rows_chunk_across_every_outer_index():
    """[8, 3000] repeated twice plus [2, 1, 3000]: rows longer than a chunk may hold (256 KiB of
    SRAM), so chunks cut the columns and cover every (i, j) of the [2, 8] before them; x is
    fetched once per chunk for both i (8 rows, one DMA), the output stored 16 rows at a time."""
    case = _binary("Add", _floats((8, 3000), 18), _floats((2, 1, 3000), 19), F32)
    program = run_case(case, in_sram=False, chip=sram_chip(256))
    loads = [i for i in program.instructions if type(i).__name__ == "DmaLoad" and i.rows == 8]
    stores = [i for i in program.instructions if type(i).__name__ == "DmaStore" and i.rows == 16]
    assert loads and stores


# ---- costs ----------------------------------------------------------------------------------------

def test_int64_lanes_cost_two_int32_ops():
    chip = load_hardware("matx-one")
    latency = chip.vector.pipeline_latency_cycles
    n = chip.vector.lanes * 64
    for op in (VectorOp.ADD, VectorOp.CMP_LT, VectorOp.SELECT):
        assert vector_cycles(chip, op, n, Precision.INT64) - latency == 2 * (vector_cycles(chip, op, n) - latency)
    assert vector_cycles(chip, VectorOp.MUL, n, Precision.INT64) > vector_cycles(chip, VectorOp.ADD, n, Precision.INT64)
    assert (vector_cycles(chip, VectorOp.IDIV, n, Precision.INT64) > vector_cycles(chip, VectorOp.IDIV, n)
            > vector_cycles(chip, VectorOp.MUL, n))


def test_int64_program_times_its_lanes():
    """The timing engine charges an int64 add twice an int32 one of the same length."""
    chip = fp32_chip()
    cycles = []
    for dtype, elem in ((np.int32, I32), (np.int64, I64)):
        case = _binary("Add", _ints((64, 256), 16).astype(dtype), _ints((256,), 17).astype(dtype), elem)
        program = lower_graph(import_onnx(_model(case, in_sram=True)), chip, fp32_options(1, {}))
        plan = Plan(program, chip)
        adds = [pc for pc, i in enumerate(program.instructions)
                if isinstance(i, (Vector, Vector2D)) and i.op is VectorOp.ADD and i.length == 64 * 256]
        assert len(adds) == 1
        cycles.append(plan.costs[adds[0]].duration_s * chip.clock_hz - chip.vector.pipeline_latency_cycles)
    assert cycles[1] == pytest.approx(2 * cycles[0])
