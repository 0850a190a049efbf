"""The core's control: program loading, per-engine instruction queues with LOOP expansion, the
dependency-token semaphores and issue, in-order retirement, and a stall report.

Loading. The program binary arrives on `prog`, one 256-bit instruction per transfer, before
`start`. A loader decodes each header and writes the instruction (with its program index) into
the instruction store of its engine's queue (LOAD, STORE, GEMM, VECTOR): the program split by
engine, as the simulator's plan.py splits it. A LOOP is not stored: every queue with
instructions in its body records the body's first and last entry and the count in a small loop
table (a count of 0 drops the body). HALT ends the program; `start` ends it too. So fetch never
stalls one queue behind another's instructions, and LOOP costs nothing at run time.

Fetch. Each queue reads its store one entry per cycle into a two-stage prefetch (the store's
registered read, then the head register). The fetch side walks the loop table: after the body's
last entry it jumps back to the first until the count is done, and every fetched entry carries
its iteration i, so the head holds the instruction with each address already advanced by
i * its loop stride. Fetch starts when loading ends; `running` rises once every queue has its
first instruction at the head (or nothing to run) and `start` has been seen.

Issue (one instruction per queue per cycle; the event engine's rules, engine.py, with
control.issue_cycles = 1). A head issues when every semaphore it waits on is positive (twice
for a double wait on one semaphore) and its resource is free:
  * DMA_LOAD / DMA_STORE: the one DMA channel (free in the cycle its `done` is high); when both
    queues could take it in one cycle, LOAD goes first;
  * GEMM: the GEMM unit's `cmd.ready` (its sub-array free, no SRAM hazard with running GEMMs);
  * VECTOR: every earlier VECTOR instruction retired (the unit is ready in its `done` cycle);
  * a zero-size instruction (fence) takes no unit: it retires one cycle after it issues.
Semaphores are taken in queue order LOAD, STORE, GEMM, VECTOR (the engine's issue pass order)
and the count a head sees includes this cycle's retirements: a signal at edge E lets its
waiter issue at E.

Retirement. Each queue keeps its issued instructions in order (at most `INFLIGHT` of them);
completions (`dma_done`, `gemm_done[c]` of GEMM controller c, `vector_done`) mark them, and the
oldest completed ones retire in the same cycle, incrementing their signal semaphores. So a
signal never overtakes an earlier one of its queue, as in engine.py.

`cycles` counts from the first cycle instructions may issue (time 0 of the event engine) to the
last retirement; `finished` rises after it. `status` names, per queue, the head's program index,
what it waits for (a semaphore, or its unit) and what is in flight; `sems` holds the counts;
`retired` counts retired instructions (a watchdog's progress); `error` is sticky (an
instruction for no queue, a store or loop table overflow). One program per reset.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.targets.programmable import isa
from rtl.programmable.config import CoreConfig
from rtl.programmable.isa_layout import DmaLayout, GemmLayout, LoopLayout, VectorLayout

QUEUE_ENGINES = (isa.Engine.LOAD, isa.Engine.STORE, isa.Engine.GEMM, isa.Engine.VECTOR)
QUEUE_LAYOUTS = (DmaLayout, DmaLayout, GemmLayout, VectorLayout)
QUEUE_OPCODES = (isa.Opcode.DMA_LOAD, isa.Opcode.DMA_STORE, isa.Opcode.GEMM, isa.Opcode.VECTOR)
# address fields and the loop stride that advances each (functional.py's semantics)
ADDRESS_STRIDES = {
    isa.Engine.LOAD: (("hbm_addr", "hbm_loop_stride"), ("sram_addr", "sram_loop_stride")),
    isa.Engine.STORE: (("hbm_addr", "hbm_loop_stride"), ("sram_addr", "sram_loop_stride")),
    isa.Engine.GEMM: (("a_addr", "a_loop_stride"), ("b_addr", "b_loop_stride"), ("c_addr", "c_loop_stride")),
    isa.Engine.VECTOR: (("src_a", "loop_stride"), ("src_b", "loop_stride"), ("dst", "loop_stride")),
}

QUEUE_DEPTH = 256        # instruction store entries per queue
MAX_LOOPS = 8            # LOOPs with a body on one queue
INFLIGHT = 4             # issued, not yet retired instructions per queue
SEM_BITS = 16            # semaphore counters
PC_BITS = 16             # program index in the stall report
SEMAPHORES = isa.MAX_SEMAPHORE + 1

def _sram_addr_bits(config: CoreConfig) -> int:
    return (config.sram_bytes - 1).bit_length()


STATE_DONE, STATE_SEMAPHORE, STATE_UNIT, STATE_ISSUING = 0, 1, 2, 3
QueueStatus = data.StructLayout({"pc": PC_BITS, "state": 2, "sem": 4, "inflight": 3})


def _fence(engine: isa.Engine, view) -> object:
    """The instruction is zero-size: it only carries semaphores (plan.py's fences)."""
    if engine in (isa.Engine.LOAD, isa.Engine.STORE):
        return (view.rows == 0) | (view.row_bytes == 0)
    if engine == isa.Engine.GEMM:
        return (view.m == 0) | (view.n == 0) | (view.k == 0)
    return view.length == 0


class Control(wiring.Component):
    def __init__(self, config: CoreConfig, queue_depth: int = QUEUE_DEPTH, max_loops: int = MAX_LOOPS) -> None:
        self.config = config
        self.queue_depth, self.max_loops = queue_depth, max_loops
        self.gemm_controllers = 1 << config.max_split
        super().__init__({
            "prog": In(stream.Signature(isa.INSTRUCTION_BITS)),
            "start": In(1),
            "loaded": Out(1),
            "running": Out(1),
            "finished": Out(1),
            "cycles": Out(32),
            "dma_cmd": Out(stream.Signature(DmaLayout)),
            "dma_done": In(1),
            "gemm_cmd": Out(stream.Signature(GemmLayout)),
            "gemm_done": In(self.gemm_controllers),
            "vector_cmd": Out(stream.Signature(VectorLayout)),
            "vector_done": In(1),
            "status": Out(data.ArrayLayout(QueueStatus, len(QUEUE_ENGINES))),
            "sems": Out(data.ArrayLayout(SEM_BITS, SEMAPHORES)),
            "activity": Out(1),
            "retired": Out(32),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        nq = len(QUEUE_ENGINES)
        depth, max_loops = self.queue_depth, self.max_loops
        entry_bits = isa.INSTRUCTION_BITS + PC_BITS
        error = Signal()
        m.d.comb += self.error.eq(error)

        # ---- instruction stores and the loader --------------------------------------------------
        stores = []
        for q in range(nq):
            mem = memory.Memory(shape=entry_bits, depth=depth, init=[])
            m.submodules[f"store_{QUEUE_ENGINES[q].name.lower()}"] = mem
            stores.append((mem.write_port(), mem.read_port()))
        wptr = [Signal(range(depth + 1), name=f"wptr_{q}") for q in range(nq)]
        nloops = [Signal(range(max_loops + 1), name=f"nloops_{q}") for q in range(nq)]
        loop_first = [Array(Signal(range(depth), name=f"loop_first_{q}_{j}") for j in range(max_loops))
                      for q in range(nq)]
        loop_last = [Array(Signal(range(depth), name=f"loop_last_{q}_{j}") for j in range(max_loops))
                     for q in range(nq)]
        loop_count = [Array(Signal(32, name=f"loop_count_{q}_{j}") for j in range(max_loops)) for q in range(nq)]

        loaded = self.loaded
        pc = Signal(PC_BITS)
        skip = Signal(16)
        body_left = Signal(16)
        body_count = Signal(32)
        in_body = Signal(nq)
        word = self.prog.payload
        header = data.View(LoopLayout, word)
        m.d.comb += self.prog.ready.eq(1)
        beat = self.prog.valid & ~loaded
        with m.If(self.start):
            m.d.sync += loaded.eq(1)
        with m.If(beat):
            m.d.sync += pc.eq(pc + 1)
            with m.If(skip != 0):
                m.d.sync += skip.eq(skip - 1)
            with m.Elif(header.opcode == isa.Opcode.LOOP):
                with m.If(body_left != 0):
                    m.d.sync += error.eq(1)                  # LOOPs do not nest
                with m.If(header.count == 0):
                    m.d.sync += skip.eq(header.body)
                with m.Else():
                    m.d.sync += [body_left.eq(header.body), body_count.eq(header.count), in_body.eq(0)]
            with m.Elif(header.opcode == isa.Opcode.HALT):
                m.d.sync += loaded.eq(1)
            with m.Else():
                known = Cat(*((header.engine == engine) & (header.opcode == opcode)
                              for engine, opcode in zip(QUEUE_ENGINES, QUEUE_OPCODES))).any()
                for q, (engine, opcode) in enumerate(zip(QUEUE_ENGINES, QUEUE_OPCODES)):
                    here = (header.engine == engine) & (header.opcode == opcode)
                    write, _ = stores[q]
                    m.d.comb += [write.addr.eq(wptr[q]), write.data.eq(Cat(word, pc)),
                                 write.en.eq(here & (wptr[q] < depth))]
                    with m.If(here):
                        m.d.sync += wptr[q].eq(wptr[q] + 1)
                        with m.If((wptr[q] >= depth) | ((body_left != 0) & (nloops[q] >= max_loops))):
                            m.d.sync += error.eq(1)
                        with m.If((body_left != 0) & (nloops[q] < max_loops)):
                            j = nloops[q]
                            with m.If(~in_body[q]):
                                m.d.sync += loop_first[q][j].eq(wptr[q])
                            m.d.sync += [loop_last[q][j].eq(wptr[q]), loop_count[q][j].eq(body_count),
                                         in_body[q].eq(1)]
                with m.If(~known):
                    m.d.sync += error.eq(1)
            with m.If((skip == 0) & (body_left != 0)):
                m.d.sync += body_left.eq(body_left - 1)
                with m.If(body_left == 1):             # the body ends: its queues close their loop
                    for q, engine in enumerate(QUEUE_ENGINES):
                        here = (header.engine == engine) & (header.opcode != isa.Opcode.LOOP) & (
                            header.opcode != isa.Opcode.HALT)
                        with m.If((in_body[q] | here) & (nloops[q] < max_loops)):
                            m.d.sync += nloops[q].eq(nloops[q] + 1)

        # ---- fetch: store -> prefetch -> head, loops expanded ------------------------------------
        running = self.running
        heads = []
        for q, engine in enumerate(QUEUE_ENGINES):
            heads.append(self._fetch(m, q, engine, stores[q][1], wptr[q], nloops[q], loop_first[q], loop_last[q],
                                     loop_count[q], loaded))

        # ---- in-flight instructions and retirement ------------------------------------------------
        slots = []
        for q in range(nq):
            slots.append({
                "head": Signal(range(INFLIGHT), name=f"ret_head_{q}"),
                "count": Signal(range(INFLIGHT + 1), name=f"ret_count_{q}"),
                "done": Signal(INFLIGHT, name=f"ret_done_{q}"),
                "sig0": Array(Signal(4, name=f"ret_sig0_{q}_{i}") for i in range(INFLIGHT)),
                "sig1": Array(Signal(4, name=f"ret_sig1_{q}_{i}") for i in range(INFLIGHT)),
            })
        dma_busy = Signal()
        dma_owner = Signal(range(nq))
        dma_entry = Signal(range(INFLIGHT))
        vector_entry = Signal(range(INFLIGHT))
        gemm_entry = Array(Signal(range(INFLIGHT), name=f"gemm_entry_{c}") for c in range(self.gemm_controllers))

        completing = [Signal(INFLIGHT, name=f"completing_{q}") for q in range(nq)]
        for q, engine in enumerate(QUEUE_ENGINES):
            bits = []
            for i in range(INFLIGHT):
                if engine in (isa.Engine.LOAD, isa.Engine.STORE):
                    bits.append(self.dma_done & dma_busy & (dma_owner == q) & (dma_entry == i))
                elif engine == isa.Engine.GEMM:
                    bits.append(Cat(*(self.gemm_done[c] & (gemm_entry[c] == i)
                                      for c in range(self.gemm_controllers))).any())
                else:
                    bits.append(self.vector_done & (vector_entry == i))
            m.d.comb += completing[q].eq(Cat(*bits))

        retiring = []          # per queue: how many retire this cycle
        increments = [Const(0, 8)] * SEMAPHORES
        for q in range(nq):
            s = slots[q]
            finished_bits = s["done"] | completing[q]
            chain = []
            ok = Const(1, 1)
            for k in range(INFLIGHT):
                index = (s["head"] + k)[:max(1, (INFLIGHT - 1).bit_length())]
                ok = ok & (s["count"] > k) & finished_bits.bit_select(index, 1)
                flag = Signal(name=f"retire_{q}_{k}")
                m.d.comb += flag.eq(ok)
                sig0, sig1 = Signal(4, name=f"retire_sig0_{q}_{k}"), Signal(4, name=f"retire_sig1_{q}_{k}")
                m.d.comb += [sig0.eq(s["sig0"][index]), sig1.eq(s["sig1"][index])]
                chain.append((flag, sig0, sig1))
            n_retire = Signal(range(INFLIGHT + 1), name=f"n_retire_{q}")
            m.d.comb += n_retire.eq(sum(flag for flag, _, _ in chain))
            retiring.append(n_retire)
            for sem in range(1, SEMAPHORES):       # an instruction may signal one semaphore twice
                increments[sem] = increments[sem] + sum(
                    (flag & (sig0 == sem)) + (flag & (sig1 == sem)) for flag, sig0, sig1 in chain)
        inc = [Signal(8, name=f"inc_{sem}") for sem in range(SEMAPHORES)]
        for sem in range(1, SEMAPHORES):
            m.d.comb += inc[sem].eq(increments[sem])

        # ---- issue --------------------------------------------------------------------------------
        sems = [Signal(SEM_BITS, name=f"sem_{sem}") for sem in range(SEMAPHORES)]
        for sem in range(SEMAPHORES):
            m.d.comb += self.sems[sem].eq(sems[sem])
        available = [Signal(SEM_BITS + 1, name=f"avail_{sem}") for sem in range(SEMAPHORES)]
        for sem in range(1, SEMAPHORES):
            m.d.comb += available[sem].eq(sems[sem] + inc[sem])
        issue = [Signal(name=f"issue_{q}") for q in range(nq)]
        takes = []
        room = [(slots[q]["count"] - retiring[q]) < INFLIGHT for q in range(nq)]
        empty_after = [(slots[q]["count"] - retiring[q]) == 0 for q in range(nq)]
        dma_free = ~dma_busy | self.dma_done
        wants_dma = []
        for q, engine in enumerate(QUEUE_ENGINES):
            head = heads[q]
            view = head["view"]
            w0, w1 = view.wait0, view.wait1
            avail = Array(Signal(SEM_BITS + 1, name=f"avail_{q}_{sem}") for sem in range(SEMAPHORES))
            for sem in range(SEMAPHORES):
                taken_before = sum((t[sem] for t in takes), Const(0, 2))
                m.d.comb += avail[sem].eq(available[sem] - taken_before if sem else 0)
            need0 = Mux(w1 == w0, 2, 1)
            ok0 = (w0 == 0) | (avail[w0] >= need0)
            ok1 = (w1 == 0) | (w1 == w0) | (avail[w1] >= 1)
            sems_ok = Signal(name=f"sems_ok_{q}")
            m.d.comb += sems_ok.eq(ok0 & ok1)
            ready = Signal(name=f"ready_{q}")       # everything but the unit's handshake
            m.d.comb += ready.eq(running & head["valid"] & sems_ok)
            fence = head["fence"]
            # `wants`: the head would go to its unit now (the command's valid); it issues when
            # the unit is ready too. A fence needs no unit.
            wants = Signal(name=f"wants_{q}")
            if engine in (isa.Engine.LOAD, isa.Engine.STORE):
                m.d.comb += wants.eq(ready & ~fence & room[q] & dma_free)
                wants_dma.append(wants)
                unit_ok = wants & self.dma_cmd.ready
                if engine == isa.Engine.STORE:
                    unit_ok = unit_ok & ~wants_dma[0]        # LOAD goes first
            elif engine == isa.Engine.GEMM:
                m.d.comb += [wants.eq(ready & ~fence & room[q]), self.gemm_cmd.valid.eq(wants)]
                unit_ok = wants & self.gemm_cmd.ready
            else:
                m.d.comb += [wants.eq(ready & ~fence & empty_after[q]), self.vector_cmd.valid.eq(wants)]
                unit_ok = wants & self.vector_cmd.ready
            m.d.comb += issue[q].eq((ready & fence & room[q]) | unit_ok)
            take = [Signal(2, name=f"take_{q}_{sem}") for sem in range(SEMAPHORES)]
            for sem in range(1, SEMAPHORES):
                m.d.comb += take[sem].eq(Mux(issue[q], (w0 == sem) + (w1 == sem), 0))
            takes.append(take)
            # the stall report
            status = self.status[q]
            m.d.comb += [status.pc.eq(head["pc"]), status.inflight.eq(slots[q]["count"])]
            with m.If(~head["valid"]):
                m.d.comb += status.state.eq(STATE_DONE)
            with m.Elif(~sems_ok):
                m.d.comb += [status.state.eq(STATE_SEMAPHORE), status.sem.eq(Mux(ok0, w1, w0))]
            with m.Elif(~issue[q]):
                m.d.comb += status.state.eq(STATE_UNIT)
            with m.Else():
                m.d.comb += status.state.eq(STATE_ISSUING)
        for sem in range(1, SEMAPHORES):
            m.d.sync += sems[sem].eq(available[sem] - sum((t[sem] for t in takes), Const(0, 3)))

        # unit commands
        load, store = heads[0], heads[1]
        m.d.comb += [
            self.dma_cmd.valid.eq(wants_dma[0] | wants_dma[1]),
            self.dma_cmd.payload.eq(Mux(wants_dma[0], load["payload"], store["payload"])),
            self.gemm_cmd.payload.eq(heads[2]["payload"]),
            self.vector_cmd.payload.eq(heads[3]["payload"]),
        ]
        for q in range(nq):
            m.d.comb += heads[q]["issue"].eq(issue[q])

        # allocate issued instructions, retire completed ones
        for q, engine in enumerate(QUEUE_ENGINES):
            s, head = slots[q], heads[q]
            tail = (s["head"] + s["count"])[:max(1, (INFLIGHT - 1).bit_length())]
            done_next = s["done"] | completing[q]
            view = head["view"]
            # a new entry is done at once when it is a fence (it retires a cycle after issue)
            done_next = Mux(issue[q], (done_next & ~(Const(1, INFLIGHT) << tail)) | (head["fence"] << tail),
                            done_next)
            with m.If(issue[q]):
                m.d.sync += [s["sig0"][tail].eq(view.signal0), s["sig1"][tail].eq(view.signal1)]
                if engine in (isa.Engine.LOAD, isa.Engine.STORE):
                    with m.If(~head["fence"]):
                        m.d.sync += [dma_owner.eq(q), dma_entry.eq(tail)]
                elif engine == isa.Engine.GEMM:
                    controller = Signal(range(self.gemm_controllers), name="gemm_controller")
                    g = data.View(GemmLayout, head["payload"])
                    for split in range(cfg.max_split + 1):
                        with m.If(g.split == split):
                            m.d.comb += controller.eq(g.subarray << (cfg.max_split - split))
                    with m.If(~head["fence"]):
                        m.d.sync += gemm_entry[controller].eq(tail)
                else:
                    with m.If(~head["fence"]):
                        m.d.sync += vector_entry.eq(tail)
            m.d.sync += [s["done"].eq(done_next), s["head"].eq(s["head"] + retiring[q]),
                         s["count"].eq(s["count"] - retiring[q] + issue[q])]
        dma_issue = (issue[0] & ~heads[0]["fence"]) | (issue[1] & ~heads[1]["fence"])
        with m.If(dma_issue):
            m.d.sync += dma_busy.eq(1)
        with m.Elif(self.dma_done):
            m.d.sync += dma_busy.eq(0)

        # ---- start, finish, cycle count -------------------------------------------------------------
        armed = Signal()
        started = Signal()
        with m.If(self.start):
            m.d.sync += armed.eq(1)
        primed = Cat(*(h["primed"] for h in heads)).all()
        with m.If(armed & loaded & primed & ~running):
            m.d.sync += running.eq(1)
        idle = Cat(*((~h["valid"] & h["drained"] & (s["count"] == 0)) for h, s in zip(heads, slots))).all()
        m.d.sync += started.eq(running)
        with m.If(running & started & ~idle & ~self.finished):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(running & started & idle):
            m.d.sync += self.finished.eq(1)
        m.d.comb += self.activity.eq(Cat(*issue).any() | Cat(*retiring).any())
        m.d.sync += self.retired.eq(self.retired + sum(retiring))
        return m

    def _fetch(self, m: Module, q: int, engine: isa.Engine, read, wptr, nloops, loop_first, loop_last, loop_count,
               loaded) -> dict:
        """The queue's prefetch and head register; returns the head's signals."""
        layout = QUEUE_LAYOUTS[q]
        name = engine.name.lower()
        depth = self.queue_depth
        rd_ptr = Signal(range(depth + 1), name=f"rd_ptr_{name}")
        rd_iter = Signal(32, name=f"rd_iter_{name}")
        lidx = Signal(range(self.max_loops + 1), name=f"lidx_{name}")
        f_valid = Signal(name=f"f_valid_{name}")
        f_iter = Signal(32, name=f"f_iter_{name}")
        h_valid = Signal(name=f"h_valid_{name}")
        h_payload = Signal(layout, name=f"h_payload_{name}")
        h_pc = Signal(PC_BITS, name=f"h_pc_{name}")
        h_fence = Signal(name=f"h_fence_{name}")
        issue = Signal(name=f"head_issue_{name}")

        in_table = lidx < nloops
        first, last, count = loop_first[lidx], loop_last[lidx], loop_count[lidx]
        in_loop = in_table & (rd_ptr >= first)
        more = rd_ptr < wptr
        h_load = f_valid & (~h_valid | issue)
        f_adv = loaded & more & (~f_valid | h_load)
        m.d.comb += [read.addr.eq(rd_ptr), read.en.eq(f_adv)]
        with m.If(f_adv):
            m.d.sync += [f_valid.eq(1), f_iter.eq(Mux(in_loop, rd_iter, 0))]
            with m.If(in_loop & (rd_ptr == last)):
                with m.If(rd_iter + 1 < count):
                    m.d.sync += [rd_ptr.eq(first), rd_iter.eq(rd_iter + 1)]
                with m.Else():
                    m.d.sync += [rd_ptr.eq(rd_ptr + 1), rd_iter.eq(0), lidx.eq(lidx + 1)]
            with m.Else():
                m.d.sync += rd_ptr.eq(rd_ptr + 1)
        with m.Elif(h_load):
            m.d.sync += f_valid.eq(0)

        fetched = data.View(layout, read.data[:isa.INSTRUCTION_BITS])
        with m.If(h_load):
            m.d.sync += [h_valid.eq(1), h_payload.eq(fetched), h_pc.eq(read.data[isa.INSTRUCTION_BITS:]),
                         h_fence.eq(_fence(engine, fetched))]
            for address, stride in ADDRESS_STRIDES[engine]:
                # only the address bits the memory has matter (check.py keeps every iteration in
                # bounds), so the product needs only that many bits of i and of the stride
                bits = self.config.hbm_addr_bits if address == "hbm_addr" else _sram_addr_bits(self.config)
                field = getattr(fetched, address)
                offset = (f_iter[:bits] * getattr(fetched, stride)[:bits])[:bits]
                m.d.sync += getattr(h_payload, address).eq((field[:bits] + offset)[:bits])
        with m.Elif(issue):
            m.d.sync += h_valid.eq(0)
        return {
            "valid": h_valid, "payload": h_payload, "view": h_payload, "pc": h_pc, "fence": h_fence,
            "issue": issue, "primed": h_valid | (~more & ~f_valid), "drained": ~more & ~f_valid,
        }


def design(chip) -> Control:
    return Control(CoreConfig.from_chip(chip))
