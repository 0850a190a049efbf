"""Float programs run on values: the tiny models lowered for a MatX-style chip, executed by the
functional simulator, against the IR interpreter on the same random inputs.

Tolerance (float32 programs): every output within max |diff| <= 1e-4 * max |reference|. The
program sums in another order than the interpreter (GEMM tiles, an online softmax over cache
blocks, rsqrt then multiply), so the results agree to float32 rounding, not bit for bit; 1e-4
leaves two orders of magnitude above the ~1e-6 seen, and any layout or operand error is O(1).
Programs the lowering knows it times but does not compute are refused, naming why. Decode at
batch 1..3 and prefill are value-exact: tiles of several rows use GEMM_STRIDED, prefill builds
its causal mask from positions and writes new K into the transposed cache blocks as I @ K^T.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import model_graph
from value_runs import chip_with_sram, fp32_chip, fp32_options, run_program

from compiler.interp.run import run_graph
from compiler.targets.programmable.image import hbm_image, read_outputs
from compiler.targets.programmable.isa import GemmStrided, Vector2D, VectorOp
from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringOptions
from simulator.hardware import load_hardware
from simulator.programmable import ProgramError, run_functional, simulate_program

RELATIVE_TOLERANCE = 1e-4


def random_inputs(graph, batch: int, length: int, form: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = {"batch": batch, "past_len": length, "seq": length}
    inputs = {}
    for name, ttype in graph.inputs.items():
        shape = [d if isinstance(d, int) else int(eval(str(d), {}, sizes)) for d in ttype.shape]
        if ttype.dtype.is_float:
            inputs[name] = rng.standard_normal(shape).astype(ttype.dtype.numpy)
        elif "position" in name:
            start = length if form == "decode" else 0
            inputs[name] = np.broadcast_to(np.arange(shape[-1]) + start, shape).astype(ttype.dtype.numpy)
        else:
            inputs[name] = rng.integers(0, 256, shape).astype(ttype.dtype.numpy)
    return inputs


def lowered(name: str, form: str, batch: int, length: int, chip=None, options=None):
    graph = model_graph(name, form, fused=True)
    bindings = {"past_len": length} if form == "decode" else {"seq": length}
    chip = chip or fp32_chip()
    return graph, chip, lower_graph(graph, chip, options or fp32_options(batch, bindings))


def run_on_values(name: str, form: str, batch: int, length: int, chip=None):
    graph, chip, program = lowered(name, form, batch, length, chip=chip)
    inputs = random_inputs(graph, batch, length, form)
    started = time.perf_counter()
    _, outputs = run_program(program, graph, inputs, chip)
    elapsed = time.perf_counter() - started
    reference = run_graph(model_graph(name, form), inputs)   # the imported graph, before recognition
    return program, outputs, reference, elapsed


@pytest.mark.parametrize("form, batch, length", [
    ("decode", 1, 7), ("decode", 1, 300),
    ("decode", 2, 7), ("decode", 3, 40),        # GEMM tiles of several rows: GEMM_STRIDED
    ("prefill", 1, 8), ("prefill", 2, 8),       # + causal mask blocks, new K transposed into blocks
])
def test_tiny_llama_matches_the_interpreter(form, batch, length):
    check_matches(*run_on_values("tiny-llama", form, batch, length))


@pytest.mark.parametrize("name, form, batch, length", [
    ("tiny-swa", "decode", 1, 40), ("tiny-swa", "prefill", 1, 8),          # window masks, read
    ("tiny-hybrid", "decode", 2, 40), ("tiny-hybrid", "prefill", 1, 8),
    ("tiny-sparse", "decode", 1, 40), ("tiny-sparse", "prefill", 1, 8),    # TopK, gathers by index
    ("tiny-compact", "decode", 1, 40), ("tiny-compact", "prefill", 1, 8),  # bias masks, concatenations
    ("tiny-grumem", "decode", 1, 5), ("tiny-grumem", "prefill", 1, 8),     # keys = memory slots + chunk
    ("tiny-grumem", "prefill", 2, 8),
    ("tiny-engram", "decode", 1, 40), ("tiny-engram", "prefill", 1, 8),    # int64 hashing, padding
])
def test_other_tiny_models_match_the_interpreter(name, form, batch, length):
    check_matches(*run_on_values(name, form, batch, length))


def test_prefill_over_several_cache_blocks_matches_the_interpreter():
    """With 2 MiB of SRAM the 300-token prompt streams in several cache blocks: masked blocks in
    a LOOP (the query positions move one block per iteration), a shorter last block, new tokens
    written block by block."""
    program, *rest = run_on_values("tiny-llama", "prefill", 1, 300, chip=chip_with_sram(2 << 20))
    selects = [i for i in program.instructions if isinstance(i, Vector2D) and i.op is VectorOp.SELECT]
    transposes = [i for i in program.instructions if isinstance(i, GemmStrided) and i.transpose_b]
    assert len(selects) > 2 and len(transposes) > 2 * 2     # more than one block per layer
    check_matches(program, *rest)


def check_matches(program, outputs, reference, elapsed) -> None:
    assert program.meta["isa_gaps"] == {}
    assert program.meta["not_value_exact"] == []
    assert set(outputs) == set(reference)
    for name, expected in reference.items():
        got = outputs[name]
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        scale = float(np.max(np.abs(expected)))
        assert scale > 0.1, name                      # a real signal, not zeros on both sides
        assert float(np.max(np.abs(got - expected))) <= RELATIVE_TOLERANCE * scale, name
    print(f"functional run: {elapsed:.2f} s")


def test_the_same_program_runs_on_the_timing_engine():
    _, chip, program = lowered("tiny-llama", "decode", 1, 300)
    result = simulate_program(program, chip)
    assert result.time_s > 0 and result.ops_simulated > 0


def _refused(program, chip, graph, inputs, pattern: str) -> None:
    hbm = np.frombuffer(hbm_image(program, graph, inputs), dtype=np.uint8).copy()
    with pytest.raises(ProgramError, match=pattern):
        run_functional(program, chip, hbm)


def test_prefill_in_query_blocks_is_refused_naming_what_is_timed_only():
    """With 1 MiB of SRAM the queries stream in blocks too: a block of several GQA heads is still
    read as one run of rows (timed, not computed)."""
    graph, chip, program = lowered("tiny-llama", "prefill", 1, 300, chip=chip_with_sram(1 << 20))
    assert program.meta["isa_gaps"] == {}
    _refused(program, chip, graph, random_inputs(graph, 1, 300, "prefill"), "query block of 2 heads")


def test_batched_prefill_gemms_are_strided_and_decode_at_batch_one_is_not():
    """Row pitches only where a tile of several rows is a slice of a wider matrix."""
    *_, decode = lowered("tiny-llama", "decode", 1, 7)
    *_, prefill = lowered("tiny-llama", "prefill", 2, 8)
    assert not any(isinstance(i, GemmStrided) for i in decode.instructions)
    strided = [i for i in prefill.instructions if isinstance(i, GemmStrided) and not i.transpose_b]
    assert strided and all(i.m == 16 and i.ldc > i.n for i in strided)


def test_isa_gap_is_refused_by_name():
    graph, chip, program = lowered("tiny-mamba2", "prefill", 1, 8)
    gap = "einsum summing over more than two operands"
    assert gap in program.meta["isa_gaps"]
    _refused(program, chip, graph, random_inputs(graph, 1, 8, "prefill"), gap)


def test_bf16_program_is_refused():
    graph, chip, program = lowered("tiny-llama", "decode", 1, 7, chip=load_hardware("matx-one"),
                                   options=LoweringOptions(bindings={"past_len": 7}, tensor_parallel=1))
    _refused(program, chip, graph, random_inputs(graph, 1, 7, "decode"), "fp32 only")


def test_cache_image_round_trips_the_blocked_layout():
    """The past cache written into HBM in the attention kernel's blocks reads back as it was."""
    graph, _, program = lowered("tiny-llama", "decode", 1, 300)
    inputs = random_inputs(graph, 1, 300, "decode")
    layouts = program.meta["cache_layouts"]
    assert {layouts[n]["kind"] for n in layouts} == {"k_transposed", "v"}
    outputs = read_outputs(program, hbm_image(program, graph, inputs))
    for present, past in (("present.0.key", "past_key_values.0.key"), ("present.1.value", "past_key_values.1.value")):
        np.testing.assert_array_equal(outputs[present][:, :, :300], inputs[past])
