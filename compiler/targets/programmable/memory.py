"""The fixed memory map of a program: resident weights, HBM regions for weights, caches and I/O.

SRAM: resident weights from address 0 (when they fit), then the arena that activations and
kernel staging share. HBM: streamed weights and lookup tables, caches sized for the appended
tokens (the present output is the same region), other inputs, outputs, then scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.targets.programmable.arena import Arena, align
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.placement import WeightPlan, is_kv_input
from compiler.targets.programmable.program import Region
from compiler.targets.programmable.sharding import ShardPlan
from simulator.hardware.programmable import PRECISION_BITS, ProgrammableChip

HBM_ADDRESS_SPACE = 1 << 40


@dataclass
class MemoryMap:
    sram: Arena
    hbm: Arena
    param_bufs: dict[str, Buf]
    input_bufs: dict[str, Buf]
    output_bufs: dict[str, Buf]  # outputs produced straight into their region
    gathered_outputs: dict[str, Buf]  # outputs all-gathered before they are stored
    capacity: dict[str, int]  # cache inputs with room for appended positions: bytes
    regions: dict[str, Region]
    fixed_hbm_bytes: int
    io_bytes: int


CACHE_BLOCK_POSITIONS = 1024  # the attention kernel's cache blocks divide this (powers of two up to it)


def cache_aliases(graph: Graph) -> dict[str, str]:
    """present output -> past input, for caches appended in place (Concat or Attention)."""
    aliases: dict[str, str] = {}
    outputs = set(graph.outputs)
    for node in graph.nodes():
        if node.op == Op.CONCAT and node.inputs and node.inputs[0] in graph.inputs:
            if node.outputs[0] in outputs and graph.inputs[node.inputs[0]].dtype.is_float:
                aliases[node.outputs[0]] = node.inputs[0]
        elif node.op == Op.ATTENTION:
            for past_index, out_index in ((4, 1), (5, 2)):
                past = node.input(past_index)
                if past and len(node.outputs) > out_index and node.outputs[out_index]:
                    aliases[node.outputs[out_index]] = past
    return aliases


def plan_memory(graph: Graph, shapes: dict[str, tuple[int, ...]], shard: ShardPlan, chip: ProgrammableChip,
                weights: WeightPlan, kv_precision: str) -> MemoryMap:
    regions: dict[str, Region] = {}
    param_bufs: dict[str, Buf] = {}
    sram_next = 0
    hbm_next = 0

    def place(name: str, space: str, nbytes: int) -> Buf:
        nonlocal sram_next, hbm_next
        if space == "sram":
            buf, sram_next = Buf(name, "sram", sram_next, align(nbytes)), sram_next + align(nbytes)
        else:
            buf, hbm_next = Buf(name, "hbm", hbm_next, align(nbytes)), hbm_next + align(nbytes)
        regions[name] = Region(name, space, buf.addr, buf.nbytes)
        return buf

    for name, nbytes in weights.local_bytes.items():
        resident = weights.in_sram and name not in weights.tables
        param_bufs[name] = place(name, "sram" if resident else "hbm", nbytes)

    kv_bits = PRECISION_BITS[kv_precision]
    aliases = cache_aliases(graph)
    capacity: dict[str, int] = {}
    input_bufs: dict[str, Buf] = {}
    blocked = _attention_caches(graph)
    for present, past in aliases.items():
        shape = shard.local_shape(present, shapes[present])
        if past in blocked:  # whole blocks: the appended token may open a new one
            shape = whole_blocks(shape)
        capacity[past] = max(capacity.get(past, 0), _bytes(shape, _bits(graph, past, kv_bits)))
    io_bytes = 0
    for name, ttype in graph.inputs.items():
        nbytes = max(_bytes(shard.local_shape(name, shapes[name]), _bits(graph, name, kv_bits)), capacity.get(name, 0))
        input_bufs[name] = place(name, "hbm", nbytes)
        if not ttype.dtype.is_float:
            io_bytes += nbytes
    output_bufs: dict[str, Buf] = {}
    gathered: dict[str, Buf] = {}
    for name in graph.outputs:
        if name in aliases:
            buf = input_bufs[aliases[name]]
            regions[name] = Region(name, "hbm", buf.addr, buf.nbytes)
            output_bufs[name] = buf
            continue
        if name in shard.gather_outputs:
            gathered[name] = place(name, "hbm", _bytes(shapes[name], graph.type_of(name).dtype.bits))
        else:
            shape = shard.local_shape(name, shapes[name])
            output_bufs[name] = place(name, "hbm", _bytes(whole_blocks(shape) if name in blocked else shape,
                                                          _bits(graph, name, kv_bits)))
        io_bytes += regions[name].nbytes
    hbm_base = align(hbm_next, 1 << 12)
    sram = Arena("sram", sram_next, chip.memory.sram_bytes - sram_next)
    # regions past the 40-bit space cannot be addressed: the lowering reports that (AddressSpaceError)
    hbm = Arena("hbm", hbm_base, max(0, HBM_ADDRESS_SPACE - hbm_base))
    return MemoryMap(sram, hbm, param_bufs, input_bufs, output_bufs, gathered, capacity, regions, hbm_next, io_bytes)


def whole_blocks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A [batch, heads, positions, dim] cache shape with positions rounded up to whole blocks."""
    positions = -(-shape[2] // CACHE_BLOCK_POSITIONS) * CACHE_BLOCK_POSITIONS
    return shape[:2] + (positions,) + shape[3:]


def _attention_caches(graph: Graph) -> set[str]:
    """Caches the attention kernel reads in blocks: past inputs and present outputs."""
    names: set[str] = set()
    for node in graph.nodes():
        if node.op == Op.ATTENTION:
            names |= {node.input(i) for i in (4, 5) if node.input(i)}
            names |= {node.outputs[i] for i in (1, 2) if len(node.outputs) > i and node.outputs[i]}
    return names


def _bits(graph: Graph, name: str, kv_bits: int) -> int:
    dtype = graph.type_of(name).dtype
    return kv_bits if dtype.is_float and is_kv_input(name) else dtype.bits


def _bytes(shape: tuple[int, ...], bits: int) -> int:
    return math.ceil(math.prod(shape) * bits / 8)
