"""A model on the programmable target: recognize, lower decode (and prefill), simulate, report."""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from typing import Any

from compiler.ir.graph import Graph
from compiler.targets.programmable.isa import Collective
from compiler.targets.programmable.program import Program
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable import summary
from simulator.programmable.stats import EngineResult
from simulator.report import SimReport


class LoweringUnavailableError(RuntimeError):
    pass


def _recognizer() -> tuple[Any, str]:
    try:
        from compiler.passes.pipeline import recognize
    except ImportError:
        return (lambda graph: graph), ("recognition passes not available (compiler.passes.pipeline.recognize "
                                       "missing): the graph was lowered as imported")
    return recognize, ""


def _lowering():
    try:
        from compiler.targets.programmable.lower import LoweringOptions, lower_graph
    except ImportError as exc:
        raise LoweringUnavailableError(
            "the programmable target's lowering (compiler/targets/programmable/lower.py: lower_graph, "
            f"LoweringOptions) is not available ({exc}); simulate hand-built programs with "
            "simulator.programmable.simulate_program instead") from None
    return lower_graph, LoweringOptions


def activation_precision(chip: ProgrammableChip, weight_precision: str) -> str:
    """Activations stay in the weights' float type; integer-only chips compute in int8."""
    if weight_precision in ("bf16", "fp16", "fp32"):
        return weight_precision
    if chip.isa_subset == "integer":
        return "int8"
    return "bf16" if chip.supports("bf16") else weight_precision


def lower(graph: Graph, chip: ProgrammableChip, options, bindings: dict[str, int]) -> Program:
    lower_graph, LoweringOptions = _lowering()
    wanted = {
        "batch": options.batch,
        "bindings": bindings,
        "weight_precision": options.weight_precision,
        "kv_precision": options.kv_precision,
        "activation_precision": activation_precision(chip, options.weight_precision),
        # None lets the lowering choose (it defaults to the chip's linked chips)
        "tensor_parallel": getattr(options, "tensor_parallel", None),
    }
    accepted = _accepted_fields(LoweringOptions)
    return lower_graph(graph, chip, LoweringOptions(**{k: v for k, v in wanted.items() if k in accepted}))


def _accepted_fields(cls) -> set[str]:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls) if f.init}
    return set(inspect.signature(cls).parameters)


def program_chips(program: Program) -> int:
    """Chips the program runs on (SPMD): the lowering's tensor_parallel, else its widest collective."""
    chips = program.meta.get("tensor_parallel")
    if chips:
        return int(chips)
    widths = [ins.chips for ins in program.instructions if isinstance(ins, Collective)]
    return max(widths, default=1)


def _run(program: Program, chip: ProgrammableChip, options, trace: bool, label: str) -> tuple[EngineResult, float]:
    from simulator.programmable import simulate_program

    chips = program_chips(program)
    start = time.perf_counter()
    result = simulate_program(program, chip, trace_path=options.trace_path if trace else None, chips=chips,
                              progress=options.progress, description=label)
    return result, time.perf_counter() - start


def simulate_model(graphs, chip: ProgrammableChip, options, lower_step=None) -> SimReport:
    """`lower_step(step, graph, bindings) -> Program` lowers each step ("decode", "prefill"); the default
    is `lower`. Sweeps pass one that reuses programs across chips the lowering cannot tell apart."""
    if lower_step is None:
        def lower_step(step: str, graph: Graph, bindings: dict[str, int]) -> Program:
            return lower(graph, chip, options, bindings)
    if graphs.decode is None:
        raise ValueError(f"{graphs.name}: no decode graph (a graph with a past-length cache input); "
                         "the programmable simulator reports decode TPOT and needs one")
    recognize, note = _recognizer()
    notes = [note] if note else []
    try:
        decode_program = lower_step("decode", recognize(graphs.decode),
                                    {"batch": options.batch, "past_len": options.context})
    except Exception as error:
        if not _beyond_address_space(error):
            raise
        return _not_simulated(graphs, chip, options, error, notes)
    decode, decode_host_s = _run(decode_program, chip, options, True, f"decode @ {options.context:,}")
    meta = decode_program.meta
    chips = program_chips(decode_program)
    tpot = decode.time_s

    prefill_extra: dict[str, Any]
    prefill_program = None
    if graphs.prefill is not None:
        try:
            prefill_program = lower_step("prefill", recognize(graphs.prefill),
                                         {"batch": options.batch, "seq": options.prompt_len})
        except Exception as error:
            if not _beyond_address_space(error):
                raise
            ttft = math.nan
            prefill_extra = {"source": "not simulated: beyond the ISA's HBM address space", "fits": False,
                             "fits_reason": error.fits_reason}
    if prefill_program is not None:
        prefill, prefill_host_s = _run(prefill_program, chip, options, False, f"prefill {options.prompt_len:,}")
        ttft = prefill.time_s
        prefill_extra = {"source": "simulated prefill program",
                         **summary.engine_extra(chip, prefill, prefill_host_s),
                         "fits": bool(prefill_program.meta.get("fits", True)),
                         "fits_reason": str(prefill_program.meta.get("fits_reason", ""))}
    elif graphs.prefill is None:
        # No prefill graph: the prompt is fed one token at a time through decode steps at the
        # decode context, which overestimates TTFT (no prompt-wide matmuls).
        ttft = options.prompt_len * tpot
        prefill_extra = {"source": "estimate: prompt_len x decode TPOT (no prefill graph)"}
        notes.append("TTFT estimated as prompt_len x TPOT: the model has no prefill graph")

    notes.extend(_stand_in_notes(decode_program, "decode"))
    notes.extend(_stand_in_notes(prefill_program, "prefill"))
    fits = bool(meta.get("fits", True))
    fits_reason = str(meta.get("fits_reason", "fits (the lowering gave no reason)"))
    step_hbm = decode.totals["hbm_bytes"] * chips
    step_energy = decode.energy_j["total"] * chips
    extra = {
        "conventions": summary.CONVENTIONS,
        "bottleneck_detail": summary.bottleneck_detail(chip, decode),
        "chips": chips,
        "decode": summary.engine_extra(chip, decode, decode_host_s),
        "prefill": prefill_extra,
        # The compute roof compute_utilization is measured against and the decode MACs per token,
        # all chips: what a roofline across targets needs.
        "peak_macs_per_s": chips * summary.peak_macs_per_s(
            chip, decode, activation_precision(chip, options.weight_precision)),
        "macs_per_token": decode.totals["macs"] * chips / options.batch,
        "weights_in_sram": meta.get("weights_in_sram"),
        "notes": notes,
        "not_modelled": ["SRAM bandwidth limits on GEMM/vector operands (counted for energy only)",
                         "DMA row-stride effects (a transfer costs latency + bytes at its bandwidth share)"],
    }
    return SimReport(
        model=graphs.name,
        target=chip.name,
        context=options.context,
        batch=options.batch,
        prompt_len=options.prompt_len,
        gen_len=options.gen_len,
        precision=options.weight_precision,
        tokens_per_s_per_user=1.0 / tpot if tpot > 0 else math.inf,
        tokens_per_s_total=options.batch / tpot if tpot > 0 else math.inf,
        ttft_s=ttft,
        tpot_s=tpot,
        weight_bytes=_total(meta.get("weight_bytes")),
        kv_bytes=_total(meta.get("kv_bytes")),
        hbm_bytes_per_token=step_hbm,
        achieved_bandwidth_bytes_per_s=step_hbm / tpot if tpot > 0 else 0.0,
        peak_bandwidth_bytes_per_s=chip.memory.hbm_bytes_per_s * chips,
        compute_utilization=summary.compute_utilization(chip, decode),
        energy_j_per_token=step_energy / options.batch,
        fits=fits,
        fits_reason=fits_reason,
        bottleneck=summary.bottleneck(chip, decode),
        per_layer=summary.per_layer(decode, chips),
        assumptions=dict(chip.assumed),
        extra=extra,
    )


def _beyond_address_space(error: Exception) -> bool:
    try:
        from compiler.targets.programmable.options import AddressSpaceError
    except ImportError:
        return False
    return isinstance(error, AddressSpaceError)


def _stand_in_notes(program, step: str) -> list[str]:
    """Say where the timing rests on stand-ins: ops the ISA has no instruction for (timed as an
    instruction of the same cost class) and attention the recognizer did not fuse (lowered as
    generic GEMMs that materialize the scores)."""
    if program is None:
        return []
    notes = []
    for what, nodes in program.meta.get("isa_gaps", {}).items():
        nodes = list(dict.fromkeys(nodes))
        notes.append(f"{step}: no ISA instruction for {what}; timed with a same-cost stand-in "
                     f"(nodes: {', '.join(nodes[:3])}{', ...' if len(nodes) > 3 else ''})")
    unrecognized = program.meta.get("unrecognized", [])
    if unrecognized:
        notes.append(f"{step}: {len(unrecognized)} activation x activation matmuls outside recognized attention, "
                     "lowered as generic GEMMs")
    return notes


def _not_simulated(graphs, chip: ProgrammableChip, options, error, notes: list[str]) -> SimReport:
    """A model whose memory plan the ISA cannot address: sizes and fits = False, rates NaN."""
    meta = error.meta
    nan = math.nan
    extra = {
        "conventions": summary.CONVENTIONS,
        "chips": int(meta.get("tensor_parallel") or 1),
        "decode": {"source": "not simulated: beyond the ISA's HBM address space"},
        "prefill": {"source": "not simulated: the decode step already does not fit the address space"},
        "weights_in_sram": meta.get("weights_in_sram"),
        "notes": [*notes, str(error)],
    }
    chips = extra["chips"]
    return SimReport(
        model=graphs.name, target=chip.name, context=options.context, batch=options.batch,
        prompt_len=options.prompt_len, gen_len=options.gen_len, precision=options.weight_precision,
        tokens_per_s_per_user=nan, tokens_per_s_total=nan, ttft_s=nan, tpot_s=nan,
        weight_bytes=_total(meta.get("weight_bytes")), kv_bytes=_total(meta.get("kv_bytes")),
        hbm_bytes_per_token=nan, achieved_bandwidth_bytes_per_s=nan,
        peak_bandwidth_bytes_per_s=chip.memory.hbm_bytes_per_s * chips, compute_utilization=nan,
        energy_j_per_token=nan, fits=False, fits_reason=error.fits_reason,
        bottleneck="not simulated (beyond the ISA's HBM address space)", per_layer={},
        assumptions=dict(chip.assumed), extra=extra,
    )


def _total(entry: Any) -> float:
    """The lowering reports sizes as {"per_chip": .., "total": ..} (or a bare number)."""
    if isinstance(entry, dict):
        entry = entry.get("total")
    return math.nan if entry is None else float(entry)
