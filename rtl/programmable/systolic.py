"""Weight-stationary int8 systolic array, splittable along K into sub-arrays with their own ports.

Geometry. `rows` x `cols` processing elements (PEs); rows run along the reduction dimension K,
columns along the output dimension N. The rows form F = 2**max_split slices of rows / F rows.
Input `chain` says how slices group into sub-arrays: bit q (q >= 1) set means slice q continues
the sub-array of slice q - 1 (its partial sums come from slice q - 1's bottom row); bit 0 is
ignored. A sub-array starting at slice c is driven through port set c and has R = span * rows / F
rows, so split s (as in the ISA) is `chain` with every bit set except at multiples of F >> s.
Change `chain` only while the sub-arrays it regroups are idle.

Interface (port set c for c < F; sets whose slice continues another sub-array are never ready):
  * `weights[c]`: In stream, payload `cols` int8 (element j = B[row, j]); R beats load one tile,
    beat i into row i of the sub-array, into the weight bank that is not streaming (double buffer);
  * `acts[c]`: In stream, payload `values` (`rows` int8, the first R used: one row of A's k-slice)
    and `last` (the last row of the tile: the next beat uses the other bank);
  * `results[c]`: Out stream, payload `cols` int32: row r of the tile's product A_tile @ B_tile,
    in the order the activation rows came, wrapping modulo 2**32.
A tile's activations are taken once all R weight beats of it are in; a bank is reloaded once the
last activation of the tile that used it has been taken.

Timing. An activation row taken in cycle X is on `results` in cycle X + R + C - 1 (skew down
the rows, across the columns, de-skew); with the SRAM read before it, that is the systolic cost
model's drain of R + C. Back-pressure on `results` freezes the whole sub-array (every register of
it holds), so no beat is ever lost.

PE (row p, column j): psum[p][j] <= psum[p-1][j] + a * w[bank][p][j], where `a` and `bank` move
one column right per cycle and the activations of row p enter p cycles late (skew). Weights move
one column right per cycle too, so a new weight reaches PE (p, j) exactly j cycles after PE (p, 0),
never ahead of the last activation of the tile that used the bank before.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.programmable.config import CoreConfig


def act_layout(rows: int) -> data.StructLayout:
    return data.StructLayout({"values": data.ArrayLayout(signed(8), rows), "last": 1})


def possible_owners(slice_index: int, max_split: int) -> list[int]:
    """The first slices of the sub-arrays that can contain `slice_index` at some split."""
    return sorted({slice_index - slice_index % ((1 << max_split) >> s) for s in range(max_split + 1)})


def chain_for_split(split: int, max_split: int) -> int:
    """The `chain` bits of the whole array split 2**split ways."""
    span = (1 << max_split) >> split
    return sum(1 << q for q in range(1 << max_split) if q % span)


class SystolicArray(wiring.Component):
    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.slices = 1 << config.max_split
        self.slice_rows = config.rows // self.slices
        rows, cols, f = config.rows, config.cols, self.slices
        super().__init__({
            "chain": In(f),
            "weights": In(stream.Signature(data.ArrayLayout(signed(8), cols))).array(f),
            "acts": In(stream.Signature(act_layout(rows))).array(f),
            "results": Out(stream.Signature(data.ArrayLayout(signed(32), cols))).array(f),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, f, rs = self.config, self.slices, self.slice_rows
        rows, cols = cfg.rows, cfg.cols

        # ---- grouping of slices into sub-arrays -------------------------------------------
        first = [Const(1, 1)] + [~self.chain[q] for q in range(1, f)]
        owner = []                                  # owner[q] == c: slice q belongs to c's sub-array
        for q in range(f):
            o = Signal(range(f), name=f"owner{q}")
            m.d.comb += o.eq(q if q == 0 else Mux(first[q], q, owner[q - 1]))
            owner.append(o)
        spans = {}                                  # (c, span) -> condition: c's sub-array has `span` slices
        for c in range(f):
            for s in range(cfg.max_split + 1):
                span = f >> s
                if c % span:
                    continue
                cond = first[c]
                for q in range(c + 1, c + span):
                    cond = cond & self.chain[q]
                if c + span < f:
                    cond = cond & first[c + span]
                spans[(c, span)] = cond

        adv = [Signal(name=f"adv{c}") for c in range(f)]
        for c in range(f):
            m.d.comb += adv[c].eq(~self.results[c].valid | self.results[c].ready)

        def owner_is(q: int, c: int):
            return owner[q] == c

        slice_adv = []
        for q in range(f):
            a = Signal(name=f"slice_adv{q}")
            m.d.comb += a.eq(Cat(*(owner_is(q, c) & adv[c] for c in possible_owners(q, cfg.max_split))).any())
            slice_adv.append(a)

        # ---- per sub-array control: banks, weight beats, valid tags -----------------------
        wpipes, ubanks, fires = [], [], []
        for c in range(f):
            w, a, r = self.weights[c], self.acts[c], self.results[c]
            group_rows = Signal(range(rows + 1), name=f"group_rows{c}")
            m.d.comb += group_rows.eq(0)
            for (cc, span), cond in spans.items():
                if cc == c:
                    with m.If(cond):
                        m.d.comb += group_rows.eq(span * rs)
            lbank = Signal(name=f"lbank{c}")
            ubank = Signal(name=f"ubank{c}")
            full = Signal(2, name=f"full{c}")
            wcount = Signal(range(rows), name=f"wcount{c}")
            m.d.comb += [
                w.ready.eq(adv[c] & first[c] & ~full.bit_select(lbank, 1)),
                a.ready.eq(adv[c] & first[c] & full.bit_select(ubank, 1)),
            ]
            w_fire, a_fire = w.valid & w.ready, a.valid & a.ready
            full_set, full_clear = Signal(2, name=f"full_set{c}"), Signal(2, name=f"full_clear{c}")
            with m.If(w_fire):
                with m.If(wcount == group_rows - 1):
                    m.d.sync += [wcount.eq(0), lbank.eq(~lbank)]
                    m.d.comb += full_set.eq(1 << lbank)
                with m.Else():
                    m.d.sync += wcount.eq(wcount + 1)
            with m.If(a_fire & a.payload.last):
                m.d.sync += ubank.eq(~ubank)
                m.d.comb += full_clear.eq(1 << ubank)
            m.d.sync += full.eq((full | full_set) & ~full_clear)

            # weights travel right one column per cycle: stage j writes column j
            stages = []
            for j in range(cols):
                st = {"valid": Signal(name=f"wp{c}_{j}_valid"), "row": Signal(range(rows), name=f"wp{c}_{j}_row"),
                      "bank": Signal(name=f"wp{c}_{j}_bank"),
                      "data": Signal(signed(8), name=f"wp{c}_{j}_data")}
                if j == 0:
                    m.d.comb += [st["valid"].eq(w_fire), st["row"].eq(c * rs + wcount), st["bank"].eq(lbank),
                                 st["data"].eq(w.payload[0])]
                    delayed = [w.payload[jj] for jj in range(cols)]
                else:
                    prev = stages[j - 1]
                    carried = [Signal(signed(8), name=f"wp{c}_{j}_carry{jj}", reset_less=True) for jj in range(j, cols)]
                    with m.If(adv[c]):
                        m.d.sync += [st["valid"].eq(prev["valid"]), st["row"].eq(prev["row"]),
                                     st["bank"].eq(prev["bank"])]
                        m.d.sync += [carried[jj - j].eq(delayed[jj - (j - 1)]) for jj in range(j, cols)]
                    m.d.comb += st["data"].eq(carried[0])
                    delayed = carried
                stages.append(st)
            wpipes.append(stages)
            ubanks.append(ubank)
            fires.append(a_fire)

            # valid tag: a row taken at X is a result R + C - 1 cycles later
            depth = (f - c) * rs + cols - 1
            tags = [a_fire] + [Signal(name=f"tag{c}_{k}") for k in range(1, depth + 1)]
            tap = group_rows + (cols - 1)
            with m.If(adv[c]):
                for k in range(1, depth + 1):
                    m.d.sync += tags[k].eq(tags[k - 1] & (k <= tap))
            m.d.comb += r.valid.eq(Array([Const(0, 1), *tags[1:]])[tap] & first[c])

        # ---- the PE grid -------------------------------------------------------------------
        psum = [[Signal(signed(32), name=f"ps{p}_{j}", reset_less=True) for j in range(cols)] for p in range(rows)]
        for p in range(rows):
            q = p // rs
            owners = possible_owners(q, cfg.max_split)
            # skewed activation input of row p: delay = p - (first row of the sub-array)
            value_in = Signal(signed(8), name=f"skew{p}_in")
            bank_in = Signal(name=f"skew{p}_bank")
            for c in owners:
                with m.If(owner_is(q, c)):
                    m.d.comb += [value_in.eq(self.acts[c].payload.values[p - c * rs]), bank_in.eq(ubanks[c])]
            line_v = [value_in] + [Signal(signed(8), name=f"skew{p}_{k}", reset_less=True) for k in range(1, p + 1)]
            line_b = [bank_in] + [Signal(name=f"skewb{p}_{k}", reset_less=True) for k in range(1, p + 1)]
            with m.If(slice_adv[q]):
                m.d.sync += [line_v[k].eq(line_v[k - 1]) for k in range(1, p + 1)]
                m.d.sync += [line_b[k].eq(line_b[k - 1]) for k in range(1, p + 1)]
            a_in, b_in = Signal(signed(8), name=f"a{p}_in"), Signal(name=f"bank{p}_in")
            for c in owners:
                with m.If(owner_is(q, c)):
                    m.d.comb += [a_in.eq(line_v[p - c * rs]), b_in.eq(line_b[p - c * rs])]
            top = (p % rs == 0)
            for j in range(cols):
                weight = [Signal(signed(8), name=f"w{bank}_{p}_{j}", reset_less=True) for bank in range(2)]
                for c in owners:
                    st = wpipes[c][j]
                    with m.If(owner_is(q, c) & adv[c] & st["valid"] & (st["row"] == p)):
                        m.d.sync += Array(weight)[st["bank"]].eq(st["data"])
                a_reg = Signal(signed(8), name=f"a{p}_{j}", reset_less=True)
                b_reg = Signal(name=f"b{p}_{j}", reset_less=True)
                if p == 0:
                    above = Const(0, signed(32))
                elif top:
                    above = Mux(first[q], 0, psum[p - 1][j])
                else:
                    above = psum[p - 1][j]
                product = a_in * Mux(b_in, weight[1], weight[0])
                with m.If(slice_adv[q]):
                    m.d.sync += [a_reg.eq(a_in), b_reg.eq(b_in), psum[p][j].eq(above + product)]
                a_in, b_in = a_reg, b_reg

        # ---- outputs: the bottom row of each sub-array, de-skewed --------------------------
        for c in range(f):
            bottom = [Signal(signed(32), name=f"bottom{c}_{j}") for j in range(cols)]
            for (cc, span), cond in spans.items():
                if cc == c:
                    with m.If(cond):
                        m.d.comb += [bottom[j].eq(psum[(c + span) * rs - 1][j]) for j in range(cols)]
            for j in range(cols):
                line = [bottom[j]] + [Signal(signed(32), name=f"deskew{c}_{j}_{k}", reset_less=True)
                                      for k in range(1, cols - j)]
                with m.If(adv[c]):
                    m.d.sync += [line[k].eq(line[k - 1]) for k in range(1, cols - j)]
                m.d.comb += self.results[c].payload[j].eq(line[-1])
        return m


def design(chip) -> SystolicArray:
    return SystolicArray(CoreConfig.from_chip(chip))
