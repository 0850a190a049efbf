"""Selection ops and gathers by index on values: small ONNX graphs (TopK, CumSum, Gather, ArgMax,
ReduceProd) lowered for the fp32 chip, run by the functional simulator, against the IR
interpreter on the same inputs. Indices must match exactly, selected values exactly (selection
computes nothing), sums and products to float32 rounding.

Each op runs with its operands in HBM (graph inputs and outputs: streamed through SRAM slots)
and in SRAM (wrapped in a multiply by one, indices cast to float), and on a chip with 64 KiB of
SRAM where not even one row fits and the axis goes a chunk of columns at a time.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from value_runs import chip_with_sram, fp32_options, run_program

from compiler.frontend import import_onnx
from compiler.interp.run import run_graph
from compiler.targets.programmable.isa import DmaGather, Vector, VectorGather, VectorOp
from compiler.targets.programmable.lower import lower_graph

F32, I64, I32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
_NUMPY = {F32: np.float32, I64: np.int64, I32: np.int32, BOOL: np.bool_}


@dataclasses.dataclass
class Case:
    """One op on graph inputs: `inputs` name -> array, `outputs` name -> ONNX type."""

    node: onnx.NodeProto
    inputs: dict[str, np.ndarray]
    outputs: dict[str, int]
    constants: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _model(case: Case, in_sram: bool) -> onnx.ModelProto:
    """The op alone (operands in HBM) or between multiplies by one (operands in SRAM); index
    outputs in SRAM are cast to float so that what follows them is a float op too."""
    nodes, inputs, outputs, inits = [], [], [], []
    one = helper.make_tensor("one", F32, [], [1.0])
    node = onnx.NodeProto()
    node.CopyFrom(case.node)
    for name, array in case.inputs.items():
        elem = {v: k for k, v in _NUMPY.items()}[array.dtype.type]
        inputs.append(helper.make_tensor_value_info(name, elem, list(array.shape)))
        if in_sram and elem == F32 and name == node.input[0]:
            nodes.append(helper.make_node("Mul", [name, "one"], [f"{name}_sram"]))
            node.input[0] = f"{name}_sram"
    for name, array in case.constants.items():
        inits.append(numpy_helper.from_array(array, name))
    nodes.append(node)
    for name, elem in case.outputs.items():
        if in_sram:
            inner = f"{name}_sram"
            node.output[list(node.output).index(name)] = inner
            if elem == F32:
                nodes.append(helper.make_node("Mul", [inner, "one"], [name]))
            else:
                nodes.append(helper.make_node("Cast", [inner], [name], to=F32))
            elem = F32
        outputs.append(helper.make_tensor_value_info(name, elem, None))
    graph = helper.make_graph(nodes, "select", inputs, outputs, initializer=inits + [one])
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
    return program, got, expected


def _exact(got, expected) -> None:
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def _ties(shape, seed: int) -> np.ndarray:
    """Small integers as float32: many equal values, so tie order is tested."""
    return np.random.default_rng(seed).integers(-3, 4, shape).astype(np.float32)


PLACES = [pytest.param(False, id="hbm"), pytest.param(True, id="sram")]


# ---- TopK ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_topk_values_and_indices_with_ties(k, largest, in_sram):
    x = _ties((3, 7), seed=k)
    case = Case(helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1, largest=largest, sorted=1),
                {"x": x}, {"values": F32, "indices": I64}, {"k": np.array([k], np.int64)})
    program, got, expected = run_case(case, in_sram)
    _exact(got, expected)
    topk = [i for i in program.instructions if isinstance(i, Vector) and i.op is VectorOp.TOPK]
    assert len(topk) == 1 and topk[0].imm == k and topk[0].row_len == 7


@pytest.mark.parametrize("k", [2, 5])
def test_topk_of_a_3d_tensor_writes_only_the_outputs_used(k):
    """Only the values feed the graph output here: no indices are written (TOPK_INDICES off)."""
    x = np.random.default_rng(7).standard_normal((2, 3, 5)).astype(np.float32)
    node = helper.make_node("TopK", ["x", "k"], ["values", "unused"], axis=2, largest=1, sorted=1)
    case = Case(node, {"x": x}, {"values": F32}, {"k": np.array([k], np.int64)})
    program, got, expected = run_case(case, in_sram=True)
    _exact(got, expected)
    (topk,) = [i for i in program.instructions if isinstance(i, Vector) and i.op is VectorOp.TOPK]
    assert topk.length == 30 and topk.shift & 4 == 0


# ---- CumSum --------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("exclusive, reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_cumsum_on_every_axis(axis, exclusive, reverse, in_sram):
    x = np.random.default_rng(axis + 10).standard_normal((3, 4, 5)).astype(np.float32)
    case = Case(helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse),
                {"x": x}, {"y": F32}, {"axis": np.array(axis, np.int64)})
    program, got, expected = run_case(case, in_sram)
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-6, atol=1e-6)
    scans = [i for i in program.instructions if isinstance(i, Vector) and i.op is VectorOp.SCAN_SUM]
    assert scans and all(i.row_len == x.shape[axis] for i in scans)


def test_cumsum_of_rows_too_large_for_sram_goes_a_chunk_of_columns_at_a_time():
    """64 KiB of SRAM: one outer row of [2, 4, 3000] along axis 1 is 48 kB in and 48 kB out."""
    x = np.random.default_rng(3).standard_normal((2, 4, 3000)).astype(np.float32)
    case = Case(helper.make_node("CumSum", ["x", "axis"], ["y"], reverse=1), {"x": x}, {"y": F32},
                {"axis": np.array(1, np.int64)})
    program, got, expected = run_case(case, in_sram=False, chip=sram_chip(64))
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-6, atol=1e-6)
    scans = [i for i in program.instructions if isinstance(i, Vector) and i.op is VectorOp.SCAN_SUM]
    assert len(scans) > 2 and all(i.imm < 3000 for i in scans)


# ---- Gather --------------------------------------------------------------------------------------

@pytest.mark.parametrize("index_type", [np.int64, np.int32])
def test_gather_rows_of_a_parameter_table_with_negative_indices(index_type):
    """A parameter table lives in HBM: DMA_GATHER, negative indices counted from the end."""
    table = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    ids = np.array([[0, -1, 5], [-6, 2, -3]], dtype=index_type)
    case = Case(helper.make_node("Gather", ["table", "ids"], ["y"], axis=0), {"ids": ids}, {"y": F32},
                {"table": table})
    program, got, expected = run_case(case, in_sram=False)
    _exact(got, expected)
    (gather,) = [i for i in program.instructions if isinstance(i, DmaGather)]
    assert gather.table_rows == 6 and gather.index_int64 == (index_type == np.int64)


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("axis, shape", [(0, (5, 3)), (1, (4, 6)), (1, (2, 5, 3)), (2, (2, 3, 4))])
def test_gather_along_an_axis_by_computed_indices(axis, shape, in_sram):
    """A table that is an activation: VECTOR_GATHER (an HBM table with outer rows is loaded into
    SRAM first), indices with negatives and repeats."""
    table = np.random.default_rng(axis).standard_normal(shape).astype(np.float32)
    ids = np.array([[shape[axis] - 1, -1], [0, -shape[axis]], [1, 1]], dtype=np.int64)
    case = Case(helper.make_node("Gather", ["table", "ids"], ["y"], axis=axis), {"table": table, "ids": ids},
                {"y": F32})
    program, got, expected = run_case(case, in_sram)
    _exact(got, expected)
    assert any(isinstance(i, (VectorGather, DmaGather)) for i in program.instructions)


def test_gather_of_bools_along_the_last_axis_moves_bytes():
    """tiny-sparse's block mask -> token mask: a bool [2, 3, 4] table by token block ids."""
    keep = np.random.default_rng(5).integers(0, 2, (2, 3, 4)).astype(np.bool_)
    blocks = np.array([0, 0, 1, 1, 3, 3, 3, -2], dtype=np.int64)
    case = Case(helper.make_node("Gather", ["keep", "blocks"], ["y"], axis=2), {"keep": keep, "blocks": blocks},
                {"y": BOOL})
    program, got, expected = run_case(case, in_sram=False)
    _exact(got, expected)
    (gather,) = [i for i in program.instructions if isinstance(i, VectorGather)]
    assert gather.precision.bits == 8 and (gather.outer, gather.count, gather.row_len) == (6, 8, 1)


def test_gather_by_a_scalar_index_drops_the_axis():
    table = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    case = Case(helper.make_node("Gather", ["table", "i"], ["y"], axis=1),
                {"table": table, "i": np.array(-2, np.int64)}, {"y": F32})
    _, got, expected = run_case(case, in_sram=True)
    assert expected["y"].shape == (3,)
    _exact(got, expected)


# ---- ArgMax and ReduceProd -----------------------------------------------------------------------

@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("select_last", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_argmax_with_ties(axis, keepdims, select_last, in_sram):
    x = _ties((3, 4, 5), seed=axis)
    case = Case(helper.make_node("ArgMax", ["x"], ["i"], axis=axis, keepdims=keepdims,
                                 select_last_index=select_last), {"x": x}, {"i": I64})
    _, got, expected = run_case(case, in_sram)
    _exact(got, expected)


@pytest.mark.parametrize("in_sram", PLACES)
@pytest.mark.parametrize("axes, keepdims", [([1], 1), ([0, 2], 0), ([-1], 0), ([0, 1, 2], 1)])
def test_reduce_prod_over_axes(axes, keepdims, in_sram):
    x = np.random.default_rng(len(axes)).uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    case = Case(helper.make_node("ReduceProd", ["x", "axes"], ["y"], keepdims=keepdims), {"x": x}, {"y": F32},
                {"axes": np.array(axes, np.int64)})
    program, got, expected = run_case(case, in_sram)
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-5)
    runs = 2 if axes == [0, 2] else 1   # separate runs of axes are separate products
    assert len([i for i in program.instructions if isinstance(i, Vector) and i.op is VectorOp.REDUCE_PROD]) == runs


def test_a_table_tied_to_a_gemm_weight_is_named_not_gathered_silently():
    """A tied embedding is also the LM head's weight, which memory images pack for the GEMM
    (transposed, in [K, piece] blocks): row-major rows would be wrong, so the lowering says so."""
    table = np.random.default_rng(4).standard_normal((16, 8)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["h"], axis=0),
             helper.make_node("Transpose", ["table"], ["head"], perm=[1, 0]),
             helper.make_node("MatMul", ["h", "head"], ["logits"])]
    graph = helper.make_graph(nodes, "tied", [helper.make_tensor_value_info("ids", I64, [3])],
                              [helper.make_tensor_value_info("logits", F32, None)],
                              initializer=[numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    program = lower_graph(import_onnx(model), sram_chip(8 << 10), fp32_options(1, {}))
    assert any("table 'table' is also the weight of" in note for note in program.meta["not_value_exact"])
