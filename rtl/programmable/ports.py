"""Signatures shared by the RTL blocks of the programmable core.

Scratchpad ports (seen from the unit that uses them, so the scratchpad takes `.flip()`):
  * read:  `addr` (word address), `en`; `data` is the whole word one cycle after `en`
           (registered read; a read and a write of the same word in one cycle return the old data);
  * write: `addr`, `en`, `data` (one word), `mask` (one bit per byte of the word).
Every unit has its own ports, so no unit ever waits for another: the timing of each instruction
is that of its cost formula, independent of what the other engines do.

Command and completion: a unit takes one decoded instruction (the isa_layout struct, with the
loop iteration's address offsets already applied) on its `cmd` stream. If the transfer happens
at rising edge E, `done` is high for exactly one cycle, sampled at edge E + N, where N is the
instruction's cycles in the simulator's cost model; all of its scratchpad writes are done by
then.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.programmable.config import CoreConfig


def sram_read_signature(config: CoreConfig) -> wiring.Signature:
    return wiring.Signature({
        "addr": Out(config.sram_word_addr_bits),
        "en": Out(1),
        "data": In(8 * config.word_bytes),
    })


def sram_write_signature(config: CoreConfig) -> wiring.Signature:
    return wiring.Signature({
        "addr": Out(config.sram_word_addr_bits),
        "en": Out(1),
        "data": Out(8 * config.word_bytes),
        "mask": Out(config.word_bytes),
    })
