"""The DMA engine: DMA_LOAD (external memory -> scratchpad) and DMA_STORE (scratchpad -> external
memory) of `rows` x `row_bytes`, rows `hbm_row_stride` apart in external memory and dense in the
scratchpad. One channel: the core gives it one instruction at a time from the LOAD or the STORE
queue (the event engine's `memory.dma_channels = 1`).

External memory port (`ext_req` out, `ext_resp` in, both `lib.stream`): one request per beat of
`B = ext_bytes_per_cycle` bytes at a B-aligned byte address, `write` set for stores (with the
beat in `data`); the memory answers every request in order, a read with its data, a write with
an acknowledgement, after its latency (`ext_latency_cycles` in the testbench's model). Requests
are pipelined one per cycle across rows, so a strided transfer costs nothing per row.

Timing (`cmd` taken at edge E, no back-pressure): the first request leaves at edge E + 1 (a load
registers its address; a store reads the scratchpad at E, through a port that sees writes made
at E, and sends the beat at E + 1); beat i's response arrives at E + 1 + L + i; `done` is high
for the cycle after the last response, sampled at edge

    E + N,   N = 1 + L + beats,   beats = rows * row_bytes / B,

which is costs/dma.py with memory.dma_setup_cycles = 1 (the 1). A load's last scratchpad write is
at E + N - 1. `cmd` is ready whenever the engine is idle, including the cycle `done` is high, so
the next instruction can start at E + N as the event engine issues it.

Alignment (rtl/programmable/check.py refuses other programs): hbm_addr, hbm_row_stride, row_bytes,
sram_addr (and their loop strides) multiples of B, so every beat is one aligned request and lies
inside one scratchpad word. A command that breaks this, moves nothing or more than the scratchpad
holds, completes at once with `error` raised.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.targets.programmable.isa import Opcode
from rtl.programmable.config import CoreConfig
from rtl.programmable.isa_layout import DmaLayout
from rtl.programmable.ports import sram_read_signature, sram_write_signature


def ext_request_layout(config: CoreConfig) -> data.StructLayout:
    return data.StructLayout({"addr": config.hbm_addr_bits, "write": 1, "data": 8 * config.ext_bytes_per_cycle})


def ext_response_layout(config: CoreConfig) -> data.StructLayout:
    return data.StructLayout({"data": 8 * config.ext_bytes_per_cycle})


def ext_memory_signature(config: CoreConfig) -> wiring.Signature:
    """The external memory port as the DMA engine sees it (the memory takes `.flip()`)."""
    return wiring.Signature({
        "req": Out(stream.Signature(ext_request_layout(config))),
        "resp": In(stream.Signature(ext_response_layout(config))),
    })


def dma_beats(rows: int, row_bytes: int, config: CoreConfig) -> int:
    return rows * row_bytes // config.ext_bytes_per_cycle


def command_ports(config: CoreConfig) -> dict[str, wiring.Member]:
    """The engine's command, completion and external-memory ports (its scratchpad side aside)."""
    return {
        "cmd": In(stream.Signature(DmaLayout)),
        "done": Out(1),
        "error": Out(1),
        "ext": Out(ext_memory_signature(config)),
    }


class DmaEngine(wiring.Component):
    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        super().__init__({
            **command_ports(config),
            "sram_write": Out(sram_write_signature(config)),
            "sram_read": Out(sram_read_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        beat = cfg.ext_bytes_per_cycle
        lb = beat.bit_length() - 1                 # log2 of the beat
        lw = cfg.word_bytes.bit_length() - 1       # log2 of the scratchpad word
        lanes = cfg.word_bytes // beat
        sram_bits = cfg.sram_bytes.bit_length() - 1
        p = self.cmd.payload
        req, resp = self.ext.req, self.ext.resp

        busy = Signal()
        store = Signal()
        req_addr = Signal(cfg.hbm_addr_bits)
        row_base = Signal(cfg.hbm_addr_bits)
        stride = Signal(cfg.hbm_addr_bits)
        # a transfer fits the scratchpad, so beat counts need only its size in beats
        count_bits = (cfg.sram_bytes // beat).bit_length()
        beats_per_row = Signal(count_bits)
        col = Signal(count_bits)
        req_left = Signal(count_bits)
        resp_left = Signal(count_bits)
        write_ptr = Signal(sram_bits)              # load: next scratchpad byte to write
        read_ptr = Signal(sram_bits)               # store: next scratchpad byte to read
        read_left = Signal(count_bits)
        have = Signal()                            # store: the read port holds a beat not yet sent
        lane = Signal(range(lanes))                # store: where that beat sits in its word

        total = Signal(2 * count_bits)
        fits = (p.rows >> count_bits == 0) & (p.row_bytes >> (count_bits + lb) == 0)
        m.d.comb += total.eq(p.rows[:count_bits] * (p.row_bytes >> lb)[:count_bits])
        aligned = (p.hbm_addr[:lb] == 0) & (p.row_bytes[:lb] == 0) & ((p.hbm_row_stride[:lb] == 0) | (p.rows == 1)) & (
            p.sram_addr[:lb] == 0) if lb else True
        is_store = p.opcode == Opcode.DMA_STORE
        is_dma = (p.opcode == Opcode.DMA_LOAD) | is_store
        runnable = Signal()
        m.d.comb += runnable.eq(aligned & is_dma & fits & (total != 0) & (total <= cfg.sram_bytes // beat))

        m.d.comb += self.cmd.ready.eq(~busy)
        accept = self.cmd.valid & ~busy
        m.d.sync += [self.done.eq(0), self.error.eq(0)]

        # ---- requests: one beat per request, rows `stride` apart ----------------------------------
        m.d.comb += [
            req.valid.eq(busy & Mux(store, have, req_left != 0)),
            req.payload.addr.eq(req_addr),
            req.payload.write.eq(store),
            req.payload.data.eq(Mux(store, (self.sram_read.data >> (lane * 8 * beat))[:8 * beat], 0)),
        ]
        req_fire = req.valid & req.ready
        with m.If(req_fire):
            m.d.sync += req_left.eq(req_left - 1)
            with m.If(col == beats_per_row - 1):
                m.d.sync += [col.eq(0), row_base.eq(row_base + stride), req_addr.eq(row_base + stride)]
            with m.Else():
                m.d.sync += [col.eq(col + 1), req_addr.eq(req_addr + beat)]

        # ---- store: read the next beat while the current one waits for the port -------------------
        read_fire = busy & store & (read_left != 0) & (~have | req.ready)
        with m.If(busy):
            m.d.comb += [self.sram_read.en.eq(read_fire), self.sram_read.addr.eq(read_ptr >> lw)]
            m.d.sync += have.eq(read_fire | (have & ~req_fire))
            with m.If(read_fire):
                m.d.sync += [read_ptr.eq(read_ptr + beat), read_left.eq(read_left - 1),
                             lane.eq(read_ptr[lb:lw] if lanes > 1 else 0)]
        with m.Else():        # a store's first beat is read at the edge that takes it
            m.d.comb += [self.sram_read.en.eq(accept & is_store & runnable),
                         self.sram_read.addr.eq(p.sram_addr >> lw)]

        # ---- responses: load data into the scratchpad, store acknowledgements ----------------------
        m.d.comb += resp.ready.eq(busy)
        resp_fire = resp.valid & busy
        with m.If(resp_fire):
            m.d.sync += resp_left.eq(resp_left - 1)
            with m.If(resp_left == 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        with m.If(resp_fire & ~store):
            m.d.comb += [
                self.sram_write.en.eq(1),
                self.sram_write.addr.eq(write_ptr >> lw),
                self.sram_write.data.eq(resp.payload.data.replicate(lanes)),
                self.sram_write.mask.eq(((1 << beat) - 1) << ((write_ptr[lb:lw] if lanes > 1 else 0) * beat)),
            ]
            m.d.sync += write_ptr.eq(write_ptr + beat)

        # ---- taking an instruction ------------------------------------------------------------------
        with m.If(accept):
            with m.If(runnable):
                m.d.sync += [
                    busy.eq(1), store.eq(is_store),
                    req_addr.eq(p.hbm_addr), row_base.eq(p.hbm_addr), stride.eq(p.hbm_row_stride),
                    beats_per_row.eq(p.row_bytes >> lb), col.eq(0),
                    req_left.eq(total), resp_left.eq(total), write_ptr.eq(p.sram_addr),
                    have.eq(is_store), lane.eq(p.sram_addr[lb:lw] if lanes > 1 else 0),
                    read_ptr.eq(p.sram_addr + beat), read_left.eq(total - 1),
                ]
            with m.Else():
                m.d.sync += [self.done.eq(1), self.error.eq(1)]
        return m


def design(chip) -> DmaEngine:
    return DmaEngine(CoreConfig.from_chip(chip))
