"""The model-as-hardware (spatial) chip description: Taalas HC1 style, weights fixed in silicon.

One description drives the spatial compiler's folding pass and the pipeline simulator; neither
keeps hardware constants of its own. Importing this module registers the kind 'spatial'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.hardware import register_kind
from simulator.hardware.schema import HardwareError, doc

UM2_PER_MM2 = 1e6
BITS_PER_MIB = 2**20  # one mebibit (Mib), the unit SRAM density is quoted in


@dataclass(frozen=True)
class DieConfig:
    process: str = doc("process node, for the reader")
    die_area_mm2: float = doc("die area: the budget the folding pass fills")
    transistors: float = doc("published transistor count (cross-check only)")
    board_power_w: float = doc("published card power (compared with the simulated power)")


@dataclass(frozen=True)
class PrecisionRule:
    match: str = doc("substring of a parameter name (e.g. 'mlp.') this rule applies to")
    kind: str = doc("label of the weights it matches in reports (mlp, attention, embedding, ...)")
    bits: int = doc("bits per hard-wired weight")


@dataclass(frozen=True)
class WeightsConfig:
    um2_per_weight_bit: float = doc("area of one hard-wired weight bit (mask-ROM-like storage), um^2")
    um2_per_multiplier: Mapping[str, float] = doc(
        "area of one multiplier lane (multiply by a stored weight + one adder-tree input), um^2, by weight bits")
    activation_bits: int = doc("bits of the activations multiplied against the weights")
    lookup_bits_per_cycle: int = doc("bits a lookup table (embedding) region reads per cycle")
    region_overhead_cycles: int = doc("adder-tree depth and pipeline registers added to each region pass",
                                      positive=False)
    rules: tuple[PrecisionRule, ...] = doc("per-tensor precision policy: first matching rule wins")
    default_bits: int = doc("bits of weights no rule matches (norm gains, biases, gate tables)")
    default_kind: str = doc("report label of weights no rule matches")


@dataclass(frozen=True)
class SramConfig:
    sram_bytes: int = doc("on-die SRAM for KV cache, recurrent state and adapters")
    adapter_bytes: int = doc("SRAM reserved for resident LoRA adapters", positive=False)
    macro_bytes: int = doc("bytes in one SRAM macro (bank)")
    port_bytes_per_cycle: int = doc("bytes one macro reads or writes per cycle")
    mib_per_mm2: float = doc("SRAM density including periphery, Mib (mebibits) per mm^2")


@dataclass(frozen=True)
class AttentionUnitConfig:
    macs_per_cycle: int = doc("multiply-accumulates per cycle of one layer's attention / state unit")
    elements_per_cycle: int = doc("softmax, scale, mask and state-update elements per cycle of one unit")
    mm2_per_unit: float = doc("area of one layer's attention unit")


@dataclass(frozen=True)
class VectorUnitConfig:
    lanes: int = doc("elementwise ops per cycle of one layer's vector unit (norms, RoPE, SwiGLU, residuals)")
    transcendentals_per_cycle: int = doc("exp / sigmoid / rsqrt results per cycle of one unit")
    mm2_per_unit: float = doc("area of one vector unit")


@dataclass(frozen=True)
class EnergyConfig:
    pj_per_weight_mac: Mapping[str, float] = doc("energy of one weight multiply-accumulate, by weight bits")
    pj_per_attention_mac: float = doc("energy of one attention / state-unit multiply-accumulate")
    pj_per_vector_op: float = doc("energy of one vector-unit or attention-unit elementwise op")
    pj_per_sram_byte: float = doc("energy to read or write one SRAM byte")
    static_power_w: float = doc("leakage and always-on power (clock tree, I/O)", positive=False)


@dataclass(frozen=True)
class SpatialChip:
    name: str = doc("preset name")
    description: str = doc("what this description models")
    clock_hz: float = doc("core clock")
    die: DieConfig = doc("die size and published totals")
    weights: WeightsConfig = doc("hard-wired weight storage, multipliers and the precision policy")
    sram: SramConfig = doc("on-die SRAM (KV cache, state, adapters)")
    attention: AttentionUnitConfig = doc("one attention / state unit per layer")
    vector: VectorUnitConfig = doc("one vector unit per layer, plus one for the embedding and the head")
    other_mm2: float = doc("I/O (PCIe), control, clocking and power delivery area")
    energy: EnergyConfig = doc("energy per operation and static power")
    kind: str = doc("target kind", default="spatial")
    sources: Mapping[str, str] = field(default_factory=dict)
    assumed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = self.weights
        for label, table in (("weights.um2_per_multiplier", w.um2_per_multiplier),
                             ("energy.pj_per_weight_mac", self.energy.pj_per_weight_mac)):
            for key in table:
                if not key.isdigit() or int(key) <= 0:
                    raise HardwareError(f"{self.name}: {label}.{key}: keys are weight bits (positive integers)")
        used = {w.default_bits, *(r.bits for r in w.rules)}
        for bits in sorted(used):
            if str(bits) not in w.um2_per_multiplier:
                raise HardwareError(f"{self.name}: weights.um2_per_multiplier lacks {bits}-bit, which the "
                                    "precision policy uses")
            if str(bits) not in self.energy.pj_per_weight_mac:
                raise HardwareError(f"{self.name}: energy.pj_per_weight_mac lacks {bits}-bit, which the "
                                    "precision policy uses")
        if self.sram.adapter_bytes >= self.sram.sram_bytes:
            raise HardwareError(f"{self.name}: sram.adapter_bytes ({self.sram.adapter_bytes}) leaves no room "
                                f"in sram.sram_bytes ({self.sram.sram_bytes})")
        if self.sram.macro_bytes > self.sram.sram_bytes:
            raise HardwareError(f"{self.name}: sram.macro_bytes exceeds sram.sram_bytes")

    # ---- derived figures (the one place they are computed) -------------------------------
    def precision_of(self, parameter: str) -> tuple[str, int]:
        """(kind, bits) of a parameter under the per-tensor policy."""
        for rule in self.weights.rules:
            if rule.match in parameter:
                return rule.kind, rule.bits
        return self.weights.default_kind, self.weights.default_bits

    def multiplier_um2(self, bits: int) -> float:
        return self.weights.um2_per_multiplier[str(bits)]

    def weight_mac_pj(self, bits: int) -> float:
        return self.energy.pj_per_weight_mac[str(bits)]

    @property
    def sram_area_mm2(self) -> float:
        return self.sram.sram_bytes * 8 / BITS_PER_MIB / self.sram.mib_per_mm2

    @property
    def sram_bytes_per_cycle(self) -> float:
        """Every macro reads in parallel: capacity and bandwidth grow together."""
        return self.sram.sram_bytes / self.sram.macro_bytes * self.sram.port_bytes_per_cycle

    @property
    def sram_bytes_per_s(self) -> float:
        return self.sram_bytes_per_cycle * self.clock_hz

    @property
    def kv_capacity_bytes(self) -> int:
        return self.sram.sram_bytes - self.sram.adapter_bytes


register_kind("spatial", SpatialChip)
