"""Streaming (flash-style) attention for `Op.ATTENTION`: the scores never leave SRAM.

The KV cache is laid out in blocks of `block` positions, each block holding every
(sequence, KV head) of the chip: K transposed ([d, block], so QK^T is a plain GEMM) and V
row-major ([block, dv]). One DMA fetches a block for all heads; one GEMM per KV head
multiplies it with the `group` query heads that share it (GQA); the online-softmax vector
ops run once over all heads' rows. K and V blocks alternate in their own slots, so the
fetch of one overlaps the GEMMs of the other.

Decode folds the new token into the running softmax from SRAM and appends it to the cache
with two strided DMA stores; longer inputs are first written into the cache and streamed
like the past. Causal prefill skips the blocks after each query block; a window streams only
the window; block-sparse attention streams only the kept blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.ir.graph import Node
from compiler.targets.programmable.context import PRECISION_OF, Lowerer, StagingFull, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import DmaLoad, DmaStore, Gemm, Precision, Vector, VectorOp
from compiler.targets.programmable.memory import whole_blocks
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.tiling import DMA_ROW_LIMIT, GEMM_DIM_LIMIT, choose_split
from compiler.targets.programmable.vector import LENGTH_LIMIT, run_steps

V = VectorOp
FRESH_IN_SRAM = 16  # at most this many new tokens join the softmax straight from SRAM
# (op, per-row?, a, b, dst) of the online softmax for one block; "S" scores, "P" probabilities
_ONLINE_SOFTMAX = (
    (V.REDUCE_MAX, "reduce", "S", "S", "mb"), (V.MAX, "row", "m", "mb", "mn"), (V.SUB, "elem", "S", "mn", "S"),
    (V.EXP, "elem", "S", "S", "P"), (V.REDUCE_SUM, "reduce", "P", "P", "lb"), (V.SUB, "row", "m", "mn", "a"),
    (V.EXP, "row", "a", "a", "a"), (V.MUL, "row", "l", "a", "l"), (V.ADD, "row", "l", "lb", "l"),
    (V.MUL, "out", "O", "a", "O"), (V.COPY, "row", "mn", "mn", "m"),
)


@dataclass(frozen=True)
class _Shape:
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    past: int
    head_dim: int
    v_dim: int

    @property
    def group(self) -> int:
        return self.q_heads // self.kv_heads


@dataclass(frozen=True)
class _Plan:
    heads: int  # (sequence, KV head) pairs per stream
    q_block: int
    block: int


def lower_attention(lw: Lowerer, node: Node) -> None:
    shape = _shape(lw, node)
    if len(node.outputs) > 3 and node.outputs[3] and (lw.uses.get(node.outputs[3], 0) > 0):
        raise LoweringError(f"{node.describe()}: the attention-probabilities output would materialize "
                            "q_len x kv_len scores; the streaming kernel does not produce it")
    kv_bits = 8 * _kv_bytes(lw)
    precision = PRECISION_OF[lw.options.kv_precision]
    if not lw.chip.supports(lw.options.kv_precision):
        precision = lw.act_precision()
    q, k_new, v_new = (lw.value(name) for name in node.inputs[:3])
    mask = lw.value(node.inputs[3]) if node.input(3) else None
    past_k = lw.value(node.inputs[4]) if node.input(4) else None
    past_v = lw.value(node.inputs[5]) if node.input(5) else None
    y = lw.new_value(node.outputs[0])
    fresh_in_sram = shape.q_len <= FRESH_IN_SRAM and shape.past > 0
    total = shape.past + shape.q_len
    k_region, v_region = _cache_regions(lw, node, shape, past_k, past_v, kv_bits)
    masked = mask is not None or is_causal(node)
    label = lw.options.kv_precision if lw.chip.supports(lw.options.kv_precision) else lw.options.activation_precision
    timed = None if fresh_in_sram else _StreamTimer(lw, shape, kv_bits, masked, is_causal(node), label)
    budget = lw.staging_budget()
    while True:  # the largest tiles whose staging all fits the free SRAM
        plan = _choose_plan(lw, shape, kv_bits, masked, budget, timed)
        kernel = _Kernel(lw, node, shape, plan, precision, kv_bits, q, y, mask, k_region, v_region)
        try:
            kernel.stage()
            break
        except StagingFull:
            if budget < 1 << 12:
                raise
            budget //= 2
    if fresh_in_sram:
        kernel.append_fresh(k_new, v_new)
        streamed = shape.past
    else:
        kernel.write_fresh(k_new, v_new)
        streamed = total
    kernel.run(streamed, k_new if fresh_in_sram else None, v_new if fresh_in_sram else None)


def is_causal(node: Node) -> bool:
    """ONNX's is_causal, or the recognition pass's tessera_mask = "causal"."""
    return bool(node.attr("is_causal", 0)) or str(node.attr("tessera_mask", "")).lower() == "causal"


def _shape(lw: Lowerer, node: Node) -> _Shape:
    q = lw.local_shape(node.inputs[0])
    k = lw.local_shape(node.inputs[1])
    v = lw.local_shape(node.inputs[2])
    past = lw.local_shape(node.inputs[4])[2] if node.input(4) else 0
    if len(q) == 4:
        return _Shape(q[0], q[1], k[1], q[2], past, q[3], v[3])
    q_heads, kv_heads = node.attr("q_num_heads"), node.attr("kv_num_heads")
    head_dim = lw.shapes[node.inputs[0]][2] // q_heads
    v_dim = lw.shapes[node.inputs[2]][2] // kv_heads
    return _Shape(q[0], q[2] // head_dim, k[2] // head_dim, q[1], past, head_dim, v_dim)


def _kv_bytes(lw: Lowerer) -> int:
    return max(1, {"fp32": 4, "bf16": 2, "fp16": 2}.get(lw.options.kv_precision, 1))


def _cache_regions(lw: Lowerer, node: Node, shape: _Shape, past_k: Value | None, past_v: Value | None,
                   kv_bits: int) -> tuple[Buf, Buf]:
    """The blocked cache the stream reads: the past's region (shared with the present output),
    else the present output's region, else scratch for this call."""
    bufs = []
    for index, past, out_index in ((0, past_k, 1), (1, past_v, 2)):
        out = node.outputs[out_index] if len(node.outputs) > out_index else ""
        if past is not None:
            buf = past.buf
        elif out and out in lw.output_bufs:
            buf = lw.output_bufs[out]
        else:
            dim = shape.head_dim if index == 0 else shape.v_dim
            blocks = whole_blocks((shape.batch, shape.kv_heads, shape.past + shape.q_len, dim))
            nbytes = math.prod(blocks) * kv_bits // 8
            buf = lw.alloc(nbytes, f"{node.name}:cache{index}", space="hbm")
        if out:
            dims = lw.local_shape(out)
            lw.define(out, buf, shape=dims, bits=kv_bits, precision=PRECISION_OF[lw.options.kv_precision])
        bufs.append(buf)
    return bufs[0], bufs[1]


class _StreamTimer:
    """Estimated seconds of streaming attention with a given tiling, from the simulator's own cost
    models: per cache block, the two GEMMs per head and the online-softmax vector work, or the
    block's K and V DMAs (latency + bytes) when those take longer. Long inputs (prefill) pick
    their tiles with it: the fewest emitted instructions would favour tall query blocks over
    wide cache blocks, and narrow cache blocks leave most of a wide machine's arrays idle and
    pay the DMA latency on every few kilobytes."""

    def __init__(self, lw: Lowerer, shape: _Shape, kv_bits: int, masked: bool, causal: bool, label: str) -> None:
        self.chip, self.s, self.e, self.label = lw.chip, shape, kv_bits // 8, label
        self.masked, self.causal = masked, causal

    def seconds(self, plan: _Plan) -> float:
        from simulator.programmable.costs.systolic import gemm_cycles
        from simulator.programmable.costs.vector import vector_cycles

        chip, s, b = self.chip, self.s, plan.block
        pairs = s.batch * s.kv_heads
        q_blocks = math.ceil(s.q_len / plan.q_block)
        streams = pairs // plan.heads * q_blocks
        seen = s.past + (s.q_len + plan.q_block) / 2 if self.causal else s.past + s.q_len
        steps = streams * math.ceil(seen / b)
        group_rows = s.group * min(plan.q_block, s.q_len)
        rows = plan.heads * group_rows
        gemm = plan.heads * (gemm_cycles(chip, group_rows, b, s.head_dim, self.label)
                             + gemm_cycles(chip, group_rows, s.v_dim, b, self.label))
        vector = sum(vector_cycles(chip, op, rows * b) for op in (V.REDUCE_MAX, V.SUB, V.EXP, V.REDUCE_SUM))
        vector += vector_cycles(chip, V.ADD, rows * b) if self.masked else 0
        vector += vector_cycles(chip, V.MUL, rows * s.v_dim) + 6 * vector_cycles(chip, V.MUL, rows)
        compute = (gemm + vector) / chip.clock_hz
        nbytes = plan.heads * b * (s.head_dim + s.v_dim) * self.e
        dma = 2 * chip.memory.hbm_latency_s + nbytes / chip.memory.hbm_bytes_per_s
        return steps * max(compute, dma)


def _choose_plan(lw: Lowerer, shape: _Shape, kv_bits: int, masked: bool, budget: int,
                 timer: _StreamTimer | None = None) -> _Plan:
    """Largest blocks that fit the staging budget with the fewest instructions (decode), or the
    shortest estimated time (longer inputs, `timer`)."""
    pairs = shape.batch * shape.kv_heads
    total = shape.past + shape.q_len
    best: tuple[float, int, _Plan] | None = None
    timed: list[tuple[int, float, int, _Plan]] = []
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
                if need > budget:
                    continue
                e = kv_bits // 8
                if max(shape.head_dim, shape.v_dim) * min(q_block, shape.q_len) * max(e, 4) > DMA_ROW_LIMIT:
                    continue  # the query block is gathered / stored as one DMA row per head
                body = 14 + 2 * heads
                streams = (pairs // heads) * math.ceil(shape.q_len / q_block)
                instructions = streams * (3 * body + 8)
                if timer is not None:
                    timed.append((instructions, timer.seconds(_Plan(heads, q_block, block)), -block,
                                  _Plan(heads, q_block, block)))
                    continue
                key = (instructions * (1.0 if block >= min(1024, total) else 1.05), -block)
                if best is None or key < best[:2]:
                    best = (key[0], key[1], _Plan(heads, q_block, block))
    if timed:
        # the fastest plan whose code (query blocks are unrolled, cache blocks loop) stays within
        # twice the most compact plan's
        allowed = 2 * min(t[0] for t in timed)
        return min((t for t in timed if t[0] <= allowed), key=lambda t: (t[1], t[2]))[3]
    if best is None:
        raise LoweringError(f"{lw.where()}: no attention tile fits {budget} bytes of SRAM staging")
    return best[2]


class _Kernel:
    def __init__(self, lw: Lowerer, node: Node, shape: _Shape, plan: _Plan, precision: Precision, kv_bits: int,
                 q: Value, y: Value, mask: Value | None, k_cache: Buf, v_cache: Buf) -> None:
        self.lw, self.node, self.s, self.plan, self.precision = lw, node, shape, plan, precision
        self.kv_bytes = kv_bits // 8
        self.q, self.y, self.mask, self.k_cache, self.v_cache = q, y, mask, k_cache, v_cache
        self.pairs = shape.batch * shape.kv_heads
        block = plan.block
        # bytes of one cache block for every (sequence, head) of the chip
        self.k_block_bytes = self.pairs * shape.head_dim * block * self.kv_bytes
        self.v_block_bytes = self.pairs * block * shape.v_dim * self.kv_bytes

    # ---- cache writes ---------------------------------------------------------------------
    def append_fresh(self, k_new: Value, v_new: Value) -> None:
        """Store the new tokens' K (as columns of the transposed block) and V rows in place."""
        s, b = self.s, self.plan.block
        if self.node.input(4) == "":
            return
        block, col = divmod(s.past, b)
        e = self.kv_bytes
        k_addr = self.k_cache.addr + block * self.k_block_bytes + col * e
        self.lw.emit(DmaStore(hbm_addr=k_addr, sram_addr=k_new.addr, rows=self.pairs * s.head_dim,
                              row_bytes=s.q_len * e, hbm_row_stride=b * e),
                     reads=[k_new.buf], writes=[self._fresh_part(self.k_cache)])
        v_addr = self.v_cache.addr + block * self.v_block_bytes + col * s.v_dim * e
        self.lw.emit(DmaStore(hbm_addr=v_addr, sram_addr=v_new.addr, rows=self.pairs, row_bytes=s.q_len * s.v_dim * e,
                              hbm_row_stride=b * s.v_dim * e),
                     reads=[v_new.buf], writes=[self._fresh_part(self.v_cache)])

    def _fresh_part(self, cache: Buf) -> Buf:
        return self.lw.fresh_part(cache)

    def write_fresh(self, k_new: Value, v_new: Value) -> None:
        """Copy all new K (transposed into blocks) and V into the cache, to be streamed."""
        s, e = self.s, self.kv_bytes
        for fresh, cache, dim in ((k_new, self.k_cache, s.head_dim), (v_new, self.v_cache, s.v_dim)):
            count = self.pairs * s.q_len * dim
            offset = s.past * self.pairs * dim * e
            dest = Value(f"{self.node.name}:cache", cache, cache.addr + offset, (count,), 8 * e,
                         PRECISION_OF[self.lw.options.kv_precision])
            source = Value(fresh.name, fresh.buf, fresh.addr, (count,), fresh.bits, fresh.precision)
            run_steps(self.lw, [(V.COPY, "elem", "in0", "in0", "out")], [source], dest, self.pairs * s.q_len, dim)

    # ---- streaming ------------------------------------------------------------------------
    def stage(self) -> None:
        s, plan, e = self.s, self.plan, self.kv_bytes
        rows = plan.heads * s.group * plan.q_block
        sizes = {"S": rows * plan.block * 4, "P": rows * plan.block * e, "O": rows * s.v_dim * 4,
                 **{name: rows * 4 for name in ("m", "mn", "mb", "l", "lb", "a")},
                 "K": plan.heads * s.head_dim * plan.block * e, "V": plan.heads * plan.block * s.v_dim * e}
        if self.mask is not None or is_causal(self.node):
            sizes["mask"] = rows * plan.block * 2
        if self.q.space == "hbm":
            sizes["Q"] = rows * s.head_dim * (self.q.bits // 8)
        staged = self.lw.stage_all({f"attn:{name}": nbytes for name, nbytes in sizes.items()})
        self.bufs = {name: staged[f"attn:{name}"] for name in sizes}

    def run(self, streamed: int, k_new: Value | None, v_new: Value | None) -> None:
        s, plan = self.s, self.plan
        for stream in range(self.pairs // plan.heads):
            for q0 in range(0, s.q_len, plan.q_block):
                self.q_block(stream, q0, min(plan.q_block, s.q_len - q0), streamed, k_new, v_new)
        self.lw.unstage(*self.bufs.values())

    def q_block(self, stream: int, q0: int, q_rows: int, streamed: int, k_new: Value | None,
                v_new: Value | None) -> None:
        s, b = self.s, self.plan.block
        rows = self.plan.heads * s.group * q_rows
        if "Q" in self.bufs:  # gather this block's query rows of the stream's heads into SRAM
            e = self.q.bits // 8
            first_head = stream * self.plan.heads * s.group
            self.lw.emit(DmaLoad(hbm_addr=self.q.addr + (first_head * s.q_len + q0) * s.head_dim * e,
                                 sram_addr=self.bufs["Q"].addr, rows=self.plan.heads * s.group,
                                 row_bytes=q_rows * s.head_dim * e, hbm_row_stride=s.q_len * s.head_dim * e),
                         reads=[self.q.buf], writes=[self.bufs["Q"]])
        if k_new is not None and v_new is not None:
            self.fresh(stream, rows, q_rows, k_new, v_new)
        else:
            for name, count in (("m", rows), ("l", rows), ("O", rows * s.v_dim)):
                self.vector(V.MUL, name, name, name, count)  # fill the running max, sum and output
        first, last = self.visible(q0, q_rows, streamed)
        causal = is_causal(self.node) and k_new is None
        open_end = min(last, s.past + q0) if causal else last  # blocks wholly before the queries
        masked_all = self.mask is not None
        full_end = first + (open_end - first) // b * b
        self.blocks(stream, q0, q_rows, first, full_end, masked=masked_all)
        tail = last - full_end
        if tail > 0:
            count, rest = divmod(tail, b)
            self.blocks(stream, q0, q_rows, full_end, full_end + count * b, masked="mask" in self.bufs)
            if rest:
                masked = (causal or masked_all) and "mask" in self.bufs
                self.block(stream, q0, q_rows, (full_end + count * b) // b, rest, masked=masked)
        self.vector(V.RECIPROCAL, "l", "l", "l", rows)
        self.finish(stream, q0, q_rows, rows)

    def visible(self, q0: int, q_rows: int, streamed: int) -> tuple[int, int]:
        """Positions [first, last) of the cache this query block reads."""
        node, b = self.node, self.plan.block
        last = streamed
        if is_causal(node) and streamed > self.s.past:
            last = min(streamed, self.s.past + q0 + q_rows)
        window = node.attr("tessera_window")
        if window is None and node.attr("left_window_size", -1) >= 0:
            window = node.attr("left_window_size") + 1
        first = 0
        if window is not None:
            first = max(0, self.s.past + q0 + 1 - int(window)) // b * b
        kept = node.attr("tessera_kept_blocks")
        if kept is not None:
            count = len(kept) if isinstance(kept, (list, tuple)) else kept
            blocks = math.ceil((last - first) / b)
            count = math.ceil(count * blocks) if isinstance(count, float) and count <= 1 else int(count)
            if count < blocks:
                # which blocks survive is known only at run time: the DMA needs indexed addressing
                self.lw.gap("indexed DMA (block-sparse KV gather)")
                last = min(last, first + count * b)
        return first, last

    def blocks(self, stream: int, q0: int, q_rows: int, start: int, end: int, masked: bool) -> None:
        b = self.plan.block
        self.lw.loop((end - start) // b, lambda i: self.block(stream, q0, q_rows, start // b + i, b, masked))

    def block(self, stream: int, q0: int, q_rows: int, index: int, width: int, masked: bool) -> None:
        """One cache block: fetch K^T, scores, online softmax, fetch V, accumulate P @ V."""
        lw, s, plan, e = self.lw, self.s, self.plan, self.kv_bytes
        bufs = self.bufs
        head_offset = stream * plan.heads
        k_src = self.k_cache.addr + index * self.k_block_bytes + head_offset * s.head_dim * plan.block * e
        lw.emit(DmaLoad(hbm_addr=k_src, sram_addr=bufs["K"].addr, rows=plan.heads * s.head_dim, row_bytes=width * e,
                        hbm_row_stride=plan.block * e), reads=[self.k_cache], writes=[bufs["K"]])
        group_rows = s.group * q_rows
        qk_split, qk_ways = self.split(group_rows, width, s.head_dim)
        for h in range(plan.heads):
            lw.emit(Gemm(a_addr=self.q_addr(stream, h, q0), b_addr=bufs["K"].addr + h * s.head_dim * width * e,
                         c_addr=bufs["S"].addr + h * group_rows * width * 4, m=group_rows, n=width, k=s.head_dim,
                         precision=self.precision, acc_precision=Precision.FP32,
                         split=qk_split, subarray=h % qk_ways),
                    reads=[bufs.get("Q", self.q.buf), bufs["K"]], writes=[bufs["S"]])
        rows = plan.heads * group_rows
        if masked:
            self.add_mask(rows, width)
        for op, kind, a, b_ref, dst in _ONLINE_SOFTMAX:
            count = rows * width if kind in ("elem", "reduce") else rows * s.v_dim if kind == "out" else rows
            self.vector(op, a, b_ref, dst, count, row_len=width if kind == "reduce" else 1)
        v_src = self.v_cache.addr + index * self.v_block_bytes + head_offset * plan.block * s.v_dim * e
        lw.emit(DmaLoad(hbm_addr=v_src, sram_addr=bufs["V"].addr, rows=plan.heads, row_bytes=width * s.v_dim * e,
                        hbm_row_stride=plan.block * s.v_dim * e), reads=[self.v_cache], writes=[bufs["V"]])
        pv_split, pv_ways = self.split(group_rows, s.v_dim, width)
        for h in range(plan.heads):
            lw.emit(Gemm(a_addr=bufs["P"].addr + h * group_rows * width * e,
                         b_addr=bufs["V"].addr + h * width * s.v_dim * e,
                         c_addr=bufs["O"].addr + h * group_rows * s.v_dim * 4, m=group_rows, n=s.v_dim, k=width,
                         precision=self.precision, acc_precision=Precision.FP32, accumulate=True,
                         split=pv_split, subarray=h % pv_ways),
                    reads=[bufs["P"], bufs["V"], bufs["O"]], writes=[bufs["O"]])

    def split(self, m: int, n: int, k: int) -> tuple[int, int]:
        """Array split for the per-KV-head GEMMs of a block (skinny: m = query heads per group x
        rows): chosen with the shared systolic cost model; heads go to sub-arrays round-robin."""
        ways = choose_split(self.lw.chip, m, n, k, self.precision.label).ways
        return ways.bit_length() - 1, ways

    def add_mask(self, rows: int, width: int) -> None:
        mask_buf = self.bufs["mask"]
        if self.mask is not None and self.mask.space == "hbm":
            nbytes = min(rows * width * 2, self.mask.nbytes)
            count = 1  # as equal contiguous rows that each fit the DMA's row_bytes field
            while nbytes // count > DMA_ROW_LIMIT or nbytes % count:
                count += 1
            self.lw.emit(DmaLoad(hbm_addr=self.mask.addr, sram_addr=mask_buf.addr, rows=count,
                                 row_bytes=nbytes // count, hbm_row_stride=nbytes // count),
                         reads=[self.mask.buf], writes=[mask_buf])
        source = self.mask.buf if self.mask is not None and self.mask.space == "sram" else mask_buf
        self.lw.emit(Vector(op=V.ADD, precision=Precision.FP32, src_a=self.bufs["S"].addr, src_b=source.addr,
                            dst=self.bufs["S"].addr, length=rows * width),
                     reads=[self.bufs["S"], source], writes=[self.bufs["S"]])

    def fresh(self, stream: int, rows: int, q_rows: int, k_new: Value, v_new: Value) -> None:
        """Start the running softmax from the new tokens, straight from SRAM."""
        lw, s, plan = self.lw, self.s, self.plan
        n = s.q_len
        group_rows = s.group * q_rows
        e_k, e_v = k_new.bits // 8, v_new.bits // 8
        for h in range(plan.heads):
            pair = stream * plan.heads + h
            lw.emit(Gemm(a_addr=self.q_addr(stream, h, 0), b_addr=k_new.addr + pair * n * s.head_dim * e_k,
                         c_addr=self.bufs["S"].addr + h * group_rows * n * 4, m=group_rows, n=n, k=s.head_dim,
                         precision=self.precision, acc_precision=Precision.FP32),
                    reads=[self.bufs.get("Q", self.q.buf), k_new.buf], writes=[self.bufs["S"]])
        self.vector(V.REDUCE_MAX, "S", "S", "m", rows * n, row_len=n)
        self.vector(V.SUB, "S", "m", "S", rows * n)
        self.vector(V.EXP, "S", "S", "P", rows * n)
        self.vector(V.REDUCE_SUM, "P", "P", "l", rows * n, row_len=n)
        for h in range(plan.heads):
            pair = stream * plan.heads + h
            lw.emit(Gemm(a_addr=self.bufs["P"].addr + h * group_rows * n * self.kv_bytes,
                         b_addr=v_new.addr + pair * n * s.v_dim * e_v, c_addr=self.bufs["O"].addr + h * group_rows
                         * s.v_dim * 4, m=group_rows, n=s.v_dim, k=n, precision=self.precision,
                         acc_precision=Precision.FP32),
                    reads=[self.bufs["P"], v_new.buf], writes=[self.bufs["O"]])

    def finish(self, stream: int, q0: int, q_rows: int, rows: int) -> None:
        """Y = O / l for this query block, written where Y lives."""
        lw, s = self.lw, self.s
        y, e = self.y, self.y.bits // 8
        count = rows * s.v_dim
        first_head = stream * self.plan.heads * s.group
        offset = (first_head * s.q_len + q0) * s.v_dim * e
        if y.space == "sram":
            lw.emit(Vector(op=V.MUL, precision=y.precision, src_a=self.bufs["O"].addr, src_b=self.bufs["l"].addr,
                           dst=y.addr + min(offset, max(0, y.nbytes - count * e)), length=count),
                    reads=[self.bufs["O"], self.bufs["l"]], writes=[y.buf])
            return
        self.vector(V.MUL, "O", "l", "O", count)
        lw.emit(DmaStore(hbm_addr=y.addr + offset, sram_addr=self.bufs["O"].addr, rows=self.plan.heads * s.group,
                         row_bytes=q_rows * s.v_dim * e, hbm_row_stride=s.q_len * s.v_dim * e),
                reads=[self.bufs["O"]], writes=[y.buf])

    # ---- helpers --------------------------------------------------------------------------
    def q_addr(self, stream: int, head: int, q0: int) -> int:
        s, e = self.s, self.q.bits // 8
        if "Q" in self.bufs:
            return self.bufs["Q"].addr + head * s.group * min(self.plan.q_block, s.q_len) * s.head_dim * e
        pair = stream * self.plan.heads + head
        offset = (pair * s.group * s.q_len + q0) * s.head_dim * e
        return self.q.addr + min(offset, max(0, self.q.nbytes - s.group * s.head_dim * e))

    def vector(self, op: VectorOp, a: str, b: str, dst: str, length: int, row_len: int = 1) -> None:
        bufs = self.bufs
        self.lw.emit(Vector(op=op, precision=Precision.FP32, src_a=bufs[a].addr, src_b=bufs[b].addr,
                            dst=bufs[dst].addr, length=length, row_len=row_len),
                     reads=[bufs[a], bufs[b]], writes=[bufs[dst]])
