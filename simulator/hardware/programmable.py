"""The programmable accelerator description (MatX style; GPUs are presets of it too).

One description drives the compiler's lowering, the event simulator and the RTL generators:
none of them keeps hardware constants of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.hardware.schema import HardwareError, doc

PRECISIONS = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")
PRECISION_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}
ISA_SUBSETS = ("full", "integer")


@dataclass(frozen=True)
class SystolicConfig:
    rows: int = doc("PEs along the reduction (K) dimension of one array")
    cols: int = doc("PEs along the output (N) dimension of one array")
    arrays_per_chip: int = doc("independent systolic arrays on one chip")
    split_factors: tuple[int, ...] = doc("ways one array can split into equal sub-arrays; 1 = whole array")
    macs_per_pe_per_cycle: Mapping[str, int] = doc("multiply-accumulates per PE per cycle, by operand precision")


@dataclass(frozen=True)
class VectorConfig:
    lanes: int = doc("vector lanes per chip")
    ops_per_lane_per_cycle: int = doc("elementwise ops (add, mul, max, shift) per lane per cycle")
    transcendentals_per_lane_per_cycle: float = doc("exp / rsqrt / reciprocal per lane per cycle")
    pipeline_latency_cycles: int = doc("cycles one instruction adds to its throughput: operand reads, pipeline "
                                       "stages and the last write (0: not modelled)", positive=False, default=0)


@dataclass(frozen=True)
class MemoryConfig:
    sram_bytes: int = doc("on-chip SRAM per chip")
    sram_bytes_per_cycle: int = doc("SRAM read+write bandwidth per cycle, all banks")
    hbm_bytes: int = doc("HBM capacity per chip")
    hbm_bytes_per_s: float = doc("peak HBM bandwidth per chip")
    hbm_latency_s: float = doc("latency of one DMA burst from HBM to SRAM")
    dma_channels: int = doc("DMA engines that can move data concurrently (they share hbm_bytes_per_s)")
    dma_setup_cycles: int = doc("cycles a DMA instruction spends in its engine before its first request reaches "
                                "memory (address generation; 0 = none)", positive=False, default=0)


@dataclass(frozen=True)
class ControlConfig:
    issue_cycles: int = doc("cycles between two issues from one queue; a zero-size instruction (fence) takes "
                            "this long to pass on its signals (0 = ideal issue)", positive=False, default=0)


@dataclass(frozen=True)
class LinkConfig:
    chips: int = doc("chips joined by links, used for tensor parallelism")
    link_bytes_per_s: float = doc("chip-to-chip bandwidth per chip, each direction")
    link_latency_s: float = doc("one hop's latency")


@dataclass(frozen=True)
class EnergyConfig:
    pj_per_mac: Mapping[str, float] = doc("energy of one multiply-accumulate, by precision")
    pj_per_vector_op: float = doc("energy of one vector-lane op")
    pj_per_sram_byte: float = doc("energy to read or write one SRAM byte")
    pj_per_hbm_byte: float = doc("energy to move one HBM byte (DRAM, PHY and controller)")
    pj_per_link_byte: float = doc("energy to send one byte to another chip")
    static_power_w: float = doc("leakage and always-on power per chip", positive=False)


@dataclass(frozen=True)
class ProgrammableChip:
    name: str = doc("preset name")
    description: str = doc("what this description models")
    clock_hz: float = doc("core clock")
    systolic: SystolicConfig = doc("matrix engines")
    vector: VectorConfig = doc("vector unit")
    memory: MemoryConfig = doc("SRAM and HBM")
    links: LinkConfig = doc("chip-to-chip links")
    energy: EnergyConfig = doc("energy per operation")
    control: ControlConfig = field(default_factory=ControlConfig,
                                   metadata={"doc": "instruction issue (optional section)", "positive": True})
    isa_subset: str = doc("'full', or 'integer' (int8 GEMM, int32 vector, DMA) for small RTL builds",
                          default="full")
    kind: str = doc("target kind", default="programmable")
    sources: Mapping[str, str] = field(default_factory=dict)
    assumed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.systolic
        for factor in s.split_factors:
            if factor <= 0 or s.rows % factor or s.cols % factor:
                raise HardwareError(
                    f"{self.name}: systolic.split_factors: {factor} does not divide the {s.rows}x{s.cols} array"
                )
        if 1 not in s.split_factors:
            raise HardwareError(f"{self.name}: systolic.split_factors must include 1 (the whole array)")
        for table, label in ((s.macs_per_pe_per_cycle, "systolic.macs_per_pe_per_cycle"),
                             (self.energy.pj_per_mac, "energy.pj_per_mac")):
            for precision in table:
                if precision not in PRECISIONS:
                    raise HardwareError(f"{self.name}: {label}.{precision}: unknown precision; "
                                        f"known: {', '.join(PRECISIONS)}")
        missing = set(s.macs_per_pe_per_cycle) - set(self.energy.pj_per_mac)
        if missing:
            raise HardwareError(f"{self.name}: energy.pj_per_mac lacks {', '.join(sorted(missing))}, "
                                "which systolic.macs_per_pe_per_cycle supports")
        if self.isa_subset not in ISA_SUBSETS:
            raise HardwareError(f"{self.name}: isa_subset {self.isa_subset!r}; known: {', '.join(ISA_SUBSETS)}")
        if self.isa_subset == "integer" and "int8" not in s.macs_per_pe_per_cycle:
            raise HardwareError(f"{self.name}: isa_subset 'integer' needs int8 in systolic.macs_per_pe_per_cycle")

    # ---- peaks (the rooflines every detailed model is checked against) -------------------
    def supports(self, precision: str) -> bool:
        return precision in self.systolic.macs_per_pe_per_cycle

    def macs_per_cycle(self, precision: str) -> int:
        """Whole-chip MACs per cycle at `precision` (all arrays, all PEs)."""
        if not self.supports(precision):
            raise HardwareError(f"{self.name} has no {precision} matrix path; it supports "
                                f"{', '.join(self.systolic.macs_per_pe_per_cycle)}")
        s = self.systolic
        return s.rows * s.cols * s.arrays_per_chip * s.macs_per_pe_per_cycle[precision]

    def peak_macs_per_s(self, precision: str) -> float:
        return self.macs_per_cycle(precision) * self.clock_hz

    @property
    def vector_ops_per_s(self) -> float:
        return self.vector.lanes * self.vector.ops_per_lane_per_cycle * self.clock_hz

    @property
    def sram_bytes_per_s(self) -> float:
        return self.memory.sram_bytes_per_cycle * self.clock_hz
