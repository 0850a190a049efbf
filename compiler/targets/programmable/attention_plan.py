"""What the streaming attention kernel works with before it emits anything: the problem's
shape, what the mask is (built from positions, read, or absent) and the tile plan.

Plans for long inputs are chosen by estimated time from the simulator's own cost models
(`StreamTimer`); decode plans by the fewest instructions (see `choose_plan`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from compiler.ir.graph import Node
from compiler.targets.programmable.context import Lowerer, Value
from compiler.targets.programmable.folding import fold_static
from compiler.targets.programmable.isa import Precision, VectorOp
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.tiling import DMA_ROW_LIMIT, GEMM_DIM_LIMIT
from compiler.targets.programmable.vector import LENGTH_LIMIT

V = VectorOp


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    past: int
    head_dim: int
    v_dim: int
    fresh: int       # new key positions in the K / V inputs (q_len, or more: a memory prefix)
    q_start: int     # the position of the first query: query i may see keys up to q_start + i

    @property
    def group(self) -> int:
        return self.q_heads // self.kv_heads

    @property
    def total(self) -> int:
        return self.past + self.fresh


@dataclass(frozen=True)
class TilePlan:
    heads: int  # (sequence, KV head) pairs per stream
    q_block: int
    block: int




def is_causal(node: Node) -> bool:
    """ONNX's is_causal, or the recognition pass's tessera_mask = "causal"."""
    return bool(node.attr("is_causal", 0)) or str(node.attr("tessera_mask", "")).lower() == "causal"


def causal_only(node: Node, has_mask: bool) -> bool:
    """The mask is the causal one and nothing else (no padding, window or sparsity): the kernel
    builds it from positions instead of reading it."""
    if not is_causal(node) or node.attr("tessera_window") is not None or node.attr("left_window_size", -1) >= 0:
        return False
    if node.attr("tessera_kept_blocks") is not None:
        return False
    return not has_mask or tuple(node.attr("tessera_mask_parts", ()) or ()) == ("causal",)


MASK_CHECK_ELEMENTS = 1 << 22  # larger compile-time masks are taken as the recognition pass read them


def checked_causal(lw: Lowerer, node: Node, shape: AttentionShape) -> tuple[AttentionShape, bool]:
    """A causal mask the graph computes from shapes alone is evaluated here and compared with
    "query i sees keys j <= offset + i": when it is that, the kernel builds it from positions
    with the offset the mask has (a memory prefix shifts it); when it is not (a pad, a window the
    recognizer did not see), the kernel reads it. A mask known only at run time, or too large
    to evaluate, is trusted to be what recognition found."""
    name = node.inputs[3]
    if name not in lw.program.meta.get("static_values", ()) or math.prod(lw.shapes[name]) > MASK_CHECK_ELEMENTS:
        return shape, True
    offset = causal_offset(fold_static(lw, name), shape.q_len, shape.total)
    if offset is None:
        return shape, False
    return dataclasses.replace(shape, q_start=offset), True


def mask_readable(mask: Value, shape: AttentionShape, precision: Precision) -> bool:
    """A mask the kernel can add to fp32 scores as it is: fp32 values (the fp32 programs the
    functional mode runs), one per key, leading axes per sequence / query head or broadcast."""
    dims = (1,) * (4 - len(mask.shape)) + tuple(mask.shape)
    return (len(mask.shape) <= 4 and not mask.broadcast and mask.precision == Precision.FP32 and mask.bits == 32
            and dims[0] in (1, shape.batch) and dims[1] in (1, shape.q_heads) and dims[2] in (1, shape.q_len)
            and dims[3] == shape.total)


def causal_offset(mask: np.ndarray, q_len: int, total: int) -> int | None:
    """The offset c with mask == (0 where key j <= c + query i, else -inf) for every leading
    index (a bool mask: True where visible), or None when the mask is anything else."""
    if mask.ndim < 2 or mask.shape[-1] != total or mask.shape[-2] not in (1, q_len):
        return None
    grids = np.broadcast_to(mask, (*mask.shape[:-2], q_len, total)).reshape(-1, q_len, total)
    if any(not np.array_equal(grids[0], grid) for grid in grids[1:]):
        return None
    grid = grids[0]
    visible = grid if grid.dtype == np.bool_ else grid == 0
    if grid.dtype != np.bool_ and not (visible | np.isneginf(grid)).all():
        return None
    offset = int(visible[0].sum()) - 1
    expected = np.arange(total)[None, :] <= np.arange(q_len)[:, None] + offset
    return offset if np.array_equal(visible, expected) else None


def attention_shape(lw: Lowerer, node: Node) -> AttentionShape:
    q = lw.local_shape(node.inputs[0])
    k = lw.local_shape(node.inputs[1])
    v = lw.local_shape(node.inputs[2])
    past = lw.local_shape(node.inputs[4])[2] if node.input(4) else 0
    if len(q) == 4:
        batch, q_heads, kv_heads, q_len, fresh, head_dim, v_dim = q[0], q[1], k[1], q[2], k[2], q[3], v[3]
    else:
        head_dim = lw.shapes[node.inputs[0]][2] // node.attr("q_num_heads")
        v_dim = lw.shapes[node.inputs[2]][2] // node.attr("kv_num_heads")
        batch, q_heads, kv_heads, q_len, fresh = q[0], q[2] // head_dim, k[2] // head_dim, q[1], k[1]
    # ONNX's is_causal sees key j from query i when j <= past + i; a mask the graph builds
    # aligns the queries with the last keys (a memory prefix before the new tokens is visible)
    q_start = past if node.input(3) == "" else past + fresh - q_len
    return AttentionShape(batch, q_heads, kv_heads, q_len, past, head_dim, v_dim, fresh, q_start)




class StreamTimer:
    """Estimated seconds of streaming attention with a given tiling, from the simulator's own cost
    models: per cache block, the two GEMMs per head and the online-softmax vector work, or the
    block's K and V DMAs (latency + bytes) when those take longer. Long inputs (prefill) pick
    their tiles with it: the fewest emitted instructions would favour tall query blocks over
    wide cache blocks, and narrow cache blocks leave most of a wide machine's arrays idle and
    pay the DMA latency on every few kilobytes."""

    def __init__(self, lw: Lowerer, shape: AttentionShape, kv_bits: int, masked: bool, causal: bool, label: str,
                 built: bool = False) -> None:
        self.chip, self.s, self.e, self.label = lw.chip, shape, kv_bits // 8, label
        self.masked, self.causal, self.built = masked, causal, built

    def seconds(self, plan: TilePlan) -> float:
        from simulator.programmable.costs.systolic import gemm_cycles
        from simulator.programmable.costs.vector import vector_cycles

        chip, s, b = self.chip, self.s, plan.block
        pairs = s.batch * s.kv_heads
        q_blocks = math.ceil(s.q_len / plan.q_block)
        streams = pairs // plan.heads * q_blocks
        seen = s.q_start + (s.q_len + plan.q_block) / 2 if self.causal else s.total
        steps = streams * math.ceil(seen / b)
        group_rows = s.group * min(plan.q_block, s.q_len)
        rows = plan.heads * group_rows
        gemm = plan.heads * (gemm_cycles(chip, group_rows, b, s.head_dim, self.label)
                             + gemm_cycles(chip, group_rows, s.v_dim, b, self.label))
        vector = sum(vector_cycles(chip, op, rows * b) for op in (V.REDUCE_MAX, V.SUB, V.EXP, V.REDUCE_SUM))
        vector += vector_cycles(chip, V.MUL, rows * s.v_dim) + 6 * vector_cycles(chip, V.MUL, rows)
        mask = 0
        if self.built:    # CMP_LT and SELECT over the blocks the diagonal crosses (the rest need none)
            mask = vector_cycles(chip, V.CMP_LT, rows * b) + vector_cycles(chip, V.SELECT, rows * b)
        elif self.masked:
            vector += vector_cycles(chip, V.ADD, rows * b)
        compute = (gemm + vector) / chip.clock_hz
        nbytes = plan.heads * b * (s.head_dim + s.v_dim) * self.e
        dma = 2 * chip.memory.hbm_latency_s + nbytes / chip.memory.hbm_bytes_per_s
        diagonal = min(steps, streams * (math.ceil(min(plan.q_block, s.q_len) / b) + 1)) if mask else 0
        return (steps - diagonal) * max(compute, dma) + diagonal * max(compute + mask / chip.clock_hz, dma)


def choose_plan(lw: Lowerer, shape: AttentionShape, kv_bits: int, masked: bool, budget: int,
                 timer: StreamTimer | None = None, built: bool = False, fresh_tiles: bool | None = None) -> TilePlan:
    """Largest blocks that fit the staging budget with the fewest instructions (decode), or the
    shortest estimated time (longer inputs, `timer`). `built`: the causal mask is built (its
    position vectors are staged too); `fresh_tiles`: new K goes through the array (the identity
    is staged, and K's block too when True: it streams from HBM)."""
    pairs = shape.batch * shape.kv_heads
    total = shape.total
    best: tuple[float, int, TilePlan] | None = None
    timed: list[tuple[int, float, int, TilePlan]] = []
    q_blocks = [shape.q_len // (1 << i) for i in range(12) if shape.q_len // (1 << i) >= 1]
    for heads in sorted({pairs, 1}, reverse=True):
        for q_block in q_blocks:
            for block in (1024, 512, 256, 128, 64, 32, 16):
                if block > max(16, 2 * total):
                    continue
                rows = heads * shape.group * q_block
                if rows * max(block, shape.v_dim) > LENGTH_LIMIT or shape.group * q_block > GEMM_DIM_LIMIT:
                    continue  # a VECTOR length and a GEMM m are fixed-width fields
                need = rows * (block * (4 + kv_bits // 8 + (2 if masked else 0)) + shape.v_dim * 4
                               + shape.head_dim * 2 + 32)
                need += heads * block * (shape.head_dim + shape.v_dim) * kv_bits // 8
                if built:
                    need += rows * 8 + block * 4 + 64
                if fresh_tiles is not None:
                    need += shape.head_dim * shape.head_dim * kv_bits // 8
                    need += heads * block * shape.head_dim * kv_bits // 8 if fresh_tiles else 0
                if need > budget:
                    continue
                e = kv_bits // 8
                if max(shape.head_dim, shape.v_dim) * min(q_block, shape.q_len) * max(e, 4) > DMA_ROW_LIMIT:
                    continue  # the query block is gathered / stored as one DMA row per head
                body = 14 + 2 * heads
                streams = (pairs // heads) * math.ceil(shape.q_len / q_block)
                instructions = streams * (3 * body + 8)
                if timer is not None:
                    timed.append((instructions, timer.seconds(TilePlan(heads, q_block, block)), -block,
                                  TilePlan(heads, q_block, block)))
                    continue
                key = (instructions * (1.0 if block >= min(1024, total) else 1.05), -block)
                if best is None or key < best[:2]:
                    best = (key[0], key[1], TilePlan(heads, q_block, block))
    if timed:
        # the fastest plan whose code (query blocks are unrolled, cache blocks loop) stays within
        # twice the most compact plan's
        allowed = 2 * min(t[0] for t in timed)
        return min((t for t in timed if t[0] <= allowed), key=lambda t: (t[1], t[2]))[3]
    if best is None:
        raise LoweringError(f"{lw.where()}: no attention tile fits {budget} bytes of SRAM staging")
    return best[2]


