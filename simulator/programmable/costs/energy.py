"""Energy of a run: dynamic energy per counted event plus static power over the elapsed time.

    E = sum_p macs[p] * pj_per_mac[p] + vector_ops * pj_per_vector_op
      + sram_bytes * pj_per_sram_byte + hbm_bytes * pj_per_hbm_byte
      + link_bytes * pj_per_link_byte + static_power_w * time_s
SRAM bytes are GEMM operand reads and result writes, vector reads and writes, and the SRAM side
of every DMA. The bound beside it is the MAC energy alone (no run can spend less).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.hardware.programmable import ProgrammableChip

PJ = 1e-12


@dataclass
class EnergyCounts:
    macs: dict[str, float] = field(default_factory=dict)   # by precision label
    vector_ops: float = 0.0
    sram_bytes: float = 0.0
    hbm_bytes: float = 0.0
    link_bytes: float = 0.0


def mac_energy_j(chip: ProgrammableChip, precision: str, macs: float) -> float:
    return macs * chip.energy.pj_per_mac[precision] * PJ


def energy_breakdown_j(chip: ProgrammableChip, counts: EnergyCounts, time_s: float) -> dict[str, float]:
    e = chip.energy
    parts = {
        "mac": sum(mac_energy_j(chip, p, n) for p, n in counts.macs.items()),
        "vector": counts.vector_ops * e.pj_per_vector_op * PJ,
        "sram": counts.sram_bytes * e.pj_per_sram_byte * PJ,
        "hbm": counts.hbm_bytes * e.pj_per_hbm_byte * PJ,
        "link": counts.link_bytes * e.pj_per_link_byte * PJ,
        "static": e.static_power_w * time_s,
    }
    parts["total"] = sum(parts.values())
    return parts


def energy_roofline_j(chip: ProgrammableChip, counts: EnergyCounts) -> float:
    return sum(mac_energy_j(chip, p, n) for p, n in counts.macs.items())
