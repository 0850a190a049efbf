"""What the RTL generators build, derived from the same hardware description the simulator reads.

`CoreConfig.from_chip(chip)` checks, before any elaboration, that the description is one the
generators can build, and names the field when it is not. The RTL implements the integer ISA
subset (isa.py): int8 GEMM tiles accumulating in int32, int32 vector ops, requantize to int8,
DMA, LOOP, HALT.

Datapath widths. The scratchpad is organised in words of `word_bytes` = 4 * cols bytes: one
int32 row of the array's outputs, one lane-group of int32 vector elements (lanes == cols), or
`word_bytes` int8 values. The external memory port moves `ext_bytes_per_cycle` bytes per cycle
after `ext_latency_cycles`, which are `memory.hbm_bytes_per_s / clock_hz` and
`memory.hbm_latency_s * clock_hz` and must be whole numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.hardware.programmable import ProgrammableChip

MAX_ARRAY_DIM = 32            # PEs along either side of the array
MAX_LANES = 32
MAX_SRAM_BYTES = 1 << 20      # scratchpad words are addressed with 32-bit SRAM fields
VECTOR_PIPELINE_CYCLES = 5    # what vector_unit.py adds to ceil(length / lanes): vector.pipeline_latency_cycles


class RtlConfigError(ValueError):
    """The hardware description asks for something the RTL generators cannot build."""


@dataclass(frozen=True)
class CoreConfig:
    name: str
    rows: int                     # PEs along K
    cols: int                     # PEs along N
    max_split: int                # log2 of the largest split factor
    lanes: int                    # vector lanes (== cols)
    sram_bytes: int
    word_bytes: int               # scratchpad word: 4 * cols bytes
    ext_bytes_per_cycle: int      # external (HBM) port width
    ext_latency_cycles: int       # request to first data beat
    hbm_bytes: int
    clock_hz: float
    vector_pipeline_cycles: int = VECTOR_PIPELINE_CYCLES

    @property
    def sram_words(self) -> int:
        return self.sram_bytes // self.word_bytes

    @property
    def sram_word_addr_bits(self) -> int:
        return max(1, (self.sram_words - 1).bit_length())

    @property
    def hbm_addr_bits(self) -> int:
        return max(1, (self.hbm_bytes - 1).bit_length())

    @property
    def split_factors(self) -> tuple[int, ...]:
        return tuple(1 << s for s in range(self.max_split + 1))

    @classmethod
    def from_chip(cls, chip: ProgrammableChip) -> CoreConfig:
        where = chip.name
        s, v, mem = chip.systolic, chip.vector, chip.memory

        def fail(field: str, message: str) -> RtlConfigError:
            return RtlConfigError(f"{where}: {field}: {message}")

        if chip.isa_subset != "integer":
            raise fail("isa_subset", f"the RTL implements the 'integer' subset, not {chip.isa_subset!r}")
        if s.arrays_per_chip != 1:
            raise fail("systolic.arrays_per_chip", f"the RTL builds one array, not {s.arrays_per_chip}")
        for field, value, limit in (("systolic.rows", s.rows, MAX_ARRAY_DIM), ("systolic.cols", s.cols, MAX_ARRAY_DIM),
                                    ("vector.lanes", v.lanes, MAX_LANES)):
            if value > limit or value & (value - 1):
                raise fail(field, f"{value} is not a power of two up to {limit}")
        if dict(s.macs_per_pe_per_cycle) != {"int8": 1}:
            raise fail("systolic.macs_per_pe_per_cycle", f"the RTL PE does one int8 MAC per cycle; got "
                       f"{dict(s.macs_per_pe_per_cycle)}")
        splits = sorted(s.split_factors)
        max_split = int(math.log2(splits[-1]))
        if splits != [1 << i for i in range(max_split + 1)]:
            raise fail("systolic.split_factors", f"{splits} must be consecutive powers of two from 1")
        if s.rows >> max_split < 2:
            raise fail("systolic.split_factors", f"splitting {s.rows} rows {1 << max_split} ways leaves sub-arrays of "
                       f"{s.rows >> max_split} row; the RTL needs at least 2 rows per sub-array")
        if v.lanes != s.cols:
            raise fail("vector.lanes", f"{v.lanes} lanes must equal systolic.cols {s.cols} (one scratchpad word)")
        if v.pipeline_latency_cycles != VECTOR_PIPELINE_CYCLES:
            raise fail("vector.pipeline_latency_cycles", f"{v.pipeline_latency_cycles}; the RTL vector unit takes "
                       f"{VECTOR_PIPELINE_CYCLES} cycles beyond ceil(length / lanes)")
        if v.ops_per_lane_per_cycle != 1:
            raise fail("vector.ops_per_lane_per_cycle", f"the RTL lane does one op per cycle, not "
                       f"{v.ops_per_lane_per_cycle}")
        word_bytes = 4 * s.cols
        if mem.sram_bytes > MAX_SRAM_BYTES or mem.sram_bytes % word_bytes or mem.sram_bytes & (mem.sram_bytes - 1):
            raise fail("memory.sram_bytes", f"{mem.sram_bytes} must be a power of two, a multiple of the "
                       f"{word_bytes}-byte word, at most {MAX_SRAM_BYTES}")
        ext = mem.hbm_bytes_per_s / chip.clock_hz
        if ext != int(ext) or int(ext) & (int(ext) - 1) or not 1 <= ext <= word_bytes:
            raise fail("memory.hbm_bytes_per_s", f"{mem.hbm_bytes_per_s:g} B/s at {chip.clock_hz:g} Hz is "
                       f"{ext:g} bytes per cycle; the RTL port needs a power of two from 1 to {word_bytes}")
        latency = mem.hbm_latency_s * chip.clock_hz
        if abs(latency - round(latency)) > 1e-6 or round(latency) < 1:
            raise fail("memory.hbm_latency_s", f"{mem.hbm_latency_s:g} s is {latency:g} cycles; must be a whole "
                       "number of cycles, at least 1")
        if mem.hbm_bytes > 1 << 40:
            raise fail("memory.hbm_bytes", "HBM addresses are 40-bit fields")
        if mem.dma_channels != 1:
            raise fail("memory.dma_channels", f"the RTL has one DMA channel, not {mem.dma_channels}")
        if chip.links.chips != 1:
            raise fail("links.chips", "the RTL builds one chip")
        return cls(chip.name, s.rows, s.cols, max_split, v.lanes, mem.sram_bytes, word_bytes, int(ext),
                   int(round(latency)), mem.hbm_bytes, chip.clock_hz)
