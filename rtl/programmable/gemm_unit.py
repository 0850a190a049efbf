"""The GEMM unit: runs GEMM instructions on the systolic array, timed exactly as costs/systolic.py.

Interface (F = 2**max_split controllers; controller c runs sub-array `subarray` of split `split`
when c = subarray << (max_split - split), so a split-0 GEMM always uses controller 0):
  * `cmd`: In stream of `isa_layout.GemmLayout` (addresses already loop-adjusted). It is ready
    when the GEMM's sub-array is free and its SRAM ranges have no hazard with the GEMMs still
    running (read-after-write, write-after-read, write-after-write), exactly the issue rule of
    simulator/programmable/gemm_unit.py; a controller counts as free in the cycle its `done` is
    high. Take zero-size GEMMs (fences) in the core: the unit refuses them like any bad command.
  * `done`: Out(F); bit c is high for one cycle, sampled at edge E + N, where E is the edge that
    took controller c's command and N = gemm_cycles(chip, m, n, k, "int8", split). The core
    retires GEMMs in program order (bits of later GEMMs can come first or together).
  * `error`: Out(1): high with done[0] one cycle after taking a command the unit cannot run (not
    int8 x int8 -> int32, split or subarray out of range, a zero dimension; taken only when no
    GEMM runs), and whenever the array's results disagree with the controller's schedule.
  * per controller c: `a_read[c]`, `b_read[c]`, `c_read[c]` (ports.sram_read_signature) and
    `c_write[c]` (ports.sram_write_signature): its own scratchpad ports, one word per cycle each.

Schedule (R = rows >> split, C = cols, P = max(R, m), T = ceil(k / R) * ceil(n / C) tiles, n outer,
k inner; cycle 0 is the cycle after E). Period -1 (cycles 0 .. R-1) reads tile 0's R rows of B;
period t (R + t P .. R + (t + 1) P - 1) reads the m rows of A's k-slice of tile t, one per cycle,
and the R rows of B of tile t + 1 into the other weight bank. A row read at cycle x leaves the
array in cycle x + R + C; C's row is read in the cycle before (accumulating: `accumulate`, or any
k-tile after the first) and written then. The last write is in cycle R + (T - 1) P + m + R + C - 1,
so N = R + (T - 1) P + m + R + C: the cost model's fill R, tiles, and drain R + C.

Alignment (`gemm_alignment_errors`). The unit reads and writes one 32-byte word per port and
cycle, so every piece it moves must lie inside one word: each R-byte k-slice of a row of A, each
C-byte row piece of a B tile, each row piece of C (4 C bytes). Sufficient: a_addr and k multiples
of R (or m = 1), b_addr and n multiples of C, c_addr a multiple of 32 and n of C (or m = 1). C must
not overlap A or B (the unit reads them while it writes C).
"""

from __future__ import annotations

import math

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.targets.programmable.isa import Gemm, Precision
from rtl.programmable.config import CoreConfig
from rtl.programmable.isa_layout import GemmLayout
from rtl.programmable.ports import sram_read_signature, sram_write_signature
from rtl.programmable.systolic import SystolicArray

ADDR_BITS = 32
DIM_BITS = 16


class GemmUnit(wiring.Component):
    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.controllers = f = 1 << config.max_split
        self.array = SystolicArray(config)         # checks the geometry eagerly
        super().__init__({
            "cmd": In(stream.Signature(GemmLayout)),
            "done": Out(f),
            "error": Out(1),
            "a_read": Out(sram_read_signature(config)).array(f),
            "b_read": Out(sram_read_signature(config)).array(f),
            "c_read": Out(sram_read_signature(config)).array(f),
            "c_write": Out(sram_write_signature(config)).array(f),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        cfg, f = self.config, self.controllers
        p = self.cmd.payload
        ctl = [_Controller(cfg, c) for c in range(f)]

        # ---- the command: which controller, is it runnable, does it collide ----------------
        target = Signal(range(f))
        new_mask = Signal(f)
        new_span = Signal(range(f + 1))
        split_ok = Signal()
        for s in range(cfg.max_split + 1):
            span = f >> s
            with m.If(p.split == s):
                m.d.comb += [split_ok.eq(p.subarray < (1 << s)), target.eq(p.subarray << (cfg.max_split - s)),
                             new_mask.eq(((1 << span) - 1) << target), new_span.eq(span)]
        runnable = Signal()
        m.d.comb += runnable.eq(split_ok & (p.precision == Precision.INT8) & (p.acc_precision == Precision.INT32)
                                & (p.m != 0) & (p.n != 0) & (p.k != 0))
        new_a = _span(p.a_addr, p.m * p.k)
        new_b = _span(p.b_addr, p.k * p.n)
        new_c = _span(p.c_addr, (p.m * p.n) << 2)
        live = [Signal(name=f"live{c}") for c in range(f)]
        busy_slices = Signal(f)
        hazard = Signal()
        for c, t in enumerate(ctl):
            m.d.comb += live[c].eq(t.busy & ~t.finishing)
        m.d.comb += busy_slices.eq(Cat(*(
            Cat(*(live[c] & (c <= q) & (q < c + ctl[c].span) for c in range(q + 1))).any() for q in range(f))))
        m.d.comb += hazard.eq(Cat(*(live[c] & (
            _overlap(new_a, t.c_range) | _overlap(new_b, t.c_range) | _overlap(new_c, t.c_range)
            | _overlap(new_c, t.a_range) | _overlap(new_c, t.b_range)) for c, t in enumerate(ctl))).any())
        anything_live = Cat(*live).any()
        m.d.comb += self.cmd.ready.eq(Mux(runnable, ~(busy_slices & new_mask).any() & ~hazard, ~anything_live))
        take = self.cmd.valid & self.cmd.ready
        refused = Signal()
        m.d.sync += refused.eq(take & ~runnable)

        # ---- controllers -----------------------------------------------------------------------
        chain = Signal(f)
        m.d.comb += chain.eq(Cat(*(
            Cat(*(ctl[c].busy & (c < q) & (q < c + ctl[c].span) for c in range(q))).any() if q else Const(0, 1)
            for q in range(f))))
        m.d.comb += array.chain.eq(chain)
        mismatch = Signal(f)
        for c, t in enumerate(ctl):
            t.build(m, p, take & runnable & (target == c), new_span, new_a, new_b, new_c,
                    self.a_read[c], self.b_read[c], self.c_read[c], self.c_write[c],
                    array.weights[c], array.acts[c], array.results[c])
            m.d.comb += mismatch[c].eq(array.results[c].valid ^ t.c_pending)
        m.d.comb += [
            self.done.eq(Cat(*(t.finishing for t in ctl)) | refused),
            self.error.eq(refused | mismatch.any()),
        ]
        return m


def _span(base, length) -> tuple:
    """[base, base + length) as values wide enough not to wrap."""
    return base, base + length


def _overlap(x: tuple, y: tuple):
    """The byte ranges [lo, hi) share a byte."""
    return (x[0] < y[1]) & (y[0] < x[1])


class _Controller:
    """One sub-array's sequencer: B loads, A stream and C read-modify-write (see module docstring)."""

    def __init__(self, config: CoreConfig, index: int) -> None:
        self.config, self.index = config, index
        c = index
        self.busy = Signal(name=f"busy{c}")
        self.finishing = Signal(name=f"finishing{c}")
        self.c_pending = Signal(name=f"c_pending{c}")
        self.span = Signal(range((1 << config.max_split) + 1), name=f"span{c}")
        self.a_range = (Signal(ADDR_BITS + 3, name=f"a_lo{c}"), Signal(ADDR_BITS + 3, name=f"a_hi{c}"))
        self.b_range = (Signal(ADDR_BITS + 3, name=f"b_lo{c}"), Signal(ADDR_BITS + 3, name=f"b_hi{c}"))
        self.c_range = (Signal(ADDR_BITS + 3, name=f"c_lo{c}"), Signal(ADDR_BITS + 3, name=f"c_hi{c}"))

    def build(self, m: Module, p, start, new_span, new_a, new_b, new_c, a_read, b_read, c_read, c_write,
              weights, acts, results) -> None:
        cfg, c = self.config, self.index
        rows, cols = cfg.rows, cfg.cols
        ws = int(math.log2(cfg.word_bytes))              # byte address -> word address

        def reg(name, shape=DIM_BITS, **kw):
            return Signal(shape, name=f"{name}{c}", **kw)

        a_addr, b_addr, c_addr = reg("a_addr", ADDR_BITS), reg("b_addr", ADDR_BITS), reg("c_addr", ADDR_BITS)
        dm, dn, dk = reg("m"), reg("n"), reg("k")
        accumulate = reg("accumulate", 1)
        r_rows = reg("R", range(rows + 1))
        log_r = reg("log_r", range(int(math.log2(rows)) + 1))
        period = reg("P")
        k_tiles = reg("k_tiles")
        b_tile_step = reg("b_tile_step", ADDR_BITS)         # R * n: B bytes from one k-tile to the next

        # master sequencer: period -1 (B of tile 0 only), then one period of P cycles per tile
        pre, a_on, b_on = reg("pre", 1), reg("a_on", 1), reg("b_on", 1)
        phase = reg("phase")
        # B walker (one tile ahead of A)
        b_kt, b_kleft, b_nleft = reg("b_kt"), reg("b_kleft", DIM_BITS + 1), reg("b_nleft", DIM_BITS + 1)
        b_row, b_tile, b_ntbase, b_abase = (reg(x, ADDR_BITS) for x in ("b_row", "b_tile", "b_ntbase", "b_abase"))
        # A walker
        a_row, a_lasttile = reg("a_row", ADDR_BITS), reg("a_lasttile", 1)
        # C walker: A's sequence R + C - 1 cycles later
        c_wait = reg("c_wait", range(2 * rows + cols + 1))
        c_on, c_phase, c_kt = reg("c_on", 1), reg("c_phase"), reg("c_kt")
        c_row, c_tile, c_nleft = reg("c_row", ADDR_BITS), reg("c_tile", ADDR_BITS), reg("c_nleft", DIM_BITS + 1)

        running = self.busy
        # ---- B: R rows of the next tile's weights per period ------------------------------
        b_issue = running & b_on & (phase < r_rows)
        b_pending, b_off, b_row_ok = reg("b_pending", 1), reg("b_off", ws), reg("b_row_ok", 1)
        m.d.comb += [b_read.en.eq(b_issue), b_read.addr.eq(b_row >> ws)]
        m.d.sync += [b_pending.eq(b_issue), b_off.eq(b_row[:ws]), b_row_ok.eq(phase < b_kleft)]
        with m.If(b_issue):
            m.d.sync += b_row.eq(b_row + dn)
        piece = (b_read.data >> (b_off * 8))[:8 * cols]
        m.d.comb += [weights.valid.eq(b_pending), weights.payload.eq(Mux(b_row_ok, piece, 0))]

        # ---- A: m rows of the current tile's k-slice per period ----------------------------
        a_issue = running & a_on & ~pre & (phase < dm)
        a_pending, a_off, a_last = reg("a_pending", 1), reg("a_off", ws), reg("a_last", 1)
        m.d.comb += [a_read.en.eq(a_issue), a_read.addr.eq(a_row >> ws)]
        m.d.sync += [a_pending.eq(a_issue), a_off.eq(a_row[:ws]), a_last.eq(phase == dm - 1)]
        with m.If(a_issue):
            m.d.sync += a_row.eq(a_row + dk)
        m.d.comb += [acts.valid.eq(a_pending), acts.payload.values.eq((a_read.data >> (a_off * 8))[:8 * rows]),
                     acts.payload.last.eq(a_last)]

        # ---- period boundaries: A takes B's tile, B moves to the next ----------------------
        b_lasttile = (b_kt == k_tiles - 1) & (b_nleft <= cols)
        period_end = (pre | a_on) & (phase == Mux(pre, r_rows, period) - 1)
        with m.If(running & (pre | a_on)):
            m.d.sync += phase.eq(phase + 1)
            with m.If(period_end):
                m.d.sync += [phase.eq(0), pre.eq(0)]
                with m.If(~pre & a_lasttile):
                    m.d.sync += a_on.eq(0)
                with m.Else():
                    m.d.sync += [a_on.eq(1), a_row.eq(b_abase), a_lasttile.eq(b_lasttile),
                                 b_on.eq(b_on & ~b_lasttile)]
                    with m.If(b_kt == k_tiles - 1):
                        m.d.sync += [b_kt.eq(0), b_kleft.eq(dk), b_nleft.eq(b_nleft - cols), b_abase.eq(a_addr),
                                     b_ntbase.eq(b_ntbase + cols), b_tile.eq(b_ntbase + cols),
                                     b_row.eq(b_ntbase + cols)]
                    with m.Else():
                        m.d.sync += [b_kt.eq(b_kt + 1), b_kleft.eq(b_kleft - r_rows), b_abase.eq(b_abase + r_rows),
                                     b_tile.eq(b_tile + b_tile_step), b_row.eq(b_tile + b_tile_step)]

        # ---- C: read (accumulating) in the cycle before the row leaves the array, then write --
        with m.If(running & (c_wait != 0)):
            m.d.sync += c_wait.eq(c_wait - 1)
        c_active = running & c_on & (c_wait == 0)
        c_issue = c_active & (c_phase < dm)
        c_add_now = accumulate | (c_kt != 0)
        c_lasttile = (c_kt == k_tiles - 1) & (c_nleft <= cols)
        c_add, c_off, c_final = reg("c_add", 1), reg("c_off", ws), reg("c_final", 1)
        c_cols, c_word = reg("c_cols", range(cols + 1)), reg("c_word", len(c_write.addr))
        m.d.comb += [c_read.en.eq(c_issue & c_add_now), c_read.addr.eq(c_row >> ws)]
        m.d.sync += [self.c_pending.eq(c_issue), c_add.eq(c_add_now), c_off.eq(c_row[:ws]),
                     c_final.eq(c_lasttile & (c_phase == dm - 1)), c_word.eq(c_row >> ws),
                     c_cols.eq(Mux(c_nleft < cols, c_nleft, cols))]
        with m.If(c_issue):
            m.d.sync += c_row.eq(c_row + (dn << 2))
        with m.If(c_active):
            m.d.sync += c_phase.eq(c_phase + 1)
            with m.If(c_phase == period - 1):
                m.d.sync += [c_phase.eq(0), c_on.eq(~c_lasttile)]
                with m.If(c_kt == k_tiles - 1):
                    m.d.sync += [c_kt.eq(0), c_nleft.eq(c_nleft - cols), c_tile.eq(c_tile + 4 * cols),
                                 c_row.eq(c_tile + 4 * cols)]
                with m.Else():
                    m.d.sync += [c_kt.eq(c_kt + 1), c_row.eq(c_tile)]

        old = data.View(data.ArrayLayout(signed(32), cols), (c_read.data >> (c_off * 8))[:32 * cols])
        total = Cat(*((results.payload[j] + Mux(c_add, old[j], 0))[:32] for j in range(cols)))     # wraps
        col_bytes = Cat(*(c_cols > (i >> 2) for i in range(4 * cols)))
        m.d.comb += [
            results.ready.eq(1),
            c_write.en.eq(self.c_pending), c_write.addr.eq(c_word),
            c_write.data.eq(total << (c_off * 8)), c_write.mask.eq(col_bytes << c_off),
            self.finishing.eq(self.c_pending & c_final),
        ]
        with m.If(self.finishing):
            m.d.sync += [self.busy.eq(0), c_on.eq(0), a_on.eq(0), b_on.eq(0), pre.eq(0)]

        # ---- taking a command (last, so it wins over the finishing cycle) --------------------
        new_rows = Signal(range(rows + 1), name=f"new_rows{c}")
        new_log = Signal(range(int(math.log2(rows)) + 1), name=f"new_log{c}")
        for s in range(cfg.max_split + 1):
            with m.If(p.split == s):
                m.d.comb += [new_rows.eq(rows >> s), new_log.eq(int(math.log2(rows >> s)))]
        with m.If(start):
            m.d.sync += [
                self.busy.eq(1), self.span.eq(new_span),
                a_addr.eq(p.a_addr), b_addr.eq(p.b_addr), c_addr.eq(p.c_addr),
                dm.eq(p.m), dn.eq(p.n), dk.eq(p.k), accumulate.eq(p.accumulate),
                r_rows.eq(new_rows), log_r.eq(new_log), period.eq(Mux(p.m > new_rows, p.m, new_rows)),
                k_tiles.eq((p.k + new_rows - 1) >> new_log), b_tile_step.eq(p.n << new_log),
                self.a_range[0].eq(new_a[0]), self.a_range[1].eq(new_a[1]),
                self.b_range[0].eq(new_b[0]), self.b_range[1].eq(new_b[1]),
                self.c_range[0].eq(new_c[0]), self.c_range[1].eq(new_c[1]),
                pre.eq(1), a_on.eq(0), b_on.eq(1), phase.eq(0),
                b_kt.eq(0), b_kleft.eq(p.k), b_nleft.eq(p.n),
                b_row.eq(p.b_addr), b_tile.eq(p.b_addr), b_ntbase.eq(p.b_addr), b_abase.eq(p.a_addr),
                c_wait.eq(2 * new_rows + cols - 1), c_on.eq(1), c_phase.eq(0), c_kt.eq(0),
                c_row.eq(p.c_addr), c_tile.eq(p.c_addr), c_nleft.eq(p.n),
            ]


def gemm_alignment_errors(ins: Gemm, config: CoreConfig) -> list[str]:
    """Why the GemmUnit cannot run `ins` as placed (empty when it can); see the module docstring."""
    word = config.word_bytes
    r = config.rows >> ins.split if ins.split <= config.max_split else config.rows
    cols = config.cols
    errors = []
    if min(ins.m, ins.n, ins.k) == 0:
        return errors

    def pieces(count: int, size: int, total: int) -> list[tuple[int, int]]:
        """(offset, length) of the first pieces (offsets repeat modulo a word) and the last one."""
        tiles = -(-total // size)
        firsts = [(t * size, size) for t in range(min(tiles - 1, word))]
        return firsts + [((tiles - 1) * size, total - (tiles - 1) * size)]

    def crossing(name: str, base: int, pitch: int, lines: int, parts: list[tuple[int, int]], hint: str) -> None:
        for line in range(min(lines, word)):       # line offsets repeat with a period dividing the word
            for offset, length in parts:
                start = base + line * pitch + offset
                if start % word + length > word:
                    errors.append(f"{name}: the {length}-byte piece of row {line} at byte {offset} starts at SRAM "
                                  f"byte {start}, {start % word} into a {word}-byte word, and crosses it; {hint}")
                    return

    crossing("A", ins.a_addr, ins.k, ins.m, pieces(ins.m, r, ins.k),
             f"keep a_addr and k multiples of R = {r} (rows >> split)")
    crossing("B", ins.b_addr, ins.n, ins.k, pieces(ins.k, cols, ins.n),
             f"keep b_addr and n multiples of cols = {cols}")
    crossing("C", ins.c_addr, 4 * ins.n, ins.m, [(4 * o, 4 * n) for o, n in pieces(ins.m, cols, ins.n)],
             f"keep c_addr a multiple of {word} and n a multiple of cols = {cols}")
    a = (ins.a_addr, ins.a_addr + ins.m * ins.k)
    b = (ins.b_addr, ins.b_addr + ins.k * ins.n)
    c = (ins.c_addr, ins.c_addr + 4 * ins.m * ins.n)
    for name, (lo, hi) in (("A", a), ("B", b)):
        if lo < c[1] and c[0] < hi:
            errors.append(f"C bytes {c[0]}..{c[1]} overlap {name} bytes {lo}..{hi}: the unit reads {name} while it "
                          "writes C")
    return errors


def gemm_errors(ins: Gemm, config: CoreConfig) -> list[str]:
    """Everything that keeps the GemmUnit from running `ins`: the integer subset, split, alignment."""
    errors = []
    if ins.precision != Precision.INT8 or ins.acc_precision != Precision.INT32:
        errors.append(f"GEMM {ins.precision.label} -> {ins.acc_precision.label}: the RTL multiplies int8 x int8 "
                      "into int32 only")
    if ins.split > config.max_split:
        errors.append(f"split {ins.split}: {config.name} splits at most {config.max_split} (systolic.split_factors)")
    elif ins.subarray >= 1 << ins.split:
        errors.append(f"subarray {ins.subarray}: split {ins.split} has {1 << ins.split} sub-arrays")
    if min(ins.m, ins.n, ins.k) == 0:
        errors.append("a zero-size GEMM is a fence: the core completes it without the GEMM unit")
    return errors + gemm_alignment_errors(ins, config)


def design(chip) -> GemmUnit:
    return GemmUnit(CoreConfig.from_chip(chip))
