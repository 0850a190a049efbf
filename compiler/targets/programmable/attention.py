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

Values: the query block is scaled once by `scale` (default 1/sqrt(head_dim)); the running max
starts at -inf, the running sum and output at 0 (FILL); per-row corrections are VECTOR_2D ops
with a per-row operand. Decode (new tokens joining from SRAM) is value-exact. Longer inputs
write their new K into the transposed blocks through the array (C = I @ K^T, a GEMM_STRIDED
reading K as its transposed B) and their V rows by DMA. K and V that are no cache (no past, no
present output: a model that concatenates its cache itself) are read where they are, row-major,
through transposed-B GEMMs. Keys may outnumber queries (a memory prefix): query i sits at
position q_start + i. The causal mask is built per block from positions (query position < key
position -> -inf, CMP_LT then SELECT), after checking a mask computed from shapes really is
that (attention_plan.checked_causal); any other fp32 mask is read block by block and added to
the scores. What is still timed only (query blocks of several GQA heads read in place, windows
given as attributes without a mask) is listed in meta["not_value_exact"].
"""

from __future__ import annotations

import math

from compiler.ir.graph import Node
from compiler.targets.programmable.attention_plan import (
    AttentionShape,
    StreamTimer,
    TilePlan,
    attention_shape,
    causal_only,
    checked_causal,
    choose_plan,
    is_causal,
    mask_readable,
)
from compiler.targets.programmable.context import PRECISION_OF, Lowerer, StagingFull, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import (
    DmaLoad,
    DmaStore,
    Gemm,
    GemmStrided,
    Precision,
    Vector,
    Vector2D,
    VectorOp,
    f32_bits,
)
from compiler.targets.programmable.memory import whole_blocks
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.tiling import DMA_ROW_LIMIT, GEMM_DIM_LIMIT, choose_split
from compiler.targets.programmable.vector import GRID_LIMIT, run_steps

V = VectorOp
_FLOATS = (Precision.FP32, Precision.FP16, Precision.BF16)
FRESH_IN_SRAM = 16  # at most this many new tokens join the softmax straight from SRAM
# (op, per-row?, a, b, dst) of the online softmax for one block; "S" scores, "P" probabilities
_ONLINE_SOFTMAX = (
    (V.REDUCE_MAX, "reduce", "S", "S", "mb"), (V.MAX, "row", "m", "mb", "mn"), (V.SUB, "per-row", "S", "mn", "S"),
    (V.EXP, "elem", "S", "S", "P"), (V.REDUCE_SUM, "reduce", "P", "P", "lb"), (V.SUB, "row", "m", "mn", "a"),
    (V.EXP, "row", "a", "a", "a"), (V.MUL, "row", "l", "a", "l"), (V.ADD, "row", "l", "lb", "l"),
    (V.MUL, "out-per-row", "O", "a", "O"), (V.COPY, "row", "mn", "mn", "m"),
)


def _gather_rows(lw: Lowerer, precision: Precision, source: int, dst: int, rows: int, cols: int, pitch: int,
                 reads: list[Buf], tile: Buf) -> None:
    """Copy `rows` runs of `cols` elements, `pitch` elements apart, into one dense tile: one VECTOR_2D
    when the pitch fits its 20-bit stride field, else one COPY per run (long prompts: a head's
    rows are q_len * head_dim elements apart)."""
    if pitch <= GRID_LIMIT and rows <= GRID_LIMIT and cols <= GRID_LIMIT:
        lw.emit(Vector2D(op=V.COPY, precision=precision, src_a=source, dst=dst, rows=rows, cols=cols,
                         a_row_stride=pitch, dst_row_stride=cols), reads=reads, writes=[tile])
        return
    element = precision.bits // 8
    for r in range(rows):
        lw.emit(Vector(op=V.COPY, precision=precision, src_a=source + r * pitch * element,
                       dst=dst + r * cols * element, length=cols), reads=reads, writes=[tile])


def lower_attention(lw: Lowerer, node: Node) -> None:
    shape = attention_shape(lw, node)
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
    fresh_in_sram = (max(shape.q_len, shape.fresh) <= FRESH_IN_SRAM and shape.past > 0
                     and k_new.space == v_new.space == "sram")
    total = shape.total
    # K and V that are no cache (no past, no present output) are read where they are, row-major
    in_place = (not fresh_in_sram and past_k is None and past_v is None and not _writes_cache(lw, node)
                and k_new.precision == v_new.precision == precision)
    k_region, v_region = (k_new.buf, v_new.buf) if in_place else _cache_regions(lw, node, shape, past_k, past_v,
                                                                                 kv_bits)
    masked = mask is not None or is_causal(node)
    built = masked and causal_only(node, mask is not None)
    if built and mask is not None:
        shape, built = checked_causal(lw, node, shape)
    label = lw.options.kv_precision if lw.chip.supports(lw.options.kv_precision) else lw.options.activation_precision
    timed = None if fresh_in_sram else StreamTimer(lw, shape, kv_bits, masked, is_causal(node), label, built)
    fresh_tiles = None if fresh_in_sram or in_place or not transposable(lw, shape, precision, kv_bits, k_new,
                                                                         v_new) else k_new.space == "hbm"
    budget = lw.staging_budget()
    while True:  # the largest tiles whose staging all fits the free SRAM
        plan = choose_plan(lw, shape, kv_bits, masked, budget, timed, built, fresh_tiles)
        kernel = _Kernel(lw, node, shape, plan, precision, kv_bits, q, y, mask, k_region, v_region, built)
        kernel.in_place = (k_new, v_new) if in_place else None
        try:
            kernel.stage(None if fresh_in_sram or in_place else (k_new, v_new))
            break
        except StagingFull:
            if budget < 1 << 12:
                raise
            budget //= 2
    _note_inexact(lw, node, shape, plan, masked and not built and not kernel.mask_read, fresh_in_sram, q,
                  kernel.fresh_exact or in_place)
    layouts = lw.program.meta.setdefault("cache_layouts", {})
    for kind, names, dim in (("k_transposed", (node.input(4), node.outputs[1] if len(node.outputs) > 1 else ""),
                              shape.head_dim),
                             ("v", (node.input(5), node.outputs[2] if len(node.outputs) > 2 else ""), shape.v_dim)):
        for name in names:
            if name:
                layouts[name] = {"kind": kind, "block": plan.block, "pairs": shape.batch * shape.kv_heads,
                                 "dim": dim, "element_bits": kv_bits}
    if fresh_in_sram:
        kernel.append_fresh(k_new, v_new)
        streamed = shape.past
    else:
        if not in_place:
            kernel.write_fresh(k_new, v_new)
        streamed = total
    kernel.run(streamed, k_new if fresh_in_sram else None, v_new if fresh_in_sram else None)


def _writes_cache(lw: Lowerer, node: Node) -> bool:
    """Whether the node's present K / V outputs are read by anything (a cache to write)."""
    return any(len(node.outputs) > i and node.outputs[i] and lw.uses.get(node.outputs[i], 0) > 0 for i in (1, 2))


def _note_inexact(lw: Lowerer, node: Node, shape: AttentionShape, plan: TilePlan, masked: bool, fresh_in_sram: bool,
                  q: Value, fresh_exact: bool) -> None:
    name = node.name
    if masked:
        lw.inexact(f"{name}: attention mask blocks are timed (an ADD per block), not read from the mask")
    if not fresh_in_sram:
        if not fresh_exact:
            lw.inexact(f"{name}: new K/V are copied into the cache as they are, not transposed into blocks")
    elif shape.fresh > 1:
        lw.inexact(f"{name}: several new tokens are appended as one K column per row")
    if q.space == "sram" and plan.q_block < shape.q_len and shape.group > 1:
        lw.inexact(f"{name}: a query block of {shape.group} heads is read as one run of rows")
    if shape.q_len % plan.q_block and shape.group * plan.heads > 1:
        lw.inexact(f"{name}: the last, shorter query block is addressed at the full block's head pitch")
    if lw.options.kv_precision != "fp32" or lw.options.activation_precision != "fp32":
        lw.inexact(f"{name}: probabilities are written in fp32 into a {lw.options.kv_precision} tile")


def transposable(lw: Lowerer, shape: AttentionShape, precision: Precision, kv_bits: int, k_new: Value,
                 v_new: Value) -> bool:
    """New K and V already in the cache's precision and the GEMM's (the transpose is I @ K^T)."""
    cache = PRECISION_OF[lw.options.kv_precision]
    return (k_new.precision == v_new.precision == cache == precision and k_new.bits == v_new.bits == kv_bits
            and shape.head_dim <= GEMM_DIM_LIMIT and cache in _FLOATS)


def _kv_bytes(lw: Lowerer) -> int:
    return max(1, {"fp32": 4, "bf16": 2, "fp16": 2}.get(lw.options.kv_precision, 1))


def _cache_regions(lw: Lowerer, node: Node, shape: AttentionShape, past_k: Value | None, past_v: Value | None,
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
            blocks = whole_blocks((shape.batch, shape.kv_heads, shape.total, dim))
            nbytes = math.prod(blocks) * kv_bits // 8
            buf = lw.alloc(nbytes, f"{node.name}:cache{index}", space="hbm")
        if out:
            dims = lw.local_shape(out)
            lw.define(out, buf, shape=dims, bits=kv_bits, precision=PRECISION_OF[lw.options.kv_precision])
        bufs.append(buf)
    return bufs[0], bufs[1]


class _Kernel:
    def __init__(self, lw: Lowerer, node: Node, shape: AttentionShape, plan: TilePlan, precision: Precision,
                 kv_bits: int, q: Value, y: Value, mask: Value | None, k_cache: Buf, v_cache: Buf,
                 built: bool) -> None:
        self.lw, self.node, self.s, self.plan, self.precision = lw, node, shape, plan, precision
        self.kv_bytes = kv_bits // 8
        self.q, self.y, self.mask, self.k_cache, self.v_cache = q, y, mask, k_cache, v_cache
        self.pairs = shape.batch * shape.kv_heads
        block = plan.block
        # bytes of one cache block for every (sequence, head) of the chip
        self.k_block_bytes = self.pairs * shape.head_dim * block * self.kv_bytes
        self.v_block_bytes = self.pairs * block * shape.v_dim * self.kv_bytes
        self.causal_built = built
        # a mask that is not built from positions is read, block by block, as the scores need it
        self.mask_read = mask is not None and not built and mask_readable(mask, shape, precision)
        self.fresh_exact = False
        self.in_place: tuple[Value, Value] | None = None   # row-major K and V read where they are
        self.query_rows = 0    # the query-block height qbase holds offsets for

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
                              row_bytes=s.fresh * e, hbm_row_stride=b * e),
                     reads=[k_new.buf], writes=[self._fresh_part(self.k_cache)])
        v_addr = self.v_cache.addr + block * self.v_block_bytes + col * s.v_dim * e
        self.lw.emit(DmaStore(hbm_addr=v_addr, sram_addr=v_new.addr, rows=self.pairs, row_bytes=s.fresh * s.v_dim * e,
                              hbm_row_stride=b * s.v_dim * e),
                     reads=[v_new.buf], writes=[self._fresh_part(self.v_cache)])

    def _fresh_part(self, cache: Buf) -> Buf:
        return self.lw.fresh_part(cache)

    def write_fresh(self, k_new: Value, v_new: Value) -> None:
        """Write all new K (transposed into blocks) and V into the cache, to be streamed."""
        if self.fresh_exact:
            self.write_fresh_blocks(k_new, v_new)
            return
        s, e = self.s, self.kv_bytes
        for fresh, cache, dim in ((k_new, self.k_cache, s.head_dim), (v_new, self.v_cache, s.v_dim)):
            count = self.pairs * s.fresh * dim
            offset = s.past * self.pairs * dim * e
            dest = Value(f"{self.node.name}:cache", cache, cache.addr + offset, (count,), 8 * e,
                         PRECISION_OF[self.lw.options.kv_precision])
            source = Value(fresh.name, fresh.buf, fresh.addr, (count,), fresh.bits, fresh.precision)
            run_steps(self.lw, [(V.COPY, "elem", "in0", "in0", "out")], [source], dest, self.pairs * s.fresh, dim)

    def write_fresh_blocks(self, k_new: Value, v_new: Value) -> None:
        """Each run of new tokens inside one cache block, for `plan.heads` (sequence, KV head) pairs
        at a time: K^T = I @ K on the array into the K tile, stored as the block's [d, w] rows;
        V rows stored at the block's pitch (gathered into the V tile first when not one run)."""
        lw, s, plan, e = self.lw, self.s, self.plan, self.kv_bytes
        b, d, n = plan.block, s.head_dim, s.fresh
        identity = self.bufs["I"]
        lw.emit(Vector(op=V.FILL, precision=self.precision, src_a=identity.addr, dst=identity.addr, length=d * d,
                       imm=0), reads=[identity], writes=[identity])
        lw.loop(d, lambda i: lw.emit(Vector(op=V.FILL, precision=self.precision, src_a=identity.addr + i * (d + 1) * e,
                                            src_b=identity.addr + i * (d + 1) * e,
                                            dst=identity.addr + i * (d + 1) * e, length=1, imm=f32_bits(1.0)),
                                     reads=[identity], writes=[identity]))
        split, ways = self.split(d, min(b, n), d)

        def run(t: int) -> None:  # the new tokens from t to the end of t's block (or of the input)
            index, col = divmod(s.past + t, b)
            w = min(b - col, n - t)
            for c0 in range(0, self.pairs, plan.heads):
                count = min(plan.heads, self.pairs - c0)
                self.fresh_keys(k_new, index, col, t, w, c0, count, split, ways)
                self.fresh_values(v_new, index, col, t, w, c0, count)

        head = min(n, -s.past % b)  # tokens that complete a block begun by the past
        if head:
            run(0)
        full = (n - head) // b
        if k_new.space == v_new.space == "hbm":      # staged through fixed tiles: one LOOP
            lw.loop(full, lambda i: run(head + i * b))
        else:                                         # read in place: the GEMM's B moves, which it cannot in a LOOP
            for i in range(full):
                run(head + i * b)
        if head + full * b < n:
            run(head + full * b)

    def fresh_keys(self, k_new: Value, index: int, col: int, t: int, w: int, c0: int, count: int, split: int,
                   ways: int) -> None:
        lw, s, e, b, d = self.lw, self.s, self.kv_bytes, self.plan.block, self.s.head_dim
        tile = self.bufs["K"]
        if k_new.space == "hbm":  # the pairs' w rows of K, as [count][w][d]
            staged = self.bufs["KS"]
            lw.emit(DmaLoad(hbm_addr=k_new.addr + (c0 * s.fresh + t) * d * e, sram_addr=staged.addr, rows=count,
                            row_bytes=w * d * e, hbm_row_stride=s.fresh * d * e), reads=[k_new.buf], writes=[staged])
            source, pitch = staged, w
        else:
            source, pitch = k_new.buf, s.fresh
        base = staged.addr if k_new.space == "hbm" else k_new.addr + (c0 * s.fresh + t) * d * e
        for p in range(count):
            lw.emit(GemmStrided(a_addr=self.bufs["I"].addr, b_addr=base + p * pitch * d * e,
                                c_addr=tile.addr + p * d * w * e, m=d, n=w, k=d, precision=self.precision,
                                acc_precision=self.precision, split=split, subarray=p % ways, lda=d, ldb=d, ldc=w,
                                transpose_b=True),
                    reads=[self.bufs["I"], source], writes=[tile])
        lw.emit(DmaStore(hbm_addr=self.k_cache.addr + index * self.k_block_bytes + c0 * d * b * e + col * e,
                         sram_addr=tile.addr, rows=count * d, row_bytes=w * e, hbm_row_stride=b * e),
                reads=[tile], writes=[self.k_cache])

    def fresh_values(self, v_new: Value, index: int, col: int, t: int, w: int, c0: int, count: int) -> None:
        lw, s, e, b, dv = self.lw, self.s, self.kv_bytes, self.plan.block, self.s.v_dim
        source = v_new.addr + (c0 * s.fresh + t) * dv * e
        tile = self.bufs["V"]
        if v_new.space == "hbm":
            lw.emit(DmaLoad(hbm_addr=source, sram_addr=tile.addr, rows=count, row_bytes=w * dv * e,
                            hbm_row_stride=s.fresh * dv * e), reads=[v_new.buf], writes=[tile])
            buf, addr = tile, tile.addr
        elif count > 1 and w != s.fresh:  # the pairs' runs are not back to back: gather them
            _gather_rows(lw, self.precision, source, tile.addr, count, w * dv, s.fresh * dv, [v_new.buf], tile)
            buf, addr = tile, tile.addr
        else:
            buf, addr = v_new.buf, source
        lw.emit(DmaStore(hbm_addr=self.v_cache.addr + index * self.v_block_bytes + (c0 * b + col) * dv * e,
                         sram_addr=addr, rows=count, row_bytes=w * dv * e, hbm_row_stride=b * dv * e),
                reads=[buf], writes=[self.v_cache])

    # ---- streaming ------------------------------------------------------------------------
    def stage(self, fresh: tuple[Value, Value] | None = None) -> None:
        """Stage the tiles; `fresh` = (new K, new V) when they are written into the cache first."""
        s, plan, e = self.s, self.plan, self.kv_bytes
        rows = plan.heads * s.group * plan.q_block
        sizes = {"S": rows * plan.block * 4, "P": rows * plan.block * e, "O": rows * s.v_dim * 4,
                 **{name: rows * 4 for name in ("m", "mn", "mb", "l", "lb", "a")},
                 "K": plan.heads * s.head_dim * plan.block * e, "V": plan.heads * plan.block * s.v_dim * e}
        if self.mask_read:   # the mask's block, when it must come from HBM
            if self.mask.space == "hbm":
                units = plan.heads * s.group if self._mask_varies() else 1
                sizes["mask"] = units * plan.q_block * plan.block * (self.mask.bits // 8)
        elif self.mask is not None or is_causal(self.node):
            sizes["mask"] = rows * plan.block * 2
        if self.causal_built:  # query positions, key offsets and one -inf; the mask tile holds conditions
            sizes.update({"qbase": rows * 4, "qrel": rows * 4, "kpos": plan.block * 4, "ninf": 4,
                          "mask": -(-rows // 2) * plan.block * 4})   # half the rows' fp32 conditions
        self.fresh_exact = fresh is not None and transposable(self.lw, s, self.precision, 8 * e, *fresh)
        if self.fresh_exact:  # the identity the new keys are multiplied by; their block when in HBM
            sizes["I"] = s.head_dim * s.head_dim * e
            if fresh[0].space == "hbm":
                sizes["KS"] = plan.heads * plan.block * s.head_dim * e
        self.scale = float(self.node.attr("scale", 0.0) or 1.0 / math.sqrt(s.head_dim))
        if self.q.space == "hbm" or self.scale != 1.0:  # the query block, scaled once
            sizes["Q"] = rows * s.head_dim * (self.q.bits // 8)
        staged = self.lw.stage_all({f"attn:{name}": nbytes for name, nbytes in sizes.items()})
        self.bufs = {name: staged[f"attn:{name}"] for name in sizes}

    def run(self, streamed: int, k_new: Value | None, v_new: Value | None) -> None:
        s, plan = self.s, self.plan
        if self.causal_built:
            self.iota(self.bufs["kpos"], plan.block)
            self.lw.emit(Vector(op=V.FILL, precision=Precision.FP32, src_a=self.bufs["ninf"].addr,
                                dst=self.bufs["ninf"].addr, length=1, imm=f32_bits(-math.inf)),
                         reads=[self.bufs["ninf"]], writes=[self.bufs["ninf"]])
        for stream in range(self.pairs // plan.heads):
            for q0 in range(0, s.q_len, plan.q_block):
                self.q_block(stream, q0, min(plan.q_block, s.q_len - q0), streamed, k_new, v_new)
        self.lw.unstage(*self.bufs.values())

    def q_block(self, stream: int, q0: int, q_rows: int, streamed: int, k_new: Value | None,
                v_new: Value | None) -> None:
        s, b = self.s, self.plan.block
        rows = self.plan.heads * s.group * q_rows
        if "Q" in self.bufs:  # gather this block's query rows of the stream's heads into SRAM, scaled
            self.stage_queries(stream, q0, q_rows)
        if k_new is not None and v_new is not None:
            self.fresh(stream, rows, q_rows, k_new, v_new)
        else:
            for name, count, value in (("m", rows, -math.inf), ("l", rows, 0.0), ("O", rows * s.v_dim, 0.0)):
                self.lw.emit(Vector(op=V.FILL, precision=Precision.FP32, src_a=self.bufs[name].addr,
                                    dst=self.bufs[name].addr, length=count, imm=f32_bits(value)),
                             reads=[self.bufs[name]], writes=[self.bufs[name]])
        first, last = self.visible(q0, q_rows, streamed)
        causal = is_causal(self.node) and k_new is None
        open_end = min(last, s.q_start + q0) if causal else last  # blocks wholly before the queries
        masked_all = self.mask is not None and not self.causal_built  # a built causal mask: diagonal blocks only
        full_end = first + (open_end - first) // b * b
        if self.causal_built and self.query_rows != q_rows:
            self.query_positions(rows, q_rows)
        self.blocks(stream, q0, q_rows, first, full_end, masked=masked_all)
        tail = last - full_end
        if tail > 0:
            count, rest = divmod(tail, b)
            masking = "mask" in self.bufs or self.mask_read
            self.blocks(stream, q0, q_rows, full_end, full_end + count * b, masked=masking)
            if rest:
                masked = (causal or masked_all) and masking
                index = (full_end + count * b) // b
                if masked and self.causal_built:
                    self.mask_from(index, rows, s.q_start + q0)
                self.block(stream, q0, q_rows, index, rest, masked=masked)
        self.vector(V.RECIPROCAL, "l", "l", "l", rows)
        self.finish(stream, q0, q_rows, rows)

    def stage_queries(self, stream: int, q0: int, q_rows: int) -> None:
        lw, s, q, buf = self.lw, self.s, self.q, self.bufs["Q"]
        e = q.bits // 8
        first_head = stream * self.plan.heads * s.group
        heads = self.plan.heads * s.group
        source = q.addr + (first_head * s.q_len + q0) * s.head_dim * e
        count = heads * q_rows * s.head_dim
        if q.space == "hbm":
            lw.emit(DmaLoad(hbm_addr=source, sram_addr=buf.addr, rows=heads, row_bytes=q_rows * s.head_dim * e,
                            hbm_row_stride=s.q_len * s.head_dim * e), reads=[q.buf], writes=[buf])
            if self.scale != 1.0:
                lw.emit(Vector(op=V.MUL_IMM, precision=q.precision, src_a=buf.addr, dst=buf.addr, length=count,
                               imm=f32_bits(self.scale)), reads=[buf], writes=[buf])
            return
        if q_rows == s.q_len:  # the stream's query rows are one run: scale them on the way
            lw.emit(Vector(op=V.MUL_IMM, precision=q.precision, src_a=source, dst=buf.addr, length=count,
                           imm=f32_bits(self.scale)), reads=[q.buf], writes=[buf])
            return
        _gather_rows(lw, q.precision, source, buf.addr, heads, q_rows * s.head_dim, s.q_len * s.head_dim,
                     [q.buf], buf)
        lw.emit(Vector(op=V.MUL_IMM, precision=q.precision, src_a=buf.addr, dst=buf.addr, length=count,
                       imm=f32_bits(self.scale)), reads=[buf], writes=[buf])

    def visible(self, q0: int, q_rows: int, streamed: int) -> tuple[int, int]:
        """Positions [first, last) of the cache this query block reads."""
        node, b = self.node, self.plan.block
        last = streamed
        if is_causal(node) and streamed > self.s.past:   # the new tokens are streamed too
            last = min(streamed, self.s.q_start + q0 + q_rows)
        window = node.attr("tessera_window")
        if window is None and node.attr("left_window_size", -1) >= 0:
            window = node.attr("left_window_size") + 1
        first = 0
        if window is not None:
            first = max(0, self.s.q_start + q0 + 1 - int(window)) // b * b
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
        if masked and self.causal_built and end > start:
            self.mask_from(start // b, self.plan.heads * self.s.group * q_rows, self.s.q_start + q0)
        self.lw.loop((end - start) // b, lambda i: self.block(stream, q0, q_rows, start // b + i, b, masked))

    def block(self, stream: int, q0: int, q_rows: int, index: int, width: int, masked: bool) -> None:
        """One cache block: fetch K^T, scores, online softmax, fetch V, accumulate P @ V."""
        lw, s, plan, e = self.lw, self.s, self.plan, self.kv_bytes
        bufs = self.bufs
        head_offset = stream * plan.heads
        group_rows = s.group * q_rows
        qk_split, qk_ways = self.split(group_rows, width, s.head_dim)
        if self.in_place:
            self.in_place_scores(stream, q0, index * plan.block, width, group_rows, qk_split, qk_ways)
        else:
            k_src = self.k_cache.addr + index * self.k_block_bytes + head_offset * s.head_dim * plan.block * e
            lw.emit(DmaLoad(hbm_addr=k_src, sram_addr=bufs["K"].addr, rows=plan.heads * s.head_dim,
                            row_bytes=width * e, hbm_row_stride=plan.block * e),
                    reads=[self.k_cache], writes=[bufs["K"]])
            for h in range(plan.heads):
                lw.emit(Gemm(a_addr=self.q_addr(stream, h, q0), b_addr=bufs["K"].addr + h * s.head_dim * width * e,
                             c_addr=bufs["S"].addr + h * group_rows * width * 4, m=group_rows, n=width,
                             k=s.head_dim, precision=self.precision, acc_precision=Precision.FP32,
                             split=qk_split, subarray=h % qk_ways),
                        reads=[bufs.get("Q", self.q.buf), bufs["K"]], writes=[bufs["S"]])
        rows = plan.heads * group_rows
        if masked and self.causal_built:
            self.causal_mask(rows, width)
        elif masked and self.mask_read:
            self.read_mask(stream, q0, q_rows, index * plan.block, width, width, bufs["S"].addr)
        elif masked:
            self.add_mask(rows, width)
        for op, kind, a, b_ref, dst in _ONLINE_SOFTMAX:
            if kind in ("per-row", "out-per-row"):
                self.per_row(op, a, b_ref, dst, rows, width if kind == "per-row" else s.v_dim)
                continue
            count = rows * width if kind in ("elem", "reduce") else rows
            self.vector(op, a, b_ref, dst, count, row_len=width if kind == "reduce" else 1)
        v_tile, v_pitch = bufs["V"], width * s.v_dim * e   # V rows of head h at v_addr + h * v_pitch
        v_addr = v_tile.addr
        if self.in_place and self.in_place[1].space == "sram":
            v_tile = self.in_place[1].buf
            v_pitch = s.fresh * s.v_dim * e
            v_addr = self.in_place[1].addr + (head_offset * s.fresh + index * plan.block) * s.v_dim * e
        else:
            v_src = self.v_cache.addr + index * self.v_block_bytes + head_offset * plan.block * s.v_dim * e
            v_stride = plan.block * s.v_dim * e
            if self.in_place:    # rows of one (sequence, head) pair are the input's [fresh, dv] rows
                v_src = self.v_cache.addr + (head_offset * s.fresh + index * plan.block) * s.v_dim * e
                v_stride = s.fresh * s.v_dim * e
            lw.emit(DmaLoad(hbm_addr=v_src, sram_addr=v_tile.addr, rows=plan.heads, row_bytes=width * s.v_dim * e,
                            hbm_row_stride=v_stride), reads=[self.v_cache], writes=[v_tile])
        pv_split, pv_ways = self.split(group_rows, s.v_dim, width)
        for h in range(plan.heads):
            lw.emit(Gemm(a_addr=bufs["P"].addr + h * group_rows * width * e,
                         b_addr=v_addr + h * v_pitch,
                         c_addr=bufs["O"].addr + h * group_rows * s.v_dim * 4, m=group_rows, n=s.v_dim, k=width,
                         precision=self.precision, acc_precision=Precision.FP32, accumulate=True,
                         split=pv_split, subarray=h % pv_ways),
                    reads=[bufs["P"], v_tile, bufs["O"]], writes=[bufs["O"]])

    def in_place_scores(self, stream: int, q0: int, key0: int, width: int, group_rows: int, split: int,
                        ways: int) -> None:
        """S = Q @ K^T for keys [key0, key0 + width) of row-major K ([pairs, fresh, d]): the array
        reads the K rows as its transposed B (GEMM_STRIDED), from a tile (K in HBM) or in place."""
        lw, s, plan, bufs = self.lw, self.s, self.plan, self.bufs
        k = self.in_place[0]
        e, d = k.bits // 8, s.head_dim
        first = k.addr + (stream * plan.heads * s.fresh + key0) * d * e
        source, pitch = k.buf, s.fresh * d * e
        if k.space == "hbm":
            lw.emit(DmaLoad(hbm_addr=first, sram_addr=bufs["K"].addr, rows=plan.heads, row_bytes=width * d * e,
                            hbm_row_stride=s.fresh * d * e), reads=[k.buf], writes=[bufs["K"]])
            source, first, pitch = bufs["K"], bufs["K"].addr, width * d * e
        for h in range(plan.heads):
            lw.emit(GemmStrided(a_addr=self.q_addr(stream, h, q0), b_addr=first + h * pitch,
                                c_addr=bufs["S"].addr + h * group_rows * width * 4, m=group_rows, n=width, k=d,
                                precision=self.precision, acc_precision=Precision.FP32, split=split,
                                subarray=h % ways, lda=d, ldb=d, ldc=width, transpose_b=True),
                    reads=[bufs.get("Q", self.q.buf), source], writes=[bufs["S"]])

    def split(self, m: int, n: int, k: int) -> tuple[int, int]:
        """Array split for the per-KV-head GEMMs of a block (skinny: m = query heads per group x
        rows): chosen with the shared systolic cost model; heads go to sub-arrays round-robin."""
        ways = choose_split(self.lw.chip, m, n, k, self.precision.label).ways
        return ways.bit_length() - 1, ways

    # ---- a causal mask from positions ------------------------------------------------------
    def iota(self, buf: Buf, count: int) -> None:
        """buf[i] = i for i < count (fp32): 0, then each run copied shifted by its length."""
        lw = self.lw
        lw.emit(Vector(op=V.FILL, precision=Precision.FP32, src_a=buf.addr, dst=buf.addr, length=1, imm=0),
                reads=[buf], writes=[buf])
        done = 1
        while done < count:
            n = min(done, count - done)
            lw.emit(Vector(op=V.ADD_IMM, precision=Precision.FP32, src_a=buf.addr, dst=buf.addr + done * 4,
                           length=n, imm=f32_bits(done)), reads=[buf], writes=[buf])
            done += n

    def query_positions(self, rows: int, q_rows: int) -> None:
        """qbase[r] = the offset of score row r's query in its query block: rows run (head, group
        member, query). Built once per query-block height."""
        lw, buf = self.lw, self.bufs["qbase"]
        self.query_rows = q_rows
        self.iota(buf, q_rows)
        if rows > q_rows:  # every head's rows ask for the same positions
            lw.emit(Vector2D(op=V.COPY, precision=Precision.FP32, src_a=buf.addr, dst=buf.addr + q_rows * 4,
                             rows=rows // q_rows - 1, cols=q_rows, a_row_stride=0, dst_row_stride=q_rows),
                    reads=[buf], writes=[buf])

    def mask_from(self, index: int, rows: int, position: int) -> None:
        """qrel = qbase + position - index * block: the positions of the queries (the block's
        first at `position`) relative to cache block `index`'s first key."""
        qbase, qrel = self.bufs["qbase"], self.bufs["qrel"]
        self.lw.emit(Vector(op=V.ADD_IMM, precision=Precision.FP32, src_a=qbase.addr, dst=qrel.addr, length=rows,
                            imm=f32_bits(position - index * self.plan.block)), reads=[qbase], writes=[qrel])

    def causal_mask(self, rows: int, width: int) -> None:
        """S[r, c] = -inf where query r's position < key c's (qrel[r] < c), then move qrel one block
        on. The fp32 conditions fill the mask tile (2 bytes per score) in two halves of the rows."""
        lw, bufs = self.lw, self.bufs
        cond, qrel, kpos, S = bufs["mask"], bufs["qrel"], bufs["kpos"], bufs["S"]
        half = -(-rows // 2)
        for r0 in range(0, rows, half):
            count = min(half, rows - r0)
            lw.emit(Vector2D(op=V.CMP_LT, precision=Precision.FP32, src_a=qrel.addr + r0 * 4, src_b=kpos.addr,
                             dst=cond.addr, rows=count, cols=width, a_row_stride=1, a_col_step=0, b_row_stride=0,
                             b_col_step=1, dst_row_stride=width), reads=[qrel, kpos], writes=[cond])
            lw.emit(Vector2D(op=V.SELECT, precision=Precision.FP32, src_a=cond.addr, src_b=bufs["ninf"].addr,
                             dst=S.addr + r0 * width * 4, rows=count, cols=width, a_row_stride=width,
                             b_row_stride=0, b_col_step=0, dst_row_stride=width),
                    reads=[cond, bufs["ninf"], S], writes=[S])
        lw.emit(Vector(op=V.ADD_IMM, precision=Precision.FP32, src_a=qrel.addr, dst=qrel.addr, length=rows,
                       imm=f32_bits(-self.plan.block)), reads=[qrel], writes=[qrel])

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

    def _mask_varies(self) -> bool:
        """Whether the mask differs between the (sequence, head) units of a stream."""
        dims = (1,) * (4 - len(self.mask.shape)) + tuple(self.mask.shape)
        return dims[0] > 1 or dims[1] > 1

    def read_mask(self, stream: int, q0: int, q_rows: int, key0: int, width: int, pitch: int, scores: int) -> None:
        """S += mask[.., q0:q0 + q_rows, key0:key0 + width] for every (sequence, query head) of
        the stream (their score rows run head by head, `pitch` elements apart): one VECTOR_2D
        per unit whose mask rows differ; a mask in HBM comes in by one strided DMA per unit first."""
        lw, s, mask = self.lw, self.s, self.mask
        e = mask.bits // 8
        mb, mh, mq, mk = (1,) * (4 - len(mask.shape)) + tuple(mask.shape)
        units = self.plan.heads * s.group
        varies = self._mask_varies()
        tile = self.bufs.get("mask")
        loaded: dict[int, int] = {}
        for u in range(units):
            pair = stream * self.plan.heads + u // s.group
            sequence, head = divmod(pair, s.kv_heads)
            head = head * s.group + u % s.group
            offset = (((sequence if mb > 1 else 0) * mh + (head if mh > 1 else 0)) * mq
                      + (q0 if mq > 1 else 0)) * mk + key0
            rows_step = mk if mq > 1 else 0
            if mask.space == "hbm":
                if offset not in loaded:
                    slot = tile.addr + (u if varies else 0) * q_rows * width * e
                    lw.emit(DmaLoad(hbm_addr=mask.addr + offset * e, sram_addr=slot, rows=q_rows if mq > 1 else 1,
                                    row_bytes=width * e, hbm_row_stride=mk * e), reads=[mask.buf], writes=[tile])
                    loaded[offset] = slot
                source, buf, rows_step = loaded[offset], tile, width if mq > 1 else 0
            else:
                source, buf = mask.addr + offset * e, mask.buf
            lw.emit(Vector2D(op=V.ADD, precision=Precision.FP32, src_a=scores + u * q_rows * pitch * 4,
                             src_b=source, dst=scores + u * q_rows * pitch * 4, rows=q_rows, cols=width,
                             a_row_stride=pitch, b_row_stride=rows_step, b_col_step=1, dst_row_stride=pitch),
                    reads=[self.bufs["S"], buf], writes=[self.bufs["S"]])

    def fresh(self, stream: int, rows: int, q_rows: int, k_new: Value, v_new: Value) -> None:
        """Start the running softmax from the new tokens, straight from SRAM."""
        lw, s, plan = self.lw, self.s, self.plan
        n = s.fresh
        group_rows = s.group * q_rows
        e_k, e_v = k_new.bits // 8, v_new.bits // 8
        for h in range(plan.heads):
            pair = stream * plan.heads + h
            lw.emit(Gemm(a_addr=self.q_addr(stream, h, 0), b_addr=k_new.addr + pair * n * s.head_dim * e_k,
                         c_addr=self.bufs["S"].addr + h * group_rows * n * 4, m=group_rows, n=n, k=s.head_dim,
                         precision=self.precision, acc_precision=Precision.FP32),
                    reads=[self.bufs.get("Q", self.q.buf), k_new.buf], writes=[self.bufs["S"]])
        if self.mask_read:   # the mask's columns of the new keys
            self.read_mask(stream, 0, q_rows, s.past, n, n, self.bufs["S"].addr)
        self.vector(V.REDUCE_MAX, "S", "S", "m", rows * n, row_len=n)
        self.per_row(V.SUB, "S", "m", "S", rows, n)
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
            if q_rows != s.q_len:
                lw.inexact(f"{self.node.name}: output rows of a query block are written as one run")
            lw.emit(Vector2D(op=V.MUL, precision=y.precision, src_a=self.bufs["O"].addr, src_b=self.bufs["l"].addr,
                             dst=y.addr + min(offset, max(0, y.nbytes - count * e)), rows=rows, cols=s.v_dim,
                             a_row_stride=s.v_dim, b_row_stride=1, b_col_step=0, dst_row_stride=s.v_dim),
                    reads=[self.bufs["O"], self.bufs["l"]], writes=[y.buf])
            return
        self.per_row(V.MUL, "O", "l", "O", rows, s.v_dim)
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

    def per_row(self, op: VectorOp, a: str, b: str, dst: str, rows: int, cols: int) -> None:
        """dst[r, c] = op(a[r, c], b[r]): a per-row correction of a rows x cols tile."""
        bufs = self.bufs
        self.lw.emit(Vector2D(op=op, precision=Precision.FP32, src_a=bufs[a].addr, src_b=bufs[b].addr,
                              dst=bufs[dst].addr, rows=rows, cols=cols, a_row_stride=cols, b_row_stride=1,
                              b_col_step=0, dst_row_stride=cols),
                     reads=[bufs[a], bufs[b]], writes=[bufs[dst]])

    def vector(self, op: VectorOp, a: str, b: str, dst: str, length: int, row_len: int = 1) -> None:
        bufs = self.bufs
        self.lw.emit(Vector(op=op, precision=Precision.FP32, src_a=bufs[a].addr, src_b=bufs[b].addr,
                            dst=bufs[dst].addr, length=length, row_len=row_len),
                     reads=[bufs[a], bufs[b]], writes=[bufs[dst]])
