"""The streaming attention kernel on values: ONNX Attention nodes (opset 23) with explicit masks,
key prefixes, past caches and row-major K / V, lowered for the fp32 chip, run by the functional
simulator and compared with the IR interpreter (tolerance as in test_prog_float_functional).

Masks that are not the plain causal one are read block by block and added to the scores; K and
V that are no cache are read where they are (row-major) through transposed-B GEMMs; a key
prefix before the new tokens (a memory) moves where the queries sit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from test_prog_float_functional import RELATIVE_TOLERANCE
from value_runs import fp32_chip, fp32_options, run_program

from compiler.frontend import import_onnx
from compiler.interp.run import run_graph
from compiler.targets.programmable.attention_plan import causal_offset
from compiler.targets.programmable.isa import GemmStrided, Vector
from compiler.targets.programmable.isa import VectorOp as V
from compiler.targets.programmable.lower import lower_graph
from simulator.programmable import simulate_program

F = TensorProto.FLOAT


def attention_model(batch: int, q_heads: int, kv_heads: int, q_len: int, kv_len: int, dim: int,
                    mask_shape: list[int] | None = None, past: int = 0, kv_in_sram: bool = False):
    """Y = Attention(Q, K, V[, mask][, past K, past V]); with `kv_in_sram` K and V are computed
    (K * 1) so they sit in SRAM instead of arriving in HBM as graph inputs."""
    inputs = [helper.make_tensor_value_info("Q", F, [batch, q_heads, q_len, dim])]
    inputs += [helper.make_tensor_value_info(n, F, [batch, kv_heads, kv_len, dim]) for n in ("K", "V")]
    nodes, initializers = [], []
    names = ["Q", "K", "V"]
    if kv_in_sram:
        initializers.append(helper.make_tensor("one", F, [], [1.0]))
        nodes += [helper.make_node("Mul", [n, "one"], [f"{n}1"]) for n in ("K", "V")]
        names = ["Q", "K1", "V1"]
    names.append("M" if mask_shape else "")
    if mask_shape:
        inputs.append(helper.make_tensor_value_info("M", F, mask_shape))
    outputs = [helper.make_tensor_value_info("Y", F, [batch, q_heads, q_len, dim])]
    out_names = ["Y"]
    if past:
        inputs += [helper.make_tensor_value_info(n, F, [batch, kv_heads, past, dim]) for n in ("PK", "PV")]
        names += ["PK", "PV"]
        outputs += [helper.make_tensor_value_info(n, F, [batch, kv_heads, past + kv_len, dim]) for n in ("K2", "V2")]
        out_names += ["K2", "V2"]
    nodes.append(helper.make_node("Attention", names, out_names))
    graph = helper.make_graph(nodes, "attention", inputs, outputs, initializers)
    return import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]))


def random_values(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Normal inputs; the mask holds -inf on ~30% of its entries (never a whole row) and finite
    biases elsewhere."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, ttype in graph.inputs.items():
        array = rng.standard_normal([int(d) for d in ttype.shape]).astype(np.float32)
        if name == "M":
            array = np.where(rng.random(array.shape) < 0.3, -np.inf, array).astype(np.float32)
            array[..., 0] = 0.0
        values[name] = array
    return values


def run_both(graph, chip=None):
    chip = chip or fp32_chip()
    program = lower_graph(graph, chip, fp32_options(1, {}))
    assert program.meta["isa_gaps"] == {} and program.meta["not_value_exact"] == []
    inputs = random_values(graph)
    _, outputs = run_program(program, graph, inputs, chip)
    reference = run_graph(graph, inputs)
    assert set(outputs) == set(reference)
    for name, expected in reference.items():
        scale = float(np.max(np.abs(expected)))
        assert scale > 0.1, name
        assert float(np.max(np.abs(outputs[name] - expected))) <= RELATIVE_TOLERANCE * scale, name
    return program


@pytest.mark.parametrize("batch, q_len, kv_len, mask_shape", [
    (1, 8, 12, [8, 12]),              # a key prefix (4 memory slots) before the queries' keys
    (2, 8, 12, [2, 4, 8, 12]),        # a mask per sequence and per query head
    (1, 1, 300, [1, 1, 1, 300]),      # one query over several cache blocks (decode-shaped)
    (1, 40, 300, [40, 300]),          # several blocks, every query row its own mask row
])
def test_a_read_mask_matches_the_interpreter(batch, q_len, kv_len, mask_shape):
    program = run_both(attention_model(batch, 4, 2, q_len, kv_len, 16, mask_shape))
    adds = [i for i in program.instructions if getattr(i, "op", None) is V.ADD]
    assert adds   # the mask is added to the scores, not dropped


def test_decode_with_a_past_cache_and_a_mask_over_past_and_new_keys():
    """The new token joins the running softmax from SRAM; the mask's last column is its own."""
    run_both(attention_model(2, 4, 2, 1, 1, 16, [2, 1, 1, 41], past=40, kv_in_sram=True))


def test_decode_with_a_past_cache_and_new_keys_arriving_in_hbm():
    """New K / V that are graph inputs (in HBM) are written into the cache blocks first, not read
    from SRAM addresses they do not have."""
    run_both(attention_model(2, 4, 2, 1, 1, 16, past=40))


@pytest.mark.parametrize("kv_in_sram", [False, True])
def test_row_major_keys_are_read_in_place_not_transposed_into_blocks(kv_in_sram):
    """K / V with no cache to write: scores are Q @ K^T with K read as the array's transposed B,
    and the program does exactly the attention's MACs (no I @ K^T into cache blocks)."""
    batch, q_heads, kv_heads, kv_len, dim = 1, 4, 2, 300, 16
    program = run_both(attention_model(batch, q_heads, kv_heads, 1, kv_len, dim, kv_in_sram=kv_in_sram))
    assert any(isinstance(i, GemmStrided) and i.transpose_b for i in program.instructions)
    fills = [i for i in program.instructions if isinstance(i, Vector) and i.op is V.FILL and i.length == dim * dim]
    assert not fills    # no identity for transposes
    macs = simulate_program(program, fp32_chip()).totals["macs"]
    assert macs == batch * q_heads * kv_len * (dim + dim)


def test_causal_offset_reads_the_mask_structure():
    q_len, total = 4, 7
    keys, queries = np.arange(total)[None, :], np.arange(q_len)[:, None]
    causal = np.where(keys <= queries + 3, 0.0, -np.inf).astype(np.float32)
    assert causal_offset(causal, q_len, total) == 3
    assert causal_offset(causal[None, None], q_len, total) == 3
    assert causal_offset(causal == 0, q_len, total) == 3              # bool: True where visible
    windowed = np.where((keys <= queries + 3) & (keys > queries), 0.0, -np.inf)
    assert causal_offset(windowed, q_len, total) is None
    biased = causal.copy()
    biased[1, 0] = 0.5
    assert causal_offset(biased, q_len, total) is None
    per_head = np.stack([causal, np.where(keys <= queries + 2, 0.0, -np.inf)])
    assert causal_offset(per_head, q_len, total) is None
    assert causal_offset(causal, q_len, total + 1) is None
