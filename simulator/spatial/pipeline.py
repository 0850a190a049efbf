"""Timing of one token through the spatial pipeline: node latencies, critical path, stage occupancy.

Every node runs on a unit: its weight region, its layer's attention unit or its layer's vector
unit (a stage of the pipeline). A node's latency is its work over the unit's rate, and for
attention nodes at least the time to read their KV from the layer's SRAM partition. One token's
time is the longest path through the graph (the critical path); a unit's occupancy is the sum of
its nodes' work per token, and the busiest unit (the slowest stage) bounds the token rate when
users are interleaved. Context-dependent figures are evaluated on numpy arrays of past lengths.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import sympy

from compiler.ir.shapes import Dim, symbol
from compiler.summary import CONTEXT_SYMBOLS
from compiler.targets.spatial.plan import SpatialPlan
from compiler.targets.spatial.workload import GLOBAL, Work
from simulator.spatial.hardware import SpatialChip

SAMPLING = "sampling"


@functools.lru_cache(maxsize=65536)
def _compiled(dim: sympy.Expr):
    """A size expression as a numpy function of the context symbols; shared, as solving re-simulates."""
    return sympy.lambdify([symbol(s) for s in CONTEXT_SYMBOLS], dim, modules="numpy")


def size_at(dim: Dim, past_len: int) -> float:
    """A size at one past length (every context symbol bound to it)."""
    if isinstance(dim, int):
        return float(dim)
    return float(_compiled(dim)(*([past_len] * len(CONTEXT_SYMBOLS))))


@dataclass
class Timing:
    """One decode token at one past length, in cycles and per-token activity."""

    past_len: int
    critical_path_cycles: float
    critical_path_by_kind: dict[str, float]
    occupancy_cycles: dict[str, float]            # unit -> busy cycles per token
    slowest_unit: str
    slowest_cycles: float
    weight_macs_by_bits: dict[int, int]
    attention_macs: float
    elementwise_ops: float
    sram_read_bytes: float
    sram_write_bytes: float
    activation_bytes: float
    path: list[str] = field(default_factory=list)

    @property
    def sram_bytes(self) -> float:
        return self.sram_read_bytes + self.sram_write_bytes


class Pipeline:
    """A folded plan on a chip with the cache stored at `kv_bits` per element."""

    def __init__(self, plan: SpatialPlan, chip: SpatialChip, kv_bits: int) -> None:
        self.plan, self.chip, self.kv_bytes = plan, chip, kv_bits / 8
        self.workload = plan.workload
        self.regions = {r.name: r for r in plan.regions}

    # ---- per-node cost --------------------------------------------------------------------
    def value(self, dim: Dim, past_len: np.ndarray) -> np.ndarray:
        """A size at each past length; every context symbol is bound to the same value."""
        if isinstance(dim, int):
            return np.full(past_len.shape, float(dim))
        values = _compiled(dim)(*([past_len] * len(CONTEXT_SYMBOLS)))
        return np.broadcast_to(np.asarray(values, dtype=float), past_len.shape)

    def layer_bytes_per_cycle(self, past_len: np.ndarray) -> dict[str, np.ndarray]:
        """SRAM is split among layers in proportion to what they hold once this token is written (a
        layer whose window is still empty reads the token it writes, so it always has a share);
        each part reads at its macros' rate."""
        held = {layer: self.value(e, past_len + 1) for layer, e in self.workload.cache_elements.items()}
        if not held:
            return {}
        total = sum(held.values())
        even = 1.0 / len(held)   # an empty cache (first prompt token): split the ports evenly
        return {layer: self.chip.sram_bytes_per_cycle * np.where(total > 0, h / np.where(total > 0, total, 1), even)
                for layer, h in held.items()}

    def latency(self, work: Work, past_len: np.ndarray, bandwidth: dict[str, np.ndarray]) -> np.ndarray:
        """Cycles from a node's inputs being ready to its output being ready."""
        if work.unit == "free":
            return np.zeros(past_len.shape)
        if work.unit == "region":
            region = self.regions[work.weight]
            if work.macs:
                return np.full(past_len.shape, float(region.pass_cycles(int(work.macs))
                                                      + self.chip.weights.region_overhead_cycles))
            return np.full(past_len.shape, float(region.lookup_cycles(self.chip.weights.lookup_bits_per_cycle)))
        if work.unit == "attention":
            rate = self.chip.attention.macs_per_cycle if work.macs else self.chip.attention.elements_per_cycle
            compute = self.value(work.macs or work.elements, past_len) / rate
            read = sum((_transfer_cycles(self.value(e, past_len) * self.kv_bytes, bandwidth[layer])
                        for layer, e in work.reads), np.zeros(past_len.shape))
            return np.ceil(np.maximum(compute, read))
        v = self.chip.vector
        rate = v.transcendentals_per_cycle if work.transcendental else v.lanes
        return np.ceil(self.value(work.elements, past_len) / rate)

    def unit_of(self, work: Work) -> str:
        return f"region:{work.weight}" if work.unit == "region" else f"{work.unit}:{work.layer}"

    def sampling_cycles(self) -> float:
        return float(math.ceil(self.workload.vocab / self.chip.vector.lanes))

    # ---- occupancy over many past lengths (prefill streams a prompt) -----------------------
    def occupancy(self, past_len: np.ndarray) -> dict[str, np.ndarray]:
        bandwidth = self.layer_bytes_per_cycle(past_len)
        busy: dict[str, np.ndarray] = {}
        for work in self.workload.works:
            if work.unit == "free" or (work.unit == "region" and work.macs):
                continue
            unit = self.unit_of(work)
            busy[unit] = busy.get(unit, 0) + self.latency(work, past_len, bandwidth)
        for region in self.plan.compute_regions:
            # A region's lanes are busy for the pass itself; the adder-tree latency is pipelined.
            busy[f"region:{region.name}"] = np.full(
                past_len.shape, float(region.occupancy_cycles(self.chip.weights.lookup_bits_per_cycle)))
        for layer, elements in self.workload.write_elements.items():
            if layer in bandwidth:
                # Appending the new K/V (or rewriting a state) holds the layer's SRAM ports too.
                unit = f"attention:{layer}"
                busy[unit] = busy.get(unit, 0) + np.ceil(
                    _transfer_cycles(self.value(elements, past_len) * self.kv_bytes, bandwidth[layer]))
        key = f"vector:{GLOBAL}"
        busy[key] = busy.get(key, 0) + self.sampling_cycles()
        return busy

    def slowest(self, past_len: np.ndarray) -> np.ndarray:
        busy = self.occupancy(past_len)
        return np.max(np.stack([np.broadcast_to(b, past_len.shape) for b in busy.values()]), axis=0)

    # ---- one token at one past length ------------------------------------------------------
    def evaluate(self, past_len: int) -> Timing:
        p = np.array([float(past_len)])
        bandwidth = self.layer_bytes_per_cycle(p)
        finish: dict[str, float] = {}
        came_from: dict[str, str | None] = {}
        latency: dict[str, float] = {}
        for work in self.workload.works:
            latency[work.node] = float(self.latency(work, p, bandwidth)[0])
            preds = self.workload.preds[work.node]
            start, prev = max(((finish[q], q) for q in preds), default=(0.0, None))
            finish[work.node] = start + latency[work.node]
            came_from[work.node] = prev
        end = finish[self.workload.logits_node] + self.sampling_cycles()
        # The token leaves when the logits are sampled; other outputs (K/V, state) end earlier.
        path, node = [], self.workload.logits_node
        while node is not None:
            path.append(node)
            node = came_from[node]
        path.reverse()
        by_kind: dict[str, float] = {SAMPLING: self.sampling_cycles()}
        works = {w.node: w for w in self.workload.works}
        for node in path:
            kind = self._kind(works[node])
            by_kind[kind] = by_kind.get(kind, 0.0) + latency[node]
        busy = {u: float(np.asarray(b).reshape(-1)[0]) for u, b in self.occupancy(p).items()}
        slowest_unit = max(busy, key=busy.__getitem__)
        return Timing(
            past_len=past_len,
            critical_path_cycles=end,
            critical_path_by_kind={k: v for k, v in by_kind.items() if v},
            occupancy_cycles=busy,
            slowest_unit=slowest_unit,
            slowest_cycles=busy[slowest_unit],
            path=path,
            **self._activity(p),
        )

    def _kind(self, work: Work) -> str:
        if work.unit == "region":
            return f"weights:{self.regions[work.weight].kind}"
        return "layout" if work.unit == "free" else work.unit

    def _activity(self, p: np.ndarray) -> dict:
        by_bits: dict[int, int] = {}
        for r in self.plan.regions:
            by_bits[r.bits] = by_bits.get(r.bits, 0) + r.macs_per_token
        attention_macs = elementwise = reads = 0.0
        for work in self.workload.works:
            if work.unit in ("attention", "vector"):
                attention_macs += float(self.value(work.macs, p)[0])
                elementwise += float(self.value(work.elements, p)[0])
                reads += sum(float(self.value(e, p)[0]) for _, e in work.reads) * self.kv_bytes
        writes = sum(float(self.value(e, p)[0]) for e in self.workload.write_elements.values()) * self.kv_bytes
        act_bytes = self.chip.weights.activation_bits / 8
        return {
            "weight_macs_by_bits": {b: m for b, m in sorted(by_bits.items()) if m},
            "attention_macs": attention_macs,
            "elementwise_ops": elementwise + self.workload.vocab,
            "sram_read_bytes": reads,
            "sram_write_bytes": writes,
            "activation_bytes": sum(r.activation_elements for r in self.plan.regions) * act_bytes,
        }


def _transfer_cycles(nbytes: np.ndarray, bytes_per_cycle: np.ndarray) -> np.ndarray:
    """Cycles to move `nbytes` through a partition; a partition holding nothing moves nothing."""
    safe = np.where(bytes_per_cycle > 0, bytes_per_cycle, 1.0)
    return np.where(nbytes > 0, np.where(bytes_per_cycle > 0, nbytes / safe, np.inf), 0.0)
