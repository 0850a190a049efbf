"""Model-as-hardware matrix-vector unit: a weight matrix compiled into the logic, P MACs per cycle.

    mvu = MatrixVectorUnit(weight_codes, bits=4, parallelism=16, requant=Requant(imm, shift))

Computes, for each token, y = x @ W with W (rows x cols, rows = inputs) hard-wired: W's codes
are the initial contents of a read-only memory (no write port), which synthesis turns into
block-RAM or LUT ROM contents. P = SIMD x PE lanes: SIMD inputs of PE outputs per cycle (FINN's
folding), SIMD dividing rows and PE dividing cols, so a token takes exactly rows * cols / P
cycles — the spatial model's `ceil(macs / parallelism)` for a region.

Ports (Amaranth streams; in Verilog `x__payload`, `x__valid`, `x__ready`, likewise `y`):
  x  in   one token is rows / SIMD beats; beat b holds inputs b*SIMD .. b*SIMD+SIMD-1 as SIMD
          signed int8 lanes (lane 0 in the low byte).
  y  out  one token is cols / PE beats; beat g holds outputs g*PE .. g*PE+PE-1, each the int32
          dot product (sign-extended accumulator) or, with `requant`, the int8
          requantize(acc, imm, shift) of `simulator.programmable.functional.requantize`.

Schedule. Cycle c = g * G + j of a token (G = rows / SIMD) multiplies input group j by ROM
word c, which holds W[j*SIMD + s, g*PE + q] in lane q*SIMD + s. The input is double-buffered
(two banks of G words), so the next token loads while this one computes and, with the output
never back-pressured, tokens leave every rows * cols / P cycles.

Pipeline: issue (ROM and input-buffer read addresses) -> registered reads -> products ->
adder trees (one stage) -> accumulate (int32 output register) [-> requantize (int8 output
register)]. `latency_cycles`: the last output beat is valid that many rising edges after the
edge that accepted the token's last input beat, when the unit was idle. Back-pressure on `y`
stalls the whole pipeline (every stage advances only when the output register is free).
The accumulator is as wide as the worst case of the hard-wired weights needs (sum_k |W[k, n]|
x 128), at most 32 bits, where it wraps like int32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.targets.programmable.int_graphs import Requant
from rtl.programmable.config import RtlConfigError
from rtl.spatial.layer import RegionLayer, region_layer
from simulator.spatial.hardware import SpatialChip

ACTIVATION_BITS = 8
MAX_ACC_BITS = 32
MAX_ROM_WORDS = 1 << 16           # schedule cycles per token (ROM depth) the generator accepts


@dataclass(frozen=True)
class MvuSchedule:
    """How P lanes sweep a rows x cols matrix: SIMD inputs x PE outputs per cycle."""

    rows: int
    cols: int
    simd: int
    pe: int

    @property
    def parallelism(self) -> int:
        return self.simd * self.pe

    @property
    def input_beats(self) -> int:
        """Input beats per token, also the cycles spent on one group of PE outputs (G)."""
        return self.rows // self.simd

    @property
    def output_beats(self) -> int:
        return self.cols // self.pe

    @property
    def cycles_per_token(self) -> int:
        return self.input_beats * self.output_beats

    def rom_words(self, weight: np.ndarray) -> np.ndarray:
        """(cycles_per_token, P) weight codes: word c = g*G + j, lane q*SIMD + s = W[j*SIMD + s, g*PE + q]."""
        g_count, pe, simd = self.output_beats, self.pe, self.simd
        w = np.asarray(weight).reshape(self.input_beats, simd, g_count, pe)   # [j, s, g, q]
        return w.transpose(2, 0, 3, 1).reshape(self.cycles_per_token, pe * simd)

    def replay(self, weight: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The schedule run in numpy, ROM word by ROM word: int64 x @ W (a naive model of the datapath)."""
        words = self.rom_words(weight).astype(np.int64)
        groups = np.asarray(x, dtype=np.int64).reshape(self.input_beats, self.simd)
        out = np.zeros(self.cols, dtype=np.int64)
        for c, word in enumerate(words):
            g, j = divmod(c, self.input_beats)
            out[g * self.pe:(g + 1) * self.pe] += (word.reshape(self.pe, self.simd) * groups[j]).sum(axis=1)
        return out


def schedule_for(rows: int, cols: int, parallelism: int, simd: int | None = None) -> MvuSchedule:
    """SIMD x PE = P with SIMD | rows and PE | cols; by default the largest such SIMD (fewest accumulators)."""
    if parallelism < 1:
        raise RtlConfigError(f"MVU parallelism {parallelism}: needs at least one lane")
    options = [s for s in range(1, rows + 1)
               if rows % s == 0 and parallelism % s == 0 and cols % (parallelism // s) == 0]
    if simd is not None:
        if simd not in options:
            raise RtlConfigError(f"MVU {rows}x{cols} parallelism {parallelism}: SIMD {simd} does not divide both the "
                                 f"rows and P with P/SIMD dividing the cols; possible SIMD: {options or 'none'}")
        options = [simd]
    if not options:
        near = [p for p in range(1, rows * cols + 1) if rows * cols % p == 0 and _factors(rows, cols, p)]
        below = max((p for p in near if p < parallelism), default=None)
        above = min((p for p in near if p > parallelism), default=None)
        raise RtlConfigError(f"MVU {rows}x{cols}: parallelism {parallelism} is not SIMD x PE with SIMD dividing "
                             f"{rows} rows and PE dividing {cols} cols; nearest supported: "
                             f"{', '.join(str(p) for p in (below, above) if p is not None)}")
    return MvuSchedule(rows, cols, options[-1], parallelism // options[-1])


def _factors(rows: int, cols: int, p: int) -> bool:
    return any(rows % s == 0 and p % s == 0 and cols % (p // s) == 0 for s in range(1, rows + 1))


def check_parameters(weight: np.ndarray, bits: int, parallelism: int, requant: Requant | None = None,
                     simd: int | None = None) -> MvuSchedule:
    """The schedule of an MVU the generator can build, or an RtlConfigError naming what is not."""
    w = np.asarray(weight)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise RtlConfigError(f"MVU weight: a 2-D integer matrix of codes, got {w.dtype} {w.shape}")
    if not 2 <= bits <= 8:
        raise RtlConfigError(f"MVU weight bits {bits}: supported widths are 2 to 8")
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if w.size and (w.min() < low or w.max() > high):
        raise RtlConfigError(f"MVU weight codes span {w.min()}..{w.max()}, outside {bits}-bit {low}..{high}")
    if requant is not None and not (0 <= requant.imm < 1 << 32 and 0 <= requant.shift <= 63):
        raise RtlConfigError(f"MVU requant {requant}: imm must be an unsigned 32-bit value, shift 0..63")
    schedule = schedule_for(*w.shape, parallelism, simd)
    if schedule.cycles_per_token > MAX_ROM_WORDS:
        raise RtlConfigError(f"MVU {w.shape[0]}x{w.shape[1]} at P={parallelism}: {schedule.cycles_per_token} "
                             f"cycles per token exceed the {MAX_ROM_WORDS}-word ROM the generator builds; "
                             "raise the parallelism")
    return schedule


class MatrixVectorUnit(wiring.Component):
    """y = x @ W (int32) or requantize(x @ W) (int8) with W's codes hard-wired; see the module docstring."""

    def __init__(self, weight: np.ndarray, bits: int, parallelism: int, requant: Requant | None = None,
                 simd: int | None = None) -> None:
        try:
            self.schedule = check_parameters(weight, bits, parallelism, requant, simd)
        except RtlConfigError:
            self._MustUse__silence = True     # Amaranth: a rejected description is not an unused design
            raise
        self.weight = np.asarray(weight).astype(np.int64)
        self.bits = bits
        self.requant = requant
        bound = int(np.abs(self.weight).sum(axis=0).max()) << (ACTIVATION_BITS - 1)
        self.acc_bits = min(MAX_ACC_BITS, bound.bit_length() + 1)
        out_bits = ACTIVATION_BITS if requant is not None else MAX_ACC_BITS
        super().__init__({
            "x": In(stream.Signature(data.ArrayLayout(signed(ACTIVATION_BITS), self.schedule.simd))),
            "y": Out(stream.Signature(data.ArrayLayout(signed(out_bits), self.schedule.pe))),
        })

    @property
    def pipeline_cycles(self) -> int:
        """Edges from a token's last ROM read issue to its last output: read, multiply, tree, accumulate [, requant]."""
        return 4 if self.requant is not None else 3

    @property
    def latency_cycles(self) -> int:
        return self.schedule.cycles_per_token + self.pipeline_cycles

    def elaborate(self, platform) -> Module:
        m = Module()
        s = self.schedule
        g_beats = s.input_beats
        simd, pe = s.simd, s.pe

        # Weights: one ROM word per schedule cycle, P codes per word.
        rom_layout = data.ArrayLayout(signed(self.bits), s.parallelism)
        m.submodules.weights = rom = memory.Memory(shape=rom_layout, depth=s.cycles_per_token,
                                                   init=[[int(v) for v in word] for word in s.rom_words(self.weight)])
        rom_rd = rom.read_port()

        # Activations: two banks of G words (a bank per token, padded to a power of two).
        beat = Signal(range(g_beats), name="load_beat")
        bank_words = 1 << len(beat)
        m.submodules.activations = act = memory.Memory(shape=data.ArrayLayout(signed(ACTIVATION_BITS), simd),
                                                       depth=2 * bank_words, init=[])
        act_wr = act.write_port()
        act_rd = act.read_port()

        # Bank flags as two signals and Muxes, not an Array: Amaranth turns an Array read into an
        # `always @*` block, which Icarus does not evaluate at time 0 (amaranth-lang/amaranth#1629).
        full = (Signal(name="bank0_full"), Signal(name="bank1_full"))
        load_bank = Signal()
        compute_bank = Signal()
        load_full = Mux(load_bank, full[1], full[0])
        compute_full = Mux(compute_bank, full[1], full[0])

        # Loader: fill the free bank beat by beat.
        m.d.comb += [
            self.x.ready.eq(~load_full),
            act_wr.addr.eq(Cat(beat, load_bank)),
            act_wr.data.eq(self.x.payload),
            act_wr.en.eq(self.x.valid & self.x.ready),
        ]
        with m.If(self.x.valid & self.x.ready):
            with m.If(beat == g_beats - 1):
                m.d.sync += [beat.eq(0), _bank_flag(full, load_bank).eq(1), load_bank.eq(~load_bank)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        # Issue: one schedule cycle per clock while the compute bank is full and the output is free.
        advance = Signal()
        issue = Signal()
        cycle = Signal(range(s.cycles_per_token))
        j = Signal(range(g_beats))
        m.d.comb += [
            advance.eq(~self.y.valid | self.y.ready),
            issue.eq(advance & compute_full),
            rom_rd.addr.eq(cycle), rom_rd.en.eq(issue),
            act_rd.addr.eq(Cat(j, compute_bank)), act_rd.en.eq(issue),
        ]
        with m.If(issue):
            m.d.sync += j.eq(Mux(j == g_beats - 1, 0, j + 1))
            with m.If(cycle == s.cycles_per_token - 1):
                m.d.sync += [cycle.eq(0), _bank_flag(full, compute_bank).eq(0), compute_bank.eq(~compute_bank)]
            with m.Else():
                m.d.sync += cycle.eq(cycle + 1)

        # Stage valid / first-of-group / last-of-group flags travel beside the data.
        def stage(name: str):
            return Signal(name=f"{name}_valid"), Signal(name=f"{name}_first"), Signal(name=f"{name}_last")

        read, prod, tree = stage("read"), stage("prod"), stage("tree")
        with m.If(advance):
            m.d.sync += [read[0].eq(issue), read[1].eq(j == 0), read[2].eq(j == g_beats - 1)]
            m.d.sync += [a.eq(b) for a, b in zip(prod, read)] + [a.eq(b) for a, b in zip(tree, prod)]

        product_bits = ACTIVATION_BITS + self.bits
        products = [[Signal(signed(product_bits), name=f"p{q}_{i}") for i in range(simd)] for q in range(pe)]
        sums = [Signal(signed(self.acc_bits), name=f"sum{q}") for q in range(pe)]
        acc = [Signal(signed(self.acc_bits), name=f"acc{q}") for q in range(pe)]
        result = [Signal(signed(self.acc_bits), name=f"result{q}") for q in range(pe)]
        with m.If(advance):
            for q in range(pe):
                for i in range(simd):
                    m.d.sync += products[q][i].eq(rom_rd.data[q * simd + i] * act_rd.data[i])
                m.d.sync += sums[q].eq(_tree_sum(products[q]))
        for q in range(pe):
            m.d.comb += result[q].eq(Mux(tree[1], 0, acc[q]) + sums[q])
        with m.If(advance & tree[0]):
            m.d.sync += [acc[q].eq(result[q]) for q in range(pe)]

        done = Signal()
        m.d.comb += done.eq(tree[0] & tree[2])
        if self.requant is None:
            with m.If(advance):
                m.d.sync += self.y.valid.eq(done)
                m.d.sync += [self.y.payload[q].eq(result[q]) for q in range(pe)]
        else:
            staged_valid = Signal()
            staged = [Signal(signed(self.acc_bits), name=f"staged{q}") for q in range(pe)]
            with m.If(advance):
                m.d.sync += [staged_valid.eq(done), self.y.valid.eq(staged_valid)]
                m.d.sync += [staged[q].eq(result[q]) for q in range(pe)]
                m.d.sync += [self.y.payload[q].eq(_requantize(m, staged[q], self.requant, q)) for q in range(pe)]
        return m


def _bank_flag(full: tuple[Signal, Signal], bank: Signal):
    """The flag of `bank` as an assignable slice of the two flags (a sync-domain target)."""
    return Cat(*full).bit_select(bank, 1)


def _tree_sum(values: list[Signal]):
    """Balanced adder tree (combinational; one register after it)."""
    level = list(values)
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def _requantize(m: Module, acc: Signal, requant: Requant, lane: int):
    """int8 clamp(floor(acc * imm / 2**shift + 1/2)), as `functional.requantize` computes it."""
    product = Signal(signed(len(acc) + max(requant.imm.bit_length(), 1) + 1), name=f"rq_product{lane}")
    m.d.comb += product.eq(acc * C(requant.imm, max(requant.imm.bit_length(), 1)))
    rounded = Signal(signed(len(product)), name=f"rq_rounded{lane}")
    if requant.shift:
        m.d.comb += rounded.eq(((product >> (requant.shift - 1)) + 1) >> 1)
    else:
        m.d.comb += rounded.eq(product)
    return Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded))


def mvu_for(layer: RegionLayer, parallelism: int | None = None, requantized: bool = True) -> MatrixVectorUnit:
    """The MVU of a planned region: its codes and bits, the folding pass's lanes (or `parallelism`)."""
    return MatrixVectorUnit(layer.weight.values, layer.weight.bits, parallelism or layer.parallelism,
                            layer.requant if requantized else None)


def design(chip) -> MatrixVectorUnit:
    """Registry entry `mvu`: tiny-llama's first MLP gate projection, hard-wired as `chip`'s plan folds it."""
    if not isinstance(chip, SpatialChip):
        raise RtlConfigError(f"{chip.name}: the MVU is built from a spatial (model-as-hardware) description, "
                             f"not kind {getattr(chip, 'kind', type(chip).__name__)!r}")
    return mvu_for(region_layer(chip))
