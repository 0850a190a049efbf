"""Data movement on values: Pad, Slice, Split, Concat, Transpose and Tile lowered for the fp32
chip and run by the functional simulator, against the IR interpreter, bit for bit (they copy).

Each op runs with its source and its result in SRAM and in HBM: a graph input and a graph output
live in HBM; Neg before and after the op (exact in float32) keeps the values in SRAM; on a chip
with 256 KiB of SRAM the same values exceed the 32 KiB a value may take there and live in HBM, so
the moves go through SRAM tiles.
"""

from __future__ import annotations

import numpy as np
import pytest
from value_runs import chip_with_sram, run_program

from compiler.interp.run import run_graph
from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.tensor import Constant, TensorType
from compiler.passes.fold import GraphBuilder
from compiler.targets.programmable.isa import DmaStore, Vector2D
from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringOptions
from simulator.programmable import simulate_program

FP32 = LoweringOptions(weight_precision="fp32", kv_precision="fp32", activation_precision="fp32", tensor_parallel=1)
PLACEMENTS = ["hbm->hbm", "sram->sram", "hbm->sram", "sram->hbm", "streamed"]


def small_chip(sram_bytes: int = 256 << 10):
    return chip_with_sram(sram_bytes)


class _Graph:
    def __init__(self, name: str) -> None:
        self.graph = Graph(name, opset=18)
        self.fold = GraphBuilder(self.graph)
        self.count = 0

    def input(self, name: str, shape: tuple[int, ...], dtype: DType = DType.FLOAT32) -> str:
        self.graph.add_input(name, TensorType(dtype, shape))
        return name

    def const(self, value, dtype: DType = DType.INT64) -> str:
        array = np.asarray(value, dtype=dtype.numpy)
        self.count += 1
        name = f"c{self.count}"
        self.fold.add_constant(Constant(name, TensorType(dtype, array.shape), data=array, is_parameter=False))
        return name

    def op(self, op: Op, *inputs: str, outputs: int = 1, **attrs) -> list[str]:
        self.count += 1
        name = f"{op.value}_{self.count}"
        outs = [f"{name}:{i}" for i in range(outputs)]
        self.fold.emit(name, op, list(inputs), outs, attrs)
        return outs

    def output(self, *values: str) -> Graph:
        self.graph.outputs.extend(values)
        return self.graph


def _build(placement: str, shapes: list[tuple[int, ...]], body) -> Graph:
    """inputs -> [Neg] -> body -> [Neg] -> outputs, Neg where the placement wants SRAM."""
    g = _Graph(f"layout_{placement}")
    sources = [g.input(f"x{i}", shape) for i, shape in enumerate(shapes)]
    src_sram = placement in ("sram->sram", "sram->hbm", "streamed")
    dst_sram = placement in ("sram->sram", "hbm->sram", "streamed")
    if src_sram:
        sources = [g.op(Op.NEG, s)[0] for s in sources]
    results = body(g, *sources)
    if dst_sram:
        results = [g.op(Op.NEG, r)[0] for r in results]
    return g.output(*results)


def _run(graph: Graph, chip=None, seed: int = 0, inputs: dict | None = None):
    chip = chip or small_chip(4 << 20)  # small memory images: fast runs
    program = lower_graph(graph, chip, FP32)
    assert program.meta["isa_gaps"] == {}
    assert program.meta["not_value_exact"] == []
    rng = np.random.default_rng(seed)
    if inputs is None:
        inputs = {}
        for name, ttype in graph.inputs.items():
            shape = tuple(int(d) for d in ttype.shape)
            if ttype.dtype.is_float:
                inputs[name] = rng.standard_normal(shape).astype(ttype.dtype.numpy)
            else:
                inputs[name] = rng.integers(-(1 << 40), 1 << 40, shape).astype(ttype.dtype.numpy)
    _, got = run_program(program, graph, inputs, chip)
    expected = run_graph(graph, inputs)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape and got[name].dtype == value.dtype, name
        assert got[name].tobytes() == value.tobytes(), name  # a copy: bit for bit
    assert simulate_program(program, chip).time_s > 0  # the same program is timed
    return program


def _chip_for(placement: str):
    return small_chip() if placement == "streamed" else None


def _shape(placement: str, small: tuple[int, ...], large: tuple[int, ...]) -> tuple[int, ...]:
    return large if placement == "streamed" else small


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("pads", [
    [0, 0, 2, 0, 0, 0, 0, 0],           # before, along one axis (a sliding-window pad)
    [0, 1, 0, 3, 0, 2, 1, 0],           # several axes, both sides
    [0, 0, -1, 0, 0, 0, 2, -3],         # negative widths crop
    [1, 0, 0, 1, 0, 0, 0, 0],           # the outermost axis
])
def test_constant_pad(placement, pads):
    shape = _shape(placement, (2, 3, 5, 6), (2, 3, 40, 72))
    fill = -np.inf if pads[2] else 1.5

    def body(g, x):
        return g.op(Op.PAD, x, g.const(pads), g.const(fill, DType.FLOAT32), mode="constant")

    _run(_build(placement, [shape], body), _chip_for(placement))


def test_pad_of_int64_values_fills_whole_words():
    """Token ids padded with zeros (an n-gram hash's history): 64-bit elements as 32-bit words."""
    g = _Graph("pad_ids")
    ids = g.input("ids", (2, 7), DType.INT64)
    out = g.op(Op.PAD, ids, g.const([0, 2, 0, 1]))[0]
    _run(g.output(out))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([1], [4], [2], [1]),                        # one axis, rows of the others in between
    ([1, 0, 2], [3, 5, 6], [0, 2, 3], [1, 2, 1]),  # several axes, a step
    ([-1], [-(1 << 62)], [3], [-1]),             # reversed along the innermost axis
    ([4, 1], [0, 3], [2, 1], [-2, 1]),           # a negative step on an outer axis
    ([0], [1], [3], [1]),                        # one column: 4-byte runs
])
def test_slice(placement, starts, ends, axes, steps):
    shape = _shape(placement, (2, 3, 5, 6), (2, 3, 72, 40))

    def body(g, x):
        return g.op(Op.SLICE, x, g.const(starts), g.const(ends), g.const(axes), g.const(steps))

    _run(_build(placement, [shape], body), _chip_for(placement))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_split(placement, axis):
    shape = _shape(placement, (4, 3, 6, 8), (4, 3, 40, 64))
    sizes = [1, shape[axis] - 1]

    def body(g, x):
        return g.op(Op.SPLIT, x, g.const(sizes), outputs=2, axis=axis)

    _run(_build(placement, [shape], body), _chip_for(placement))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_concat(placement, axis):
    base = _shape(placement, (2, 3, 4, 5), (2, 3, 24, 64))
    shapes = [tuple(n + (i if a == axis else 0) for a, n in enumerate(base)) for i in range(3)]

    def body(g, *parts):
        return g.op(Op.CONCAT, *parts, axis=axis)

    _run(_build(placement, shapes, body), _chip_for(placement))


@pytest.mark.parametrize("placement, perm", [
    (placement, perm) for placement in PLACEMENTS for perm in ([0, 2, 1, 3], [0, 1, 3, 2], [3, 1, 0, 2], [2, 3, 0, 1])
    if (placement, perm) != ("streamed", [3, 1, 0, 2])  # refused: the test below
])
def test_transpose(placement, perm):
    shape = _shape(placement, (2, 3, 4, 5), (2, 8, 24, 64))

    def body(g, x):
        return g.op(Op.TRANSPOSE, x, perm=perm)

    _run(_build(placement, [shape], body), _chip_for(placement))


def test_a_transpose_the_instructions_cannot_express_is_refused_by_name():
    """Through 256 KiB of SRAM, no axis of this transpose is contiguous on both sides: 24576 rows of
    one element by DMA (each would still occupy a 64-byte line), or more strided copies than the
    limit. It is timed as a copy, and the functional run refuses it naming the node."""
    graph = _build("hbm->hbm", [(2, 8, 24, 64)], lambda g, x: g.op(Op.TRANSPOSE, x, perm=[3, 1, 0, 2]))
    program = lower_graph(graph, small_chip(), FP32)
    assert any(note.startswith("Transpose_") and "timed as a copy" in note for note in program.meta["not_value_exact"])


@pytest.mark.parametrize("placement", ["hbm->hbm", "sram->sram"])
def test_tile(placement):
    def body(g, x):
        return g.op(Op.TILE, x, g.const([2, 1, 3]))

    _run(_build(placement, [(2, 3, 4)], body))


def test_transpose_of_a_broadcast_reads_the_repeated_rows():
    """GQA-style: Expand repeats a head, a reshape merges the repeats with the heads (no single
    stride), then a transpose: the broadcast is made dense first, and the result is exact."""
    def body(g, x):
        expanded = g.op(Op.EXPAND, g.op(Op.UNSQUEEZE, x, g.const([2]))[0], g.const([1, 2, 3, 5, 4]))[0]
        merged = g.op(Op.RESHAPE, expanded, g.const([1, 6, 5, 4]))[0]
        return g.op(Op.TRANSPOSE, merged, perm=[0, 1, 3, 2])

    _run(_build("sram->sram", [(1, 2, 5, 4)], body))


def test_moves_use_strided_instructions_not_copies():
    """A slice out of SRAM into HBM is DMA rows at the source's pitch; a transpose in SRAM is
    VECTOR_2D grids: the moves are what the program times."""
    def body(g, x):
        return g.op(Op.SLICE, x, g.const([1]), g.const([5]), g.const([2]))

    program = _run(_build("sram->hbm", [(2, 3, 6, 16)], body))
    stores = [i for i in program.instructions if isinstance(i, DmaStore)]
    assert any(i.row_bytes == 4 * 16 * 4 and i.sram_loop_stride == 6 * 16 * 4 for i in stores)
    program = _run(_build("sram->sram", [(2, 3, 4, 5)], lambda g, x: g.op(Op.TRANSPOSE, x, perm=[0, 2, 1, 3])))
    assert any(isinstance(i, Vector2D) and i.rows > 1 and i.a_row_stride != i.dst_row_stride
               for i in program.instructions)


def _cache_graph(new_in_sram: bool, other_reader: bool = False, dim: int = 4) -> Graph:
    g = _Graph("append")
    past = g.input("past_key_values.0.key", (1, 2, 5, dim))
    new = g.input("new", (1, 2, 1, dim))
    if new_in_sram:
        new = g.op(Op.NEG, new)[0]
    present = g.op(Op.CONCAT, past, new, axis=2)[0]
    graph = g.output(present)
    if other_reader:
        graph.outputs.append(g.op(Op.NEG, past)[0])
    producer = graph.producer(present)  # the present output is named as a cache output
    graph.remove_node(producer.name)
    graph.add_node(Node(producer.name, producer.op, producer.inputs, ("present.0.key",), producer.output_types,
                        producer.attrs))
    graph.outputs[0] = "present.0.key"
    return graph


@pytest.mark.parametrize("new_in_sram", [True, False])
@pytest.mark.parametrize("dim", [4, 16])
def test_row_major_cache_append_round_trips_through_the_memory_images(new_in_sram, dim):
    """present = Concat(past, new) along positions, in the past's region: two heads, so the past
    sits at the present's row pitch in the HBM image and only the new rows are written (a row of
    a full line by DMA; shorter ones through the span between them, loaded first)."""
    graph = _cache_graph(new_in_sram, dim=dim)
    program = _run(graph)
    assert program.meta["appended_caches"] == {"past_key_values.0.key": {"axis": 2, "shape": [1, 2, 6, dim]}}
    assert program.regions["present.0.key"].addr == program.regions["past_key_values.0.key"].addr
    cache = program.regions["present.0.key"]
    written = sum(i.rows * i.row_bytes for i in program.instructions
                  if isinstance(i, DmaStore) and cache.addr <= i.hbm_addr < cache.addr + cache.nbytes)
    assert written == 2 * dim * 4 if dim * 4 >= 64 else written < 2 * 5 * dim * 4  # never the whole past


def test_cache_append_with_another_reader_of_the_past_is_refused():
    """Another node reads the past densely while the image lays it out at the present's pitch."""
    program = lower_graph(_cache_graph(True, other_reader=True), small_chip(4 << 20), FP32)
    assert any("row-major cache append" in note for note in program.meta["not_value_exact"])


def test_constant_first_read_after_emission_is_loaded_from_its_own_hbm_bytes():
    """An int32 constant first read by the second node (integer constants are not placed up
    front): its value lives in HBM bytes no kernel was given, and a DMA loads it into SRAM, so
    scratch the first node used cannot clobber it."""
    g = _Graph("late_constant")
    floats = g.input("f", (64, 64))
    ints = g.input("i", (4, 8), DType.INT32)
    first = g.op(Op.NEG, g.op(Op.EXP, floats)[0])[0]
    second = g.op(Op.CONCAT, ints, g.const(np.arange(32).reshape(4, 8) - 7, DType.INT32), axis=0)[0]
    program = _run(g.output(first, second))
    constant = next(name for name in program.regions if name.startswith("c"))
    assert program.regions[constant].space == "hbm"
    output = program.regions[second]
    assert program.regions[constant].addr >= output.addr + output.nbytes  # beyond the fixed regions
