"""Lower an IR graph to one chip's Program for the programmable (MatX-style) accelerator.

    program = lower_graph(graph, chip, LoweringOptions(batch=1, bindings={"past_len": 131072}))

The pipeline, each step in its own module:
  bind shapes (binding)       -> every dim concrete; the lowering never guesses a size
  tensor parallelism (sharding)-> which axis of each value is split across chips
  weights and fit (placement) -> weights in SRAM or streamed, KV/state bytes, "fits?"
  memory map (memory)         -> SRAM/HBM regions for weights, caches and I/O
  kernels per node            -> contraction / attention / vector / layout, tiled (tiling, gemm)
  semaphores (emitter)        -> derived from buffer hazards between engine queues
"""

from __future__ import annotations

import math
import time

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.targets.programmable import contraction, layout
from compiler.targets.programmable.attention import lower_attention
from compiler.targets.programmable.binding import bind_shapes
from compiler.targets.programmable.context import Lowerer, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import CollectiveKind, Loop, VectorOp
from compiler.targets.programmable.memory import HBM_ADDRESS_SPACE, plan_memory
from compiler.targets.programmable.options import AddressSpaceError, LoweringError, LoweringOptions
from compiler.targets.programmable.placement import (
    StateBytes,
    WeightPlan,
    fits_report,
    is_kv_input,
    plan_weights,
    state_bytes,
)
from compiler.targets.programmable.program import Program
from compiler.targets.programmable.sharding import ShardPlan, plan_sharding
from compiler.targets.programmable.tagging import layer_kind
from compiler.targets.programmable.vector import SUPPORTED_VECTOR_OPS, lower_vector, run_steps
from simulator.hardware.programmable import PRECISION_BITS, ProgrammableChip

_CONTRACTIONS = {Op.MATMUL: contraction.lower_matmul, Op.GEMM: contraction.lower_matmul,
                 Op.EINSUM: contraction.lower_einsum, Op.CONV: contraction.lower_conv}
_SHAPE_ONLY = {Op.SHAPE, Op.SIZE}
_NOT_FOLDED = {Op.ATTENTION}
SUPPORTED_OPS = frozenset(_CONTRACTIONS) | SUPPORTED_VECTOR_OPS | layout.VIEW_OPS | layout.MOVE_OPS | {Op.ATTENTION}

GEMM_MODEL = ("a GEMM instruction runs on sub-array `subarray` of every array (arrays_per_chip of them share its "
              "N tiles); split = log2(ways) divides each array along K into ways sub-arrays of rows/ways x cols "
              "(simulator/programmable/costs/systolic.py); a queue retires in program order")
LAYOUTS = ("weights packed per DMA chunk as [sub-array piece][K][piece columns] (meta weight_pieces); KV cache "
           "in blocks of every (sequence, KV head), K transposed [d, block], V [block, dv] (Attention, meta "
           "cache_layouts), or row-major with room for the appended token (Concat); GEMM tiles of several rows "
           "that slice a wider row-major operand use GEMM_STRIDED (row pitches lda/ldb/ldc); float programs run "
           "functionally unless meta isa_gaps or not_value_exact name what they would get wrong")


def lower_graph(graph: Graph, chip: ProgrammableChip, options: LoweringOptions) -> Program:
    """One chip's instruction stream for `graph` under tensor parallelism (every chip runs it)."""
    return lower_graph_traced(graph, chip, options)[0]


def lower_graph_traced(graph: Graph, chip: ProgrammableChip, options: LoweringOptions) -> tuple[Program, list]:
    """`lower_graph`, plus each instruction's (read, written) buffers, for checking the semaphores."""
    started = time.perf_counter()
    if chip.isa_subset == "integer" or _is_integer_graph(graph):
        from compiler.targets.programmable.integer import lower_integer_graph

        return lower_integer_graph(graph, chip, options)
    _check_precisions(chip, options)
    chips = options.tensor_parallel or chip.links.chips
    shapes = bind_shapes(graph, options.all_bindings())
    shard = plan_sharding(graph, shapes, chips)
    static = _static_values(graph)
    reserve = _working_set_bytes(graph, shapes, shard, static, chip)
    weights = plan_weights(graph, shard, chip, options, reserve)
    kv = state_bytes(graph, shapes, shard, options)
    memory = plan_memory(graph, shapes, shard, chip, weights, options.kv_precision)
    _check_address_space(graph, chip, options, weights, kv, memory.fixed_hbm_bytes, chips)
    lw = Lowerer(graph, chip, options, shapes, shard, weights, memory.sram, memory.hbm)
    lw.param_bufs, lw.output_bufs, lw.capacity = memory.param_bufs, memory.output_bufs, memory.capacity
    lw.program.regions.update(memory.regions)
    for name, buf in memory.input_bufs.items():
        lw.pin(buf)
        lw.define(name, buf, bits=_input_bits(graph, name, options))
    for buf in (*memory.param_bufs.values(), *memory.output_bufs.values(), *memory.gathered_outputs.values()):
        lw.pin(buf)
    _place_constants(lw, static)
    for node in graph.nodes():
        _lower_node(lw, node, static, memory.gathered_outputs)
    _note_precisions(lw, options)
    count = lw.em.finish()
    fits, reason = fits_report(weights, kv, lw.hbm.high_water, memory.io_bytes, chip)
    lw.program.meta.update({
        "target": chip.name, "graph": graph.name, "tensor_parallel": chips, "bindings": options.all_bindings(),
        "precisions": {"weight": options.weight_precision, "kv": options.kv_precision,
                       "activation": options.activation_precision},
        "weights_in_sram": weights.in_sram,
        "weight_bytes": {"per_chip": weights.per_chip, "total": weights.total},
        "weight_bytes_per_step": _weight_bytes_per_step(graph, shapes, shard, weights),
        "kv_bytes": {"per_chip": kv.kv_per_chip, "total": kv.kv_total},
        "state_bytes": {"per_chip": kv.state_per_chip, "total": kv.state_total},
        "hbm_capacity_bytes": chip.memory.hbm_bytes, "sram_capacity_bytes": chip.memory.sram_bytes,
        "activation_hbm_bytes": lw.hbm.high_water, "hbm_end_bytes": lw.hbm.top,
        "sram_peak_bytes": lw.sram.base + lw.sram.high_water,
        "fits": fits, "fits_reason": reason,
        "unrecognized": list(lw.unrecognized), "isa_gaps": {k: list(v) for k, v in lw.gaps.items()},
        "not_value_exact": list(lw.not_value_exact),
        "sharding_notes": list(shard.notes), "folded_after_binding": len(static),
        "instructions": count, "loops": sum(isinstance(i, Loop) for i in lw.program.instructions),
        "fences": lw.em.fence_count, "semaphores_used": lw.em.semaphores_used,
        "gemm_model": GEMM_MODEL, "layouts": LAYOUTS,
        "graph_outputs": list(graph.outputs),
        "tensors": {name: {"dtype": str(graph.type_of(name).dtype), "shape": list(shapes[name])}
                    for name in [*graph.inputs, *graph.outputs]},
        "lowering_s": time.perf_counter() - started,
    })
    return lw.program, lw.em.accesses


def _place_constants(lw: Lowerer, static: set[str]) -> None:
    """Give folded values and the float constants that kernels read their SRAM (or HBM) before any
    instruction is emitted: memory images put their values there at the start, so no earlier
    kernel may have used those bytes as scratch. Integer constants are shape arguments."""
    for node in lw.graph.nodes():
        if node.outputs[0] in static:
            for out in node.outputs:
                if out:
                    lw.new_value(out)  # known once shapes are bound: a constant, no instructions
                    lw.pin(lw.values[out].buf)
                    lw.region(out, lw.values[out].buf)
                    lw.program.meta.setdefault("static_values", []).append(out)
            if node.op in _SHAPE_ONLY:  # its input need not exist before the run: images need its shape
                lw.program.meta.setdefault("static_shapes", {})[node.inputs[0]] = list(lw.shapes[node.inputs[0]])
            continue
        if node.op in layout.VIEW_OPS or node.op in _SHAPE_ONLY:
            continue
        for value in node.inputs:
            const = lw.graph.constants.get(value) if value else None
            if const is not None and not const.is_parameter and const.type.dtype.is_float:
                lw.value(value)


def _note_precisions(lw: Lowerer, options: LoweringOptions) -> None:
    """Functional runs of float programs are checked in fp32; other precisions are timed only
    (vector ops write their output's precision into tiles sized for another)."""
    labels = {options.weight_precision, options.kv_precision, options.activation_precision}
    if labels != {"fp32"}:
        lw.inexact(f"precisions {sorted(labels)}: float programs are value-exact in fp32 only")


def _check_address_space(graph: Graph, chip: ProgrammableChip, options: LoweringOptions, weights: WeightPlan,
                         kv: StateBytes, fixed_hbm_bytes: int, chips: int) -> None:
    """Raise AddressSpaceError, before anything is emitted, when the HBM regions one chip needs
    (weights, caches, I/O) end beyond what a 40-bit DMA address reaches: such a model fits no HBM
    of today, and is reported as not fitting instead of failing deep inside a kernel."""
    if fixed_hbm_bytes < HBM_ADDRESS_SPACE:
        return
    weights_hbm = weights.per_chip - (weights.sram_resident_bytes if weights.in_sram else 0)
    rest = max(0, fixed_hbm_bytes - weights_hbm - kv.kv_per_chip - kv.state_per_chip)  # I/O, whole cache blocks
    need = fixed_hbm_bytes
    hbm = chip.memory.hbm_bytes
    parts = [f"KV {_size(kv.kv_per_chip)}"] + ([f"state {_size(kv.state_per_chip)}"] if kv.state_per_chip else [])
    parts.append(f"weights {_size(weights_hbm)}")
    if rest >= 1e6:
        parts.append(f"I/O and cache padding {_size(rest)}")
    reason = (f"{' + '.join(parts)} = {_size(need)} exceeds {_size(hbm)} HBM by {_size(need - hbm)}; beyond "
              f"the ISA's {HBM_ADDRESS_SPACE >> 40} TiB HBM address space, so the step was not simulated")
    meta = {
        "target": chip.name, "graph": graph.name, "tensor_parallel": chips, "bindings": options.all_bindings(),
        "weights_in_sram": weights.in_sram,
        "weight_bytes": {"per_chip": weights.per_chip, "total": weights.total},
        "kv_bytes": {"per_chip": kv.kv_per_chip, "total": kv.kv_total},
        "state_bytes": {"per_chip": kv.state_per_chip, "total": kv.state_total},
        "hbm_capacity_bytes": hbm, "sram_capacity_bytes": chip.memory.sram_bytes,
        "fits": False, "fits_reason": reason,
    }
    raise AddressSpaceError(f"{graph.name} on {chip.name}: {reason}", reason, meta)


def _size(nbytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} B"


def _lower_node(lw: Lowerer, node: Node, static: set[str], gathered_outputs: dict) -> None:
    lw.node = node
    lw.tag = layer_kind(lw.graph, node)
    if node.outputs[0] in static:  # placed before the first instruction (_place_constants)
        lw.release_inputs(node)
        return
    gathered = []
    for value in lw.shard.gather_before.get(node.name, ()):
        copy = layout.all_gather(lw, lw.value(value), f"{value}@gathered")
        lw.overrides[value] = copy
        gathered.append(copy)
    try:
        _dispatch(lw, node)
    except LoweringError:
        raise
    except ValueError as error:  # an instruction field out of range: a size the kernels did not cut
        raise LoweringError(f"{node.describe()}: internal: {error}") from error
    lw.overrides.clear()
    for copy in gathered:
        lw.sram.release(copy.buf) if copy.space == "sram" else lw.hbm.release(copy.buf)
    for out in lw.shard.reduce_after.get(node.name, ()):
        layout.collective(lw, CollectiveKind.ALL_REDUCE, lw.values[out])
    for out in node.outputs:
        if out and out in lw.graph.outputs:
            _store_output(lw, out, gathered_outputs)
            lw.release_later(out)  # stored: only its remaining consumers need the working copy
    lw.release_inputs(node)


def _dispatch(lw: Lowerer, node: Node) -> None:
    op = node.op
    if op in _CONTRACTIONS:
        _CONTRACTIONS[op](lw, node)
    elif op == Op.ATTENTION:
        lower_attention(lw, node)
    elif op in layout.VIEW_OPS or op in layout.MOVE_OPS:
        layout.lower_layout(lw, node)
    elif op == Op.CAST and _converts_on_load(lw, node):
        # its consumers read the source and convert as they load: no pass of its own
        lw.alias(node.outputs[0], lw.value(node.inputs[0]))
    elif op == Op.SIGMOID and _feeds_silu_only(lw, node):
        lw.fused.add(node.outputs[0])  # Mul(x, Sigmoid(x)) becomes one SILU
        lw.alias(node.outputs[0], lw.value(node.inputs[0]))
    elif op == Op.MUL and any(v in lw.fused for v in node.inputs):
        x = next(v for v in node.inputs if v not in lw.fused)
        out = lw.new_value(node.outputs[0])
        run_steps(lw, [(VectorOp.SILU, "elem", "in0", "in0", "out")], [lw.value(x)], out,
                  max(1, out.numel // out.shape[-1]), out.shape[-1])
    elif op in SUPPORTED_VECTOR_OPS:
        lower_vector(lw, node)
    else:
        supported = ", ".join(sorted(o.value for o in SUPPORTED_OPS))
        raise LoweringError(f"{node.describe()}: the programmable target cannot lower {op.value}; "
                            f"supported: {supported}")


_CONVERTING = SUPPORTED_VECTOR_OPS | {Op.MATMUL, Op.GEMM, Op.EINSUM}


def _converts_on_load(lw: Lowerer, node: Node) -> bool:
    """A float-to-float Cast whose every consumer is vector or matrix work (never stored)."""
    source, out = lw.graph.type_of(node.inputs[0]).dtype, node.output_types[0].dtype
    consumers = lw.graph.consumers(node.outputs[0])
    return (source.is_float and out.is_float and node.outputs[0] not in lw.graph.outputs and bool(consumers)
            and all(c.op in _CONVERTING for c in consumers) and not lw.shard.reduce_after.get(node.name))


def _feeds_silu_only(lw: Lowerer, node: Node) -> bool:
    x = node.inputs[0]
    consumers = lw.graph.consumers(node.outputs[0])
    return bool(consumers) and node.outputs[0] not in lw.graph.outputs and all(
        c.op == Op.MUL and x in c.inputs and node.outputs[0] in c.inputs for c in consumers)


def _store_output(lw: Lowerer, name: str, gathered_outputs: dict) -> None:
    value = lw.values[name]
    if name in gathered_outputs:
        full = layout.all_gather(lw, value, f"{name}@gathered")
        region = gathered_outputs[name]
        _copy_to_region(lw, full, region)
        (lw.sram if full.space == "sram" else lw.hbm).release(full.buf)
        return
    region = lw.output_bufs.get(name)
    if region is None or value.buf is region:
        return
    _copy_to_region(lw, value, region)


def _copy_to_region(lw: Lowerer, value: Value, region: Buf) -> None:
    if value.space == "sram":
        layout.store(lw, value, region.addr, region)
        return
    target = Value(value.name, region, region.addr, value.shape, value.bits, value.precision)
    row = value.shape[-1] if value.shape else 1
    run_steps(lw, [(VectorOp.COPY, "elem", "in0", "in0", "out")], [value], target, max(1, value.numel // row), row)


def _input_bits(graph: Graph, name: str, options: LoweringOptions) -> int:
    dtype = graph.inputs[name].dtype
    return PRECISION_BITS[options.kv_precision] if dtype.is_float and is_kv_input(name) else dtype.bits


def _check_precisions(chip: ProgrammableChip, options: LoweringOptions) -> None:
    supported = ", ".join(chip.systolic.macs_per_pe_per_cycle)
    if PRECISION_BITS[options.kv_precision] < 8:  # cache blocks are addressed in whole bytes
        raise LoweringError(f"kv_precision {options.kv_precision!r}: the KV cache is stored in whole bytes; "
                            "use int8, fp8, bf16, fp16 or fp32")
    for field in ("weight_precision", "activation_precision"):
        precision = getattr(options, field)
        if not chip.supports(precision):
            raise LoweringError(f"{field} {precision!r}: {chip.name} has no {precision} matrix path; "
                                f"it supports {supported}")


def _is_integer_graph(graph: Graph) -> bool:
    """Integer MatMuls and no floating-point tensor at all: the exact integer lowering."""
    if any(t.dtype.is_float for t in graph.inputs.values()):
        return False
    if any(c.type.dtype.is_float for c in graph.constants.values()):
        return False
    nodes = graph.nodes()
    return any(n.op == Op.MATMUL for n in nodes) and all(
        not t.dtype.is_float for node in nodes for t in node.output_types)


def _static_values(graph: Graph) -> set[str]:
    """Values computable at compile time once shapes are bound (masks from Range, shape math)."""
    static: set[str] = set()
    for node in graph.nodes():
        inputs = [v for v in node.inputs if v]
        if node.op in _SHAPE_ONLY or (
            node.op not in _NOT_FOLDED and inputs and all(
                v in static or (v in graph.constants and not graph.constants[v].is_parameter) for v in inputs)):
            static.update(o for o in node.outputs if o)
    return static


def _working_set_bytes(graph: Graph, shapes: dict, shard: ShardPlan, static: set[str],
                       chip: ProgrammableChip) -> int:
    """SRAM the program needs beside resident weights: the peak of live activations (capped:
    larger ones spill to HBM) plus streaming staging (caches, tiles)."""
    uses: dict[str, int] = {}
    for node in graph.nodes():
        for value in node.inputs:
            if value:
                uses[value] = uses.get(value, 0) + 1
    live, peak, current = {}, 0, 0
    outputs = set(graph.outputs)  # graph outputs are written to their HBM regions
    for node in graph.nodes():
        if node.op not in layout.VIEW_OPS:
            for out, ttype in zip(node.outputs, node.output_types):
                if out and out not in static and out not in outputs:
                    size = math.prod(shard.local_shape(out, shapes[out])) * ttype.dtype.bits // 8
                    live[out] = size
                    current += size
        peak = max(peak, current)
        for value in node.inputs:
            if value in live:
                uses[value] -= 1
                if uses[value] == 0:
                    current -= live.pop(value)
    sram = chip.memory.sram_bytes
    return min(peak, sram // 8) + min(sram // 16, 32 << 20)


def _weight_bytes_per_step(graph: Graph, shapes: dict, shard: ShardPlan, weights: WeightPlan) -> int:
    """Weight bytes one step must read from HBM: each streamed weight once per use, as much of it
    as this chip's shard of the use needs (a GEMM's [K, N] slice, a vector operand whole).
    Rows looked up in an embedding table are not counted."""
    total = 0
    for name, nbytes in weights.local_bytes.items():
        if weights.in_sram and name not in weights.tables:
            continue
        for node in graph.consumers(name):
            chain = node
            while chain.op in (Op.TRANSPOSE, Op.CAST, Op.IDENTITY) and graph.consumers(chain.outputs[0]):
                chain = graph.consumers(chain.outputs[0])[0]
            if chain.op == Op.GATHER and chain.inputs[0] in (name, node.outputs[0]):
                continue
            if chain.op in (Op.MATMUL, Op.GEMM):
                a, out = chain.inputs[0], chain.outputs[0]
                k = shard.local_shape(a, shapes[a])[-1]
                n = shard.local_shape(out, shapes[out])[-1]
                total += math.ceil(k * n * weights.bits[name] / 8)
            else:
                total += nbytes
    return total
