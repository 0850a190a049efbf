"""The scratchpad: `sram_bytes` of on-chip memory in words of `word_bytes`, one port per client.

Every client (the DMA engine's load-write and store-read ports, each GEMM controller's A, B, C
read and C write ports, the vector unit's ports) has a dedicated read or write port of
ports.py's signature, so no client ever waits for another and an instruction's time is its cost
formula whatever the other engines do (the simulator models no SRAM port contention; this keeps
that true). Reads are registered: `data` is the word one cycle after `en`. A read and a write of
the same word in one cycle return the old data, except on ports named `transparent` (the DMA
store port): those see the bytes written in the same cycle. That lets a store issued at the edge
where its producer reports `done` (and makes its last write) read at that edge.

Same-cycle writes of one byte by two clients are a program error (the semaphores order every
overlapping access); which one wins is not specified.

FPGA cost. A memory with more than one write port (here 2 + 2 ** max_split) does not map to block
RAM: yosys builds it from flip-flops (8 * sram_bytes of them: 131072 for matx-tiny's 16 KiB) with
a word-wide multiplexer per read port, which fits large Xilinx 7 / ECP5-85 parts only. Banking
would not help without stalls: the ISA lets every unit touch every byte, and nothing in the
alignment rules keeps two units out of one bank in the same cycle. The structures that keep both
block RAM and the no-stall property (a live-value table over W x R block-RAM copies) cost W * R
copies of the memory; `rtl/synth.py` reports what this one costs.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from rtl.programmable.config import CoreConfig, RtlConfigError
from rtl.programmable.ports import sram_read_signature, sram_write_signature


class Scratchpad(wiring.Component):
    """Ports `read_<name>` (In(sram_read_signature).flip) and `write_<name>`, one per client."""

    def __init__(self, config: CoreConfig, reads: Sequence[str], writes: Sequence[str],
                 transparent: Sequence[str] = ()) -> None:
        if len(set(reads)) != len(reads) or len(set(writes)) != len(writes) or not reads or not writes:
            raise RtlConfigError(f"scratchpad clients must be named uniquely, at least one read and one write: "
                                 f"reads {list(reads)}, writes {list(writes)}")
        unknown = set(transparent) - set(reads)
        if unknown:
            raise RtlConfigError(f"scratchpad: transparent ports {sorted(unknown)} are not read ports {list(reads)}")
        self.config = config
        self.reads, self.writes, self.transparent = tuple(reads), tuple(writes), tuple(transparent)
        members = {f"read_{name}": In(sram_read_signature(config)) for name in reads}
        members.update({f"write_{name}": In(sram_write_signature(config)) for name in writes})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.memory = mem = memory.Memory(shape=8 * cfg.word_bytes, depth=cfg.sram_words, init=[])
        write_ports = []
        for name in self.writes:
            client = getattr(self, f"write_{name}")
            port = mem.write_port(granularity=8)
            m.d.comb += [port.addr.eq(client.addr), port.data.eq(client.data),
                         port.en.eq(client.mask & client.en.replicate(cfg.word_bytes))]
            write_ports.append(port)
        for name in self.reads:
            client = getattr(self, f"read_{name}")
            port = mem.read_port(transparent_for=write_ports if name in self.transparent else ())
            m.d.comb += [port.addr.eq(client.addr), port.en.eq(client.en), client.data.eq(port.data)]
        return m


def design(chip) -> Scratchpad:
    """The core's scratchpad for `chip`: the ports core.py connects."""
    from rtl.programmable.core import scratchpad_clients

    config = CoreConfig.from_chip(chip)
    reads, writes, transparent = scratchpad_clients(config)
    return Scratchpad(config, reads, writes, transparent)
