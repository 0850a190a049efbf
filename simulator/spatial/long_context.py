"""Long context on a chip with no HBM: how much context, for how many users, fits the on-die SRAM.

For each long-context model: one user's KV / state bytes, the longest context one user fits, the
users that fit at a few contexts, and the decode rate at the longest context (or, when the
cache stops growing, at the reference context with every user that fits interleaved).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

from compiler.frontend.onnx_import import import_onnx
from simulator.api import ModelGraphs, SimOptions
from simulator.hardware import load_hardware
from simulator.spatial.capacity import capacity_of, resident_bytes
from simulator.spatial.context import context_model
from simulator.spatial.simulate import _grows, kv_bits_of, simulate, workload_of

LONG_CONTEXT_MODELS = (
    "llama3.1-8b", "llama3.1-8b-hybrid", "llama3.1-8b-sparse", "llama3.1-8b-compact",
    "mamba2-2.7b", "llama3.1-8b-grumem", "llama3.1-8b-engram",
)
CONTEXTS = (8192, 32768, 131072)


@dataclass
class LongContextRow:
    model: str
    context_model: str
    bytes_per_user_at_reference: float
    max_context: int | None           # None: any length (the cache stops growing)
    users_at: dict[int, int]          # context -> users whose caches fit
    rate_context: int                 # context the rates below are taken at (0: nothing fits)
    rate_users: int
    tokens_per_s_per_user: float
    tokens_per_s_total: float
    fits_area: bool


def long_context_table(target: str = "taalas-hc1", kv_precision: str = "bf16",
                       models: tuple[str, ...] = LONG_CONTEXT_MODELS,
                       contexts: tuple[int, ...] = CONTEXTS) -> list[LongContextRow]:
    chip = load_hardware(target)
    if chip.kind != "spatial":
        raise ValueError(f"{target}: the long-context table is for spatial (no-HBM) targets, not {chip.kind!r}")
    kv_bits = kv_bits_of(kv_precision)
    reference = max(contexts)
    rows = []
    for name in models:
        graphs = ModelGraphs(name, _decode_graph(name), None)
        workload = workload_of(graphs.decode)
        ctx = context_model(name, _grows(workload))
        users = {c: capacity_of(workload, ctx, chip, kv_bits, ctx.past_len(c)).users_fit for c in contexts}
        cap = capacity_of(workload, ctx, chip, kv_bits, ctx.past_len(reference))
        if cap.max_context is None:
            rate_context, rate_users = reference, users[reference]
        else:
            rate_context, rate_users = cap.max_context, 1 if cap.max_context else 0
        per_user = total = math.nan
        fits_area = True
        if rate_users:
            report = simulate(graphs, chip, SimOptions(context=rate_context, batch=rate_users, prompt_len=1,
                                                       kv_precision=kv_precision))
            per_user, total, fits_area = report.tokens_per_s_per_user, report.tokens_per_s_total, report.fits
        rows.append(LongContextRow(
            model=name,
            context_model=ctx.describe(),
            bytes_per_user_at_reference=resident_bytes(workload, ctx, kv_bits, ctx.past_len(reference)),
            max_context=cap.max_context,
            users_at=users,
            rate_context=rate_context if rate_users else 0,
            rate_users=rate_users,
            tokens_per_s_per_user=per_user,
            tokens_per_s_total=total,
            fits_area=fits_area,
        ))
    return rows


@functools.cache
def _decode_graph(name: str):
    """Decode graphs only (the table needs no prefill); kept, as tables are often asked for twice."""
    import models

    return import_onnx(models.build_model(name, "decode"))


def format_table(rows: list[LongContextRow], target: str, kv_precision: str) -> str:
    contexts = sorted(rows[0].users_at) if rows else []
    head = (f"{'model':<22}{'cache/user @' + _k(max(contexts)):>16}{'max context':>13}"
            + "".join(f"{'users @' + _k(c):>12}" for c in contexts)
            + f"{'rate at':>16}{'tok/s/user':>12}{'tok/s total':>13}")
    lines = [f"Long context on {target} (KV / state in on-die SRAM at {kv_precision}; no HBM)", head]
    for r in rows:
        at = f"{_k(r.rate_context)} x{r.rate_users}" if r.rate_users else "nothing fits"
        lines.append(
            f"{r.model:<22}{_bytes(r.bytes_per_user_at_reference):>16}"
            f"{'any' if r.max_context is None else f'{r.max_context:,}':>13}"
            + "".join(f"{r.users_at[c]:>12,}" for c in contexts)
            + f"{at:>16}{_num(r.tokens_per_s_per_user):>12}{_num(r.tokens_per_s_total):>13}")
    lines.append("max context: longest sequence one user's cache fits ('any': the cache stops growing); "
                 "rates at that context with that many users interleaved.")
    return "\n".join(lines)


def rows_to_json(rows: list[LongContextRow]) -> list[dict]:
    return [{**asdict(r), "users_at": {str(k): v for k, v in r.users_at.items()},
             "tokens_per_s_per_user": None if math.isnan(r.tokens_per_s_per_user) else r.tokens_per_s_per_user,
             "tokens_per_s_total": None if math.isnan(r.tokens_per_s_total) else r.tokens_per_s_total}
            for r in rows]


def _k(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def _bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:,.0f}"
