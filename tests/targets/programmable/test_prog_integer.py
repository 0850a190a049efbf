"""The integer subset: an int8 MLP lowers to allowed instructions only and runs bit-exactly;
anything the subset lacks is a compile-time error naming the node."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import chip, model_graph
from int_functional import run_functional
from program_checks import run_queues

from compiler.interp.run import run_graph
from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.passes.fold import GraphBuilder
from compiler.targets.programmable.image import hbm_image, read_outputs, sram_image
from compiler.targets.programmable.int_graphs import (
    Requant,
    build_int8_mlp,
    build_requant_graph,
    requantize_reference,
)
from compiler.targets.programmable.isa import (
    INTEGER_VECTOR_OPS,
    DmaLoad,
    DmaStore,
    Gemm,
    Halt,
    Loop,
    Precision,
    Vector,
    decode_program,
)
from compiler.targets.programmable.lower import lower_graph, lower_graph_traced
from compiler.targets.programmable.options import LoweringError, LoweringOptions

SHAPES = [([16, 24, 8], 4), ([64, 128, 32], 2), ([256, 256, 64], 1), ([512, 512, 16], 3)]


@pytest.mark.parametrize("imm, shift", [(1, 1), (5, 7), (181, 14), ((1 << 32) - 1, 40)])
def test_requantize_chain_in_the_ir_is_the_requant_instruction(imm, shift):
    a = np.random.default_rng(shift).integers(-(1 << 31), 1 << 31, 4096).astype(np.int32)
    a[:6] = [0, -1, 1, (1 << 31) - 1, -(1 << 31), min(1 << (shift - 1), (1 << 31) - 1)]
    y = run_graph(build_requant_graph(a.size, Requant(imm, shift)), {"a": a})["y"]
    assert np.array_equal(y, requantize_reference(a, imm, shift))


@pytest.mark.parametrize("widths, rows", SHAPES)
def test_int8_mlp_on_matx_tiny_uses_only_the_integer_subset(widths, rows):
    program = lower_graph(build_int8_mlp(rows, widths, seed=3), chip("matx-tiny"), LoweringOptions(batch=rows))
    allowed = (DmaLoad, DmaStore, Gemm, Vector, Loop, Halt)
    for instruction in program.instructions:
        assert isinstance(instruction, allowed), instruction
        if isinstance(instruction, Gemm):
            assert (instruction.precision, instruction.acc_precision) == (Precision.INT8, Precision.INT32)
        if isinstance(instruction, Vector):
            assert instruction.op in INTEGER_VECTOR_OPS and instruction.precision == Precision.INT32
    assert decode_program(program.binary()) == program.instructions


@pytest.mark.parametrize("preset", ["matx-tiny", "matx-one", "h100-sxm"])
@pytest.mark.parametrize("widths, rows", SHAPES)
def test_int8_mlp_runs_bit_exact_in_any_order_the_semaphores_allow(preset, widths, rows):
    graph = build_int8_mlp(rows, widths, seed=5)
    program, accesses = lower_graph_traced(graph, chip(preset), LoweringOptions(batch=rows))
    x = np.random.default_rng(rows).integers(-128, 128, (rows, widths[0])).astype(np.int8)
    expected = run_graph(graph, {"x": x})["y"]
    assert np.count_nonzero(expected) > expected.size // 5  # the data exercises the arithmetic
    run_queues(program, accesses, seed=0)
    for seed in range(3):
        hbm, sram = hbm_image(program, graph, {"x": x}), sram_image(program, graph)
        run_functional(program, hbm, sram, seed=seed)
        assert np.array_equal(read_outputs(program, hbm)["y"], expected)


def test_weights_stream_when_they_do_not_fit_the_tiny_sram():
    program = lower_graph(build_int8_mlp(1, [256, 256, 64]), chip("matx-tiny"), LoweringOptions())
    assert not program.meta["weights_in_sram"] and program.regions["layer0.weight"].space == "hbm"
    small = lower_graph(build_int8_mlp(1, [16, 24, 8]), chip("matx-tiny"), LoweringOptions())
    assert small.meta["weights_in_sram"] and small.regions["layer0.weight"].space == "sram"


def test_exp_on_matx_tiny_fails_at_compile_time_naming_the_node():
    graph = Graph("exp")
    builder = GraphBuilder(graph)
    graph.add_input("x", TensorType(DType.FLOAT32, (4, 8)))
    builder.emit("the_exp", Op.EXP, ["x"], ["y"], {})
    graph.outputs.append("y")
    with pytest.raises(LoweringError, match=r"Exp node 'the_exp': needs VECTOR EXP, which matx-tiny's integer"):
        lower_graph(graph, chip("matx-tiny"), LoweringOptions())


def test_a_float_model_on_matx_tiny_names_its_first_node():
    with pytest.raises(LoweringError, match="matx-tiny's integer ISA subset lacks"):
        lower_graph(model_graph("tiny-llama", "decode"), chip("matx-tiny"),
                    LoweringOptions(bindings={"past_len": 8}))


def test_float_programs_timed_only_are_refused_by_the_functional_run():
    """A bf16 program over 8 chips (the unfused graph) is timed, not computed: refused by name.
    Float programs that are value-exact run: tests/targets/programmable/test_prog_float_functional.py."""
    from simulator.programmable import ProgramError
    from simulator.programmable import run_functional as simulate_values

    graph = model_graph("tiny-llama", "decode")
    program = lower_graph(graph, chip("matx-one"), LoweringOptions(bindings={"past_len": 8}))
    assert program.meta["not_value_exact"]
    with pytest.raises(ProgramError, match="values would be wrong.*fp32 only"):
        simulate_values(program, chip("matx-one"), 1 << 20)
