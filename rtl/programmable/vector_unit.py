"""The vector unit: the integer subset's VECTOR ops, bit-exact with simulator/programmable/functional.py.

Interface:
  * `cmd`: In stream of `isa_layout.VectorLayout` (addresses already loop-adjusted); ready when
    idle and in the cycle `done` is high (the simulator issues the next VECTOR at completion).
  * `done`: Out(1), high for one cycle sampled at edge E + N, E the edge that took the command,
    N = vector_cycles(chip, op, length) = ceil(length / lanes) + vector.pipeline_latency_cycles
    (VECTOR_PIPELINE_CYCLES = 5 in config.py).
  * `error`: Out(1): high with `done` one cycle after taking a command the unit cannot run (an op
    or precision outside the integer subset, length 0, a reduction with row_len 0, an int32
    operand not 4-byte aligned); it then writes nothing. `vector_errors` says it before a run.
  * `a_read`, `b_read` (ports.sram_read_signature), `write` (ports.sram_write_signature).

Ops on int32 (lanes = cols elements per word): COPY, ADD, SUB, MUL (wrapping), MAX, SHIFT
(arithmetic right by `shift`), REQUANT (clamp(floor(a * imm / 2**shift + 1/2)) to int8, written as
bytes), REDUCE_SUM (wrapping) and REDUCE_MAX over rows of `row_len` elements, one int32 per row.

Pipeline (cycle 0 is the cycle after E; G = ceil(length / lanes) groups of `lanes` elements):
  cycles 0 .. G     read word w0 + x of src_a (and src_b): the words the operand touches, one per
                    cycle, so an operand may start at any 4-byte address;
  cycle g + 2       group g = the `lanes` elements from the word read at g and the next (a funnel
                    shift by the operand's element offset); lane stage 1: the op, or the product
                    (MUL, REQUANT), or a segmented scan over the group (reductions);
  cycle g + 3       lane stage 2: requantize; reductions add the running partial row and pack
                    the rows that end in the group (any number, so any row_len runs at full rate);
  cycle g + 4       write: the group's bytes go to the destination stream at its byte offset;
                    bytes past the end of the word are kept and written with the next group;
  cycle G + 4       the last partial word is written and `done` is high: N = G + 5.
Reads run ahead of writes, so dst may overlap a source only when it starts at or before it (the
lowering's in-place ops have dst == src); `vector_errors` enforces that.
"""

from __future__ import annotations

import math

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.targets.programmable.isa import INTEGER_VECTOR_OPS, Precision, Vector, VectorOp
from rtl.programmable.config import CoreConfig, RtlConfigError
from rtl.programmable.isa_layout import VectorLayout
from rtl.programmable.ports import sram_read_signature, sram_write_signature
from simulator.programmable.costs.vector import BINARY_OPS, REDUCTIONS

INT32_MIN = -(1 << 31)


class VectorUnit(wiring.Component):
    def __init__(self, config: CoreConfig) -> None:
        if config.word_bytes != 4 * config.lanes:
            raise RtlConfigError(f"{config.name}: vector.lanes {config.lanes}: one int32 per lane must fill the "
                                 f"{config.word_bytes}-byte scratchpad word")
        self.config = config
        super().__init__({
            "cmd": In(stream.Signature(VectorLayout)),
            "done": Out(1),
            "error": Out(1),
            "a_read": Out(sram_read_signature(config)),
            "b_read": Out(sram_read_signature(config)),
            "write": Out(sram_write_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes, word_bytes = cfg.lanes, cfg.word_bytes
        ws = int(math.log2(word_bytes))            # byte address -> word address
        es = int(math.log2(lanes))                 # element index -> word
        p = self.cmd.payload

        # ---- taking a command ------------------------------------------------------------------
        supported = Signal()
        m.d.comb += supported.eq(
            Cat(*(p.op == int(op) for op in INTEGER_VECTOR_OPS)).any() & (p.precision == Precision.INT32)
            & (p.length != 0) & (p.src_a[:2] == 0) & ((p.src_b[:2] == 0) | ~_is(p.op, BINARY_OPS))
            & ((p.dst[:2] == 0) | (p.op == VectorOp.REQUANT)) & ((p.row_len != 0) | ~_is(p.op, REDUCTIONS)))
        busy, finishing, refused = Signal(), Signal(), Signal()
        m.d.comb += self.cmd.ready.eq(~busy | finishing)
        take = self.cmd.valid & self.cmd.ready
        m.d.sync += refused.eq(take & ~supported)

        op, shift, imm = Signal(6), Signal(6), Signal(32)
        groups = Signal(24)
        cycle = Signal(26)
        a_word, b_word = Signal(len(self.a_read.addr)), Signal(len(self.b_read.addr))
        a_off, b_off = Signal(es), Signal(es)
        row_len = Signal(24)
        multiples = [Signal(28, name=f"row_len_x{j}") for j in range(lanes + 1)]
        is_requant, is_reduce, is_max = Signal(), Signal(), Signal()
        start = [                               # what taking a command sets (last, so it wins)
            busy.eq(1), cycle.eq(0), op.eq(p.op), shift.eq(p.shift), imm.eq(p.imm),
            groups.eq((p.length + lanes - 1) >> es), row_len.eq(p.row_len),
            a_word.eq(p.src_a >> ws), b_word.eq(p.src_b >> ws),
            a_off.eq(p.src_a[2:ws]), b_off.eq(p.src_b[2:ws]),
            is_requant.eq(p.op == VectorOp.REQUANT), is_reduce.eq(_is(p.op, REDUCTIONS)),
            is_max.eq(p.op == VectorOp.REDUCE_MAX),
            *(multiples[j].eq(p.row_len * j) for j in range(lanes + 1)),
        ]
        with m.If(busy):
            m.d.sync += cycle.eq(cycle + 1)
        m.d.comb += finishing.eq(busy & (cycle == groups + 4))
        with m.If(finishing):
            m.d.sync += busy.eq(0)
        m.d.comb += [self.done.eq(finishing | refused), self.error.eq(refused)]

        # ---- reads: one word of each operand per cycle, cycles 0 .. G -------------------------
        reading = busy & (cycle <= groups)
        a_prev, b_prev = Signal(8 * word_bytes), Signal(8 * word_bytes)
        m.d.comb += [self.a_read.en.eq(reading), self.a_read.addr.eq(a_word + cycle),
                     self.b_read.en.eq(reading & _is(op, BINARY_OPS)), self.b_read.addr.eq(b_word + cycle)]
        m.d.sync += [a_prev.eq(self.a_read.data), b_prev.eq(self.b_read.data)]
        a_group = (Cat(a_prev, self.a_read.data) >> (a_off * 32))[:32 * lanes]
        b_group = (Cat(b_prev, self.b_read.data) >> (b_off * 32))[:32 * lanes]
        a = [Signal(signed(32), name=f"a{i}") for i in range(lanes)]
        b = [Signal(signed(32), name=f"b{i}") for i in range(lanes)]
        m.d.comb += [a[i].eq(a_group[32 * i:32 * i + 32]) for i in range(lanes)]
        m.d.comb += [b[i].eq(b_group[32 * i:32 * i + 32]) for i in range(lanes)]

        # ---- lane stage 1 (cycle g + 2) --------------------------------------------------------
        in_group = busy & (cycle >= 2) & (cycle < groups + 2)
        left = Signal(24)                       # elements of lane 0's row still to come
        remaining = Signal(25)                  # elements from lane 0 to the end
        start += [left.eq(p.row_len), remaining.eq(p.length)]
        count = Mux(remaining < lanes, remaining, lanes)
        valid = [remaining > i for i in range(lanes)]
        ends = [valid[i] & Cat(*(left + multiples[j] == i + 1 for j in range(lanes))).any() for i in range(lanes)]
        next_left = Signal(24)
        for j in reversed(range(lanes + 1)):
            with m.If(left + multiples[j] > lanes):
                m.d.comb += next_left.eq(left + multiples[j] - lanes)
        with m.If(in_group):
            m.d.sync += [remaining.eq(remaining - count), left.eq(next_left)]

        def combine(x, y):
            return Mux(is_max, Mux(x > y, x, y), (x + y)[:32].as_signed())

        identity = Mux(is_max, Const(INT32_MIN, signed(32)), Const(0, signed(32)))
        scan = [Mux(valid[i], a[i], identity) for i in range(lanes)]
        heads = [Const(1, 1)] + [ends[i - 1] for i in range(1, lanes)]
        step = 1
        while step < lanes:                     # segmented inclusive scan (Hillis-Steele)
            level = [Signal(signed(32), name=f"scan{step}_{i}") for i in range(lanes)]
            m.d.comb += [level[i].eq(scan[i] if i < step else Mux(heads[i], scan[i], combine(scan[i - step], scan[i])))
                         for i in range(lanes)]
            scan = level
            heads = [heads[i] if i < step else heads[i] | heads[i - step] for i in range(lanes)]
            step *= 2

        s1_valid, s1_count = Signal(), Signal(range(lanes + 1))
        s1_value = [Signal(signed(32), name=f"s1_value{i}") for i in range(lanes)]
        s1_product = [Signal(signed(64), name=f"s1_product{i}") for i in range(lanes)]
        s1_ends = Signal(lanes)
        m.d.sync += [s1_valid.eq(in_group), s1_count.eq(count), s1_ends.eq(Cat(*ends))]
        for i in range(lanes):
            factor = Mux(is_requant, Cat(imm, Const(0, 1)).as_signed(), b[i])     # imm is unsigned
            elementwise = Signal(signed(32), name=f"lane{i}")
            with m.Switch(op):
                with m.Case(VectorOp.ADD):
                    m.d.comb += elementwise.eq(a[i] + b[i])
                with m.Case(VectorOp.SUB):
                    m.d.comb += elementwise.eq(a[i] - b[i])
                with m.Case(VectorOp.MAX):
                    m.d.comb += elementwise.eq(Mux(a[i] > b[i], a[i], b[i]))
                with m.Case(VectorOp.SHIFT):
                    m.d.comb += elementwise.eq(a[i] >> shift)
                with m.Default():
                    m.d.comb += elementwise.eq(a[i])
            m.d.sync += [s1_value[i].eq(Mux(is_reduce, scan[i], elementwise)), s1_product[i].eq(a[i] * factor)]

        # ---- lane stage 2 (cycle g + 3) --------------------------------------------------------
        carry = Signal(signed(32))              # the reduction of the open row so far
        start.append(carry.eq(Mux(p.op == VectorOp.REDUCE_MAX, INT32_MIN, 0)))
        first_segment = [~s1_ends[:i].any() if i else Const(1, 1) for i in range(lanes)]
        totals = [Signal(signed(32), name=f"total{i}") for i in range(lanes)]
        m.d.comb += [totals[i].eq(Mux(first_segment[i], combine(carry, s1_value[i]), s1_value[i]))
                     for i in range(lanes)]
        last = s1_count - 1
        last_total = Signal(signed(32))
        last_ends = Signal()
        for i in range(lanes):
            with m.If(last == i):
                m.d.comb += [last_total.eq(totals[i]), last_ends.eq(s1_ends[i])]
        with m.If(s1_valid & is_reduce):
            m.d.sync += carry.eq(Mux(last_ends, identity, last_total))
        packed = []                             # the k-th row ending in this group
        before = [Const(0, range(lanes + 1))]
        for i in range(lanes):
            before.append(before[-1] + s1_ends[i])
        for k in range(lanes):
            slot = Signal(signed(32), name=f"row_out{k}")
            for i in range(k, lanes):
                with m.If(s1_ends[i] & (before[i] == k)):
                    m.d.comb += slot.eq(totals[i])
            packed.append(slot)
        rows_done = before[lanes]

        requantized = []
        for i in range(lanes):
            product = s1_product[i]
            rounded = Mux(shift == 0, product, ((product >> (shift - 1)[:6]) + 1) >> 1)
            requantized.append(Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded))[:8])
        lowbits = [(s1_product[i][:32]) for i in range(lanes)]

        s2_valid, s2_bytes = Signal(), Signal(range(word_bytes + 1))
        s2_data = Signal(8 * word_bytes)
        chunk = Mux(is_reduce, Cat(*packed), Mux(is_requant, Cat(*requantized),
                                                 Mux(op == VectorOp.MUL, Cat(*lowbits), Cat(*s1_value))))
        chunk_bytes = Mux(is_reduce, rows_done * 4, Mux(is_requant, s1_count, s1_count * 4))
        m.d.sync += [s2_valid.eq(s1_valid), s2_data.eq(chunk), s2_bytes.eq(Mux(s1_valid, chunk_bytes, 0))]

        # ---- write (cycle g + 4; the last partial word in cycle G + 4) ---------------------------
        pointer = Signal(32)                    # destination byte address of the next chunk
        spill_data, spill_mask = Signal(8 * word_bytes), Signal(word_bytes)
        start += [pointer.eq(p.dst), spill_mask.eq(0), spill_data.eq(0)]
        offset = pointer[:ws]
        in_chunk = [s2_bytes > i for i in range(word_bytes)]
        clean = s2_data & Cat(*(bit.replicate(8) for bit in in_chunk))      # no stray bytes into the spill
        wide = Cat(clean, Const(0, 8 * word_bytes)) << (offset * 8)
        byte_mask = Cat(*in_chunk, Const(0, word_bytes)) << offset
        mask = byte_mask[:word_bytes] | spill_mask
        writing = busy & (cycle >= 4)
        m.d.comb += [
            self.write.en.eq(writing & (mask != 0)),
            self.write.addr.eq(pointer >> ws),
            self.write.data.eq(wide[:8 * word_bytes] | spill_data),
            self.write.mask.eq(mask),
        ]
        with m.If(writing):
            m.d.sync += [spill_data.eq(wide[8 * word_bytes:]), spill_mask.eq(byte_mask[word_bytes:]),
                         pointer.eq(pointer + s2_bytes)]
        with m.If(take & supported):
            m.d.sync += start
        return m


def _is(value, ops) -> object:
    return Cat(*(value == int(op) for op in ops)).any()


def vector_errors(ins: Vector, config: CoreConfig) -> list[str]:
    """Why the VectorUnit cannot run `ins` (empty when it can); see the module docstring."""
    errors = []
    if ins.op not in INTEGER_VECTOR_OPS or ins.precision != Precision.INT32:
        errors.append(f"VECTOR {ins.op.name} on {ins.precision.label}: the RTL runs "
                      f"{', '.join(sorted(op.name for op in INTEGER_VECTOR_OPS))} on int32 only")
        return errors
    if ins.length == 0:
        errors.append("a zero-length VECTOR is a fence: the core completes it without the vector unit")
        return errors
    if ins.op in REDUCTIONS and (ins.row_len == 0 or ins.length % ins.row_len):
        errors.append(f"{ins.op.name}: length {ins.length} is not a whole number of rows of {ins.row_len}")
    sources = [("src_a", ins.src_a)] + ([("src_b", ins.src_b)] if ins.op in BINARY_OPS else [])
    for name, addr in sources + ([] if ins.op is VectorOp.REQUANT else [("dst", ins.dst)]):
        if addr % 4:
            errors.append(f"{name} = {addr}: int32 elements must start at a multiple of 4 bytes")
    out_bytes = ins.length if ins.op is VectorOp.REQUANT else 4 * (
        ins.length // max(ins.row_len, 1) if ins.op in REDUCTIONS else ins.length)
    for name, addr in sources:
        if ins.dst < addr + 4 * ins.length and addr < ins.dst + out_bytes and ins.dst > addr:
            errors.append(f"dst {ins.dst} overlaps {name} {addr} and starts after it: the unit writes while it "
                          "still reads, so an overlapping dst must start at or before its source")
    return errors


def design(chip) -> VectorUnit:
    return VectorUnit(CoreConfig.from_chip(chip))
