"""Steady-state extrapolation of LOOPs: detect that a loop's timing has become periodic and skip
whole periods exactly instead of simulating them.

At each checkpoint (the queue holding the loop body's first instruction starts a new iteration)
the detector builds a key of the engine's complete state *relative to that moment*: semaphore
counts; every queue's cursor, with iterations of this loop counted relative to the checkpoint's
iteration; every in-flight instruction (which one, its relative iteration, its remaining time or,
in a DMA data phase, its remaining bytes). The engine is deterministic, and nothing in it depends
on absolute time or on the absolute iteration number except a queue leaving the loop. So when
the key at iteration i + k equals the key at iteration i, the run from there repeats the same
k-iteration pattern, shifted by P seconds, until some queue reaches the loop's last iteration.

The jump therefore is exact: it skips J whole periods, where J * k keeps every queue inside the
loop, adding J times the counters accumulated over one period and shifting every pending time by
J * P; the remaining iterations and the loop exit are simulated normally. "Exact" holds up to
float rounding: keys compare times at 1 fs and bytes at 1 mB resolution, so a skipped period may
differ from the simulated one by that much. Loops whose timing never repeats (for example while
an unrelated queue is still draining work from before the loop) are simulated iteration by
iteration, which is slower but never wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.programmable.engine import EventEngine, Queue

_TIME_QUANTUM = 1e15     # keys compare times in femtoseconds
_BYTE_QUANTUM = 1e3      # and remaining DMA bytes in milli-bytes
_MAX_KEYS = 256          # keys remembered per loop before starting afresh


class LoopDetector:
    def __init__(self, engine: EventEngine) -> None:
        self.engine = engine
        self.loop_pc = -1
        self.seen: dict[tuple, tuple[int, float, list[float], int]] = {}
        self.extrapolated: list[dict] = []

    def checkpoint(self, pacer: Queue) -> None:
        eng = self.engine
        if pacer.seg >= len(pacer.segments) or not pacer.segments[pacer.seg].pacer:
            return      # the pacer left the loop in the same issue pass: nothing left to skip
        segment = pacer.segments[pacer.seg]
        loop_pc, ref = segment.loop_pc, pacer.it
        if loop_pc in eng.plan.aperiodic_loops:
            return
        if loop_pc != self.loop_pc:
            self.loop_pc, self.seen = loop_pc, {}
        key = self._key(loop_pc, ref)
        previous = self.seen.get(key)
        if previous is None:
            if len(self.seen) >= _MAX_KEYS:
                self.seen.clear()
            self.seen[key] = (ref, eng.now, list(eng.acc), eng.ops_simulated)
            return
        it0, t0, acc0, ops0 = previous
        k, period_s = ref - it0, eng.now - t0
        inside = [q for q in eng.queues if q.seg == q.loop_seg.get(loop_pc, -1)]
        periods = min(segment.count - 1 - q.it for q in inside) // k
        if periods < 1 or period_s <= 0:
            return
        self._jump(loop_pc, k, periods, period_s, acc0, ops0)
        self.seen.clear()

    def _key(self, loop_pc: int, ref: int) -> tuple:
        eng = self.engine
        now = eng.now
        eng.bw.advance(now)
        remaining = eng.bw.remaining
        parts: list = [tuple(eng.sems), eng.gemm_unit.state()]
        for q in eng.queues:
            loop_seg = q.loop_seg.get(loop_pc, -1)
            parts.append((q.seg, q.it - ref if q.seg == loop_seg else q.it, q.pos,
                          round(max(q.next_issue_s - now, 0.0) * _TIME_QUANTUM)))
            for op in q.inflight:
                it = op.it - ref if op.seg == loop_seg else op.it
                if op.done:
                    state = -1
                elif op.data_phase:
                    state = round(remaining[op] * _BYTE_QUANTUM)
                else:
                    state = round((op.event_s - now) * _TIME_QUANTUM)
                parts.append((op.cost.pc, op.seg, it, op.data_phase, state))
        return tuple(parts)

    def _jump(self, loop_pc: int, k: int, periods: int, period_s: float, acc0: list[float], ops0: int) -> None:
        eng = self.engine
        shift_s, shift_it = periods * period_s, periods * k
        acc = eng.acc
        for i, before in enumerate(acc0):
            acc[i] += periods * (acc[i] - before)
        start = eng.now
        eng.now += shift_s
        eng.heap[:] = [(t + shift_s, seq, op) for t, seq, op in eng.heap]   # a uniform shift keeps heap order
        eng.bw.updated_s += shift_s
        eng.dirty = (1 << len(eng.queues)) - 1
        for q in eng.queues:
            loop_seg = q.loop_seg.get(loop_pc, -1)
            q.next_issue_s += shift_s
            if q.seg == loop_seg:
                if eng.schedule is not None:
                    eng._record(q.index, -1 - loop_pc, q.it, start, eng.now, shift_it)
                q.it += shift_it
            for op in q.inflight:
                op.start_s += shift_s
                op.event_s += shift_s
                if op.done:
                    op.end_s += shift_s
                if op.seg == loop_seg:
                    op.it += shift_it
                    if op.gemm is not None and not op.done:     # its operands moved with the iteration
                        eng.gemm_unit.move(op, op.cost.gemm_ranges(op.it))
        eng.ops_extrapolated += periods * (eng.ops_simulated - ops0)
        self.extrapolated.append({"loop_pc": loop_pc, "period_iterations": k, "period_s": period_s,
                                  "iterations_skipped": shift_it})
