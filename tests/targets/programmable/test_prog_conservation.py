"""What the program does matches the IR: every MAC once, every streamed weight byte once per
decode step, every KV byte once (per chip under tensor parallelism)."""

from __future__ import annotations

import pytest
from conftest import chip, model_graph
from program_checks import dma_bytes, gemm_macs

from compiler.ir.shapes import evaluate
from compiler.summary import contraction_flops
from compiler.targets.programmable.isa import Collective, CollectiveKind
from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringOptions

_CONTRACTIONS = ("MatMul", "Gemm", "Einsum", "Conv", "Attention")
KV_BYTES_PER_TOKEN = 131072  # REFERENCE.md: Llama 3.1 8B, bf16


def ir_macs(graph, bindings) -> int:
    flops = sum(evaluate(contraction_flops(graph, node), bindings) for node in graph.nodes()
                if node.op.value in _CONTRACTIONS)
    return int(flops) // 2


def weights(graph) -> list[str]:
    return [n for n, c in graph.constants.items() if c.is_parameter and "embed_tokens" not in n]


def kv_inputs(graph) -> list[str]:
    return [n for n in graph.inputs if n.startswith("past_key_values")]


CASES = [("h100-sxm", 1024, None), ("h100-sxm", 131072, None), ("h200-sxm", 131072, None),
         ("matx-one", 1024, None), ("matx-one", 131072, None), ("matx-one", 1024, 2)]


@pytest.mark.parametrize("preset, context, chips", CASES)
def test_llama_decode_conservation(preset, context, chips):
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    options = LoweringOptions(batch=1, bindings={"past_len": context}, tensor_parallel=chips)
    program = lower_graph(graph, chip(preset), options)
    tp = program.meta["tensor_parallel"]
    assert tp == (chips or chip(preset).links.chips)
    # every multiply-accumulate of the IR exactly once, split evenly over the chips
    assert gemm_macs(program) * tp == ir_macs(graph, options.all_bindings())
    # KV: K and V of every layer at the bound context, read once
    kv = dma_bytes(program, kv_inputs(graph))
    assert kv == program.meta["kv_bytes"]["per_chip"] == KV_BYTES_PER_TOKEN * context // tp
    # weights: streamed ones read once per step; resident ones not at all
    streamed = dma_bytes(program, weights(graph))
    if program.meta["weights_in_sram"]:
        assert streamed == 0
    else:
        assert streamed == program.meta["weight_bytes_per_step"]
        gemm_weights = sum(c.type.nbytes for n, c in graph.constants.items()
                           if c.is_parameter and c.type.rank == 2 and "embed_tokens" not in n)
        norms = sum(c.type.nbytes for n, c in graph.constants.items() if c.is_parameter and c.type.rank == 1)
        assert streamed == gemm_weights // tp + norms  # norms are replicated, matrices split


def test_weights_in_sram_read_no_weight_bytes():
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    options = LoweringOptions(bindings={"past_len": 1024}, weight_precision="int4")
    program = lower_graph(graph, chip("matx-one"), options)
    assert program.meta["weights_in_sram"]
    assert dma_bytes(program, weights(graph)) == 0
    assert gemm_macs(program) * 8 == ir_macs(graph, options.all_bindings())


def test_unrecognized_attention_is_correct_but_not_streaming():
    graph = model_graph("llama3.1-8b", "decode")
    options = LoweringOptions(bindings={"past_len": 1024})
    program = lower_graph(graph, chip("h100-sxm"), options)
    assert gemm_macs(program) == ir_macs(graph, options.all_bindings())
    assert len(program.meta["unrecognized"]) == 64  # QK^T and PV of 32 layers
    # the expanded GQA heads read each K/V byte once per query head that shares it
    assert dma_bytes(program, kv_inputs(graph)) > program.meta["kv_bytes"]["per_chip"]


def test_tensor_parallel_collectives():
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    program = lower_graph(graph, chip("matx-one"), LoweringOptions(bindings={"past_len": 1024}))
    collectives = [i for i in program.instructions if isinstance(i, Collective) and i.nbytes]
    reduces = [c for c in collectives if c.kind == CollectiveKind.ALL_REDUCE]
    gathers = [c for c in collectives if c.kind == CollectiveKind.ALL_GATHER]
    assert len(reduces) == 64 and all(c.nbytes == 4096 * 2 and c.chips == 8 for c in reduces)  # after O, down
    assert len(gathers) == 1 and gathers[0].nbytes == 128256 * 2  # vocab-split logits
    tags = {tag for tag, i in zip(program.tags, program.instructions) if isinstance(i, Collective) and i.nbytes}
    assert tags == {"collective"}
    single = lower_graph(graph, chip("matx-one"), LoweringOptions(bindings={"past_len": 1024}, tensor_parallel=1))
    assert not any(isinstance(i, Collective) and i.nbytes for i in single.instructions)


def test_window_streams_only_the_window():
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    windowed = _with_attention_attrs(graph, tessera_window=4096)
    program = lower_graph(windowed, chip("h100-sxm"), LoweringOptions(bindings={"past_len": 131072}))
    assert dma_bytes(program, kv_inputs(graph)) == KV_BYTES_PER_TOKEN * 4096


def test_block_sparse_streams_only_kept_blocks():
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    sparse = _with_attention_attrs(graph, tessera_kept_blocks=8)
    program = lower_graph(sparse, chip("h100-sxm"), LoweringOptions(bindings={"past_len": 131072}))
    read = dma_bytes(program, kv_inputs(graph))
    assert 0 < read <= KV_BYTES_PER_TOKEN * 8 * 1024  # at most 8 blocks of at most 1024 positions
    assert "indexed DMA (block-sparse KV gather)" in program.meta["isa_gaps"]


def _with_attention_attrs(graph, **attrs):
    from compiler.ir.graph import Graph, Node

    copy = Graph(graph.name, graph.opset)
    for name, ttype in graph.inputs.items():
        copy.add_input(name, ttype)
    for const in graph.constants.values():
        copy.add_constant(const)
    for node in graph.nodes():
        if node.op.value == "Attention":
            node = Node(node.name, node.op, node.inputs, node.outputs, node.output_types, {**node.attrs, **attrs})
        copy.add_node(node)
    copy.outputs = list(graph.outputs)
    return copy
