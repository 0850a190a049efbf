"""SRAM capacity: how many users' KV cache / state fit beside the adapters, and up to what context.

A chip with no HBM keeps every user's cache on the die, so capacity, not bandwidth, sets how many
users x how much context it can serve at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.targets.spatial.workload import Workload
from simulator.spatial.context import ContextModel
from simulator.spatial.hardware import SpatialChip
from simulator.spatial.pipeline import size_at

MAX_PAST_LEN = 2**40


@dataclass(frozen=True)
class Capacity:
    per_user_bytes: float       # KV / state one user holds at the simulated context
    capacity_bytes: int         # SRAM left for KV / state after adapters
    users_fit: int              # users whose caches fit at this context
    max_context: int | None     # longest sequence one user fits (None: any length; 0: not even one token)


def resident_bytes(workload: Workload, ctx: ContextModel, kv_bits: int, past_len: int) -> float:
    """One user's KV cache and state at `past_len` cached tokens, stored at `kv_bits` per element."""
    elements = 0.0
    for e in workload.cache_elements.values():
        # A fixed-size cache in a windowed model is a window buffer: it fills as the context grows.
        elements += e * ctx.window_fill(past_len) if isinstance(e, int) else size_at(e, past_len)
    hidden = ctx.hidden_state_bytes * 8 / workload.cache_bits
    return (elements + hidden) * kv_bits / 8


def capacity_of(workload: Workload, ctx: ContextModel, chip: SpatialChip, kv_bits: int, past_len: int) -> Capacity:
    capacity = chip.kv_capacity_bytes
    per_user = resident_bytes(workload, ctx, kv_bits, past_len)
    users = int(capacity // per_user) if per_user > 0 else 0
    return Capacity(per_user, capacity, users, max_context(workload, ctx, kv_bits, capacity))


def max_context(workload: Workload, ctx: ContextModel, kv_bits: int, capacity: float) -> int | None:
    """Longest sequence whose cache fits `capacity` for one user, by bisection on the cache size."""
    def fits(p: int) -> bool:
        return resident_bytes(workload, ctx, kv_bits, p) <= capacity

    if ctx.unbounded:
        worst = ctx.past_len(MAX_PAST_LEN)
        return None if fits(worst) else 0
    if not fits(0):
        return 0
    if fits(MAX_PAST_LEN):
        return None
    lo, hi = 0, MAX_PAST_LEN      # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return ctx.context_for(lo)
