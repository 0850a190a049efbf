"""One lowered program for every design point that differs only in fields the lowering never reads.

Lowering (tiling, array splits, SRAM/HBM placement, sharding) depends on the array shape and
splits, the SRAM and HBM sizes, the chip count and the precisions; the decode lowering reads no
clock, bandwidth, latency or energy. Points that differ only in those timing fields therefore
share one program, which the event engine then times against each point's own chip: the result
is the one `simulate_model` gives with a fresh lowering, not an approximation.

The decode cache key is the values of exactly the fields in `DECODE_LOWERING_FIELDS`, plus
the model, the bindings and the lowering options. The prefill lowering's time-based attention
plans read clock, bandwidths, latencies and vector timing too, so prefill programs are keyed on
every field but the energies. The lists are checked, not trusted: the first lowering of each
(model, step) in a process runs against a chip that records every field read, and a field
outside the key is an error. `tests/sweep/test_sweep_reuse.py` checks the lists on several
chips and that reused and fresh lowerings give identical reports.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from compiler.ir.graph import Graph
from compiler.targets.programmable.program import Program
from simulator.hardware.programmable import ProgrammableChip

DECODE_LOWERING_FIELDS = ("name", "isa_subset", "links.chips", "memory.hbm_bytes", "memory.sram_bytes",
                          "systolic.arrays_per_chip", "systolic.cols", "systolic.macs_per_pe_per_cycle",
                          "systolic.rows", "systolic.split_factors")
# Fields no lowering reads by construction: citations, prose, and the energy table (energy is
# counted by the engine per executed instruction, never consulted when choosing a plan).
NOT_LOWERING = ("description", "sources", "assumed", "energy")
STEPS = ("decode", "prefill")
MAX_PROGRAMS = 8   # programs of an 8B decode step are a few MB each


class LoweringReuseError(RuntimeError):
    """The lowering read a chip field that the reuse key does not hold: reuse would be inexact."""


LowerStep = Callable[[str, Graph, dict[str, int]], Program]


def lowering_fields(step: str, chip: Any) -> tuple[str, ...]:
    """The chip fields the `step` lowering may read: the reuse key."""
    if step == "decode":
        return DECODE_LOWERING_FIELDS
    if step == "prefill":
        return tuple(f for f in leaf_fields(chip) if f.split(".")[0] not in NOT_LOWERING)
    raise ValueError(f"step {step!r}: one of {', '.join(STEPS)}")


def leaf_fields(chip: Any, prefix: str = "") -> list[str]:
    """Dotted names of a description's non-table fields."""
    out = []
    for f in dataclasses.fields(chip):
        value = getattr(chip, f.name)
        if dataclasses.is_dataclass(value):
            out += leaf_fields(value, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def field_value(chip: Any, dotted: str) -> Any:
    node = chip
    for part in dotted.split("."):
        node = getattr(node, part)
    if isinstance(node, Mapping):
        return tuple(sorted(node.items()))
    return node


def recording_chip(chip: Any, seen: set[str], prefix: str = "") -> Any:
    """A copy of a frozen description whose field reads (nested ones as dotted names) go into `seen`."""
    names = {f.name for f in dataclasses.fields(chip)}
    sections: dict[str, Any] = {}

    class Recording(type(chip)):
        def __getattribute__(self, name: str) -> Any:
            value = object.__getattribute__(self, name)
            if name in names:
                if dataclasses.is_dataclass(value):
                    if name not in sections:
                        sections[name] = recording_chip(value, seen, f"{prefix}{name}.")
                    return sections[name]
                seen.add(prefix + name)
            return value

    Recording.__name__ = type(chip).__name__
    copy = object.__new__(Recording)
    for f in dataclasses.fields(chip):
        object.__setattr__(copy, f.name, getattr(chip, f.name))
    return copy


def fields_read_by_lowering(graph: Graph, chip: ProgrammableChip, options, bindings: dict[str, int]) -> set[str]:
    """The chip fields one lowering reads (dotted names)."""
    from simulator.programmable.model import lower

    seen: set[str] = set()
    lower(graph, recording_chip(chip, seen), options, bindings)
    return seen


class ProgramCache:
    """Lowered programs of one process, least recently used dropped first."""

    def __init__(self, max_programs: int = MAX_PROGRAMS) -> None:
        self.max_programs = max_programs
        self.programs: OrderedDict[tuple, Program] = OrderedDict()
        self.verified: set[tuple[str, str]] = set()
        self.hits = 0
        self.misses = 0

    def lower_step(self, model: str, chip: ProgrammableChip, options) -> LowerStep:
        """The `lower_step` argument of `simulate_model` for one design point."""
        from simulator.programmable.model import lower

        def lower_step(step: str, graph: Graph, bindings: dict[str, int]) -> Program:
            key = self.key(model, step, chip, options, bindings)
            if key in self.programs:
                self.hits += 1
                self.programs.move_to_end(key)
                return self.programs[key]
            self.misses += 1
            if (model, step) in self.verified:
                program = lower(graph, chip, options, bindings)
            else:
                seen: set[str] = set()
                program = lower(graph, recording_chip(chip, seen), options, bindings)
                unkeyed = sorted(seen - set(lowering_fields(step, chip)))
                if unkeyed:
                    raise LoweringReuseError(
                        f"{model}: the {step} lowering read chip field(s) {', '.join(unkeyed)}, which "
                        "simulator/sweep/reuse.py does not key programs on; add them to its field lists "
                        "(or set reuse_lowering = false in [sweep])")
                self.verified.add((model, step))
            self.programs[key] = program
            while len(self.programs) > self.max_programs:
                self.programs.popitem(last=False)
            return program

        return lower_step

    @staticmethod
    def key(model: str, step: str, chip: ProgrammableChip, options, bindings: dict[str, int]) -> tuple:
        fields = tuple((f, field_value(chip, f)) for f in lowering_fields(step, chip))
        lowering_options = (options.batch, options.weight_precision, options.kv_precision,
                            getattr(options, "tensor_parallel", None))
        return (model, step, tuple(sorted(bindings.items())), lowering_options, fields)


def structure_key(kind: str, hardware: Mapping[str, Any], point, prefill: bool) -> tuple:
    """What decides whether two points can share programs (used to put them in one task)."""
    if kind != "programmable":
        return (point.model,)
    if prefill:
        shared = {k: v for k, v in hardware.items() if k not in NOT_LOWERING}
    else:
        shared = {}
        for dotted in DECODE_LOWERING_FIELDS:
            node: Any = hardware
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            shared[dotted] = node
    return (point.model, point.context, point.batch, point.precision, point.kv_precision, repr(shared))
