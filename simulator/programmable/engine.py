"""The discrete-event engine: runs a Program's timing on a chip.

Five queues (LOAD, STORE, GEMM, VECTOR, LINK) issue their instructions in program order. The head
of a queue issues when every semaphore it waits on is positive (each is then decremented) and
its resource is free:
  * LOAD / STORE: a free DMA channel (`memory.dma_channels`, shared by both queues); many
    transfers may be outstanding, each waits `hbm_latency_s`, then all transfers in their data
    phase share `hbm_bytes_per_s` equally, re-timed whenever one starts or ends;
  * GEMM: its sub-array on enough arrays, and no SRAM hazard with GEMMs still running
    (gemm_unit.py); independent GEMMs overlap;
  * VECTOR, LINK: the previous instruction of the queue has completed.
With `control.issue_cycles` = c > 0 (the RTL core's rule, 1 there), a queue issues at most one
instruction every c cycles and a fence passes its signals on c cycles after it issues; with 0
(the default) issue is free and a queue may issue several instructions at one instant.
Completion increments the instruction's `signal` semaphores. Queues with several outstanding
instructions (DMA, GEMM) retire them in order, so a signal never overtakes an earlier one of the
same queue: "signal at completion" then means what a compiler reading program order expects.

Time is in seconds (float). LOOP bodies are not unrolled: cursors walk segments (plan.py), and
steady.py extrapolates a loop whose timing has become periodic.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable

from compiler.targets.programmable.isa import Engine
from simulator.programmable.costs.dma import SharedBandwidth
from simulator.programmable.gemm_unit import GemmUnit
from simulator.programmable.plan import QUEUE_ENGINES, OpCost, Plan, Segment
from simulator.programmable.stats import Counters, EngineResult
from simulator.programmable.steady import LoopDetector


class DeadlockError(RuntimeError):
    """Every unfinished queue is blocked on a semaphore and nothing is in flight."""


class Op:
    """One execution of an instruction (a given loop iteration) in flight."""

    __slots__ = ("cost", "seg", "it", "start_s", "event_s", "data_phase", "done", "end_s", "gemm")

    def __init__(self, cost: OpCost, seg: int, it: int, start_s: float, event_s: float) -> None:
        self.cost, self.seg, self.it = cost, seg, it
        self.start_s, self.event_s, self.end_s = start_s, event_s, 0.0
        self.data_phase = False
        self.done = False
        self.gemm: tuple | None = None     # GEMM: (arrays claimed, operand ranges)


class Wake:
    """A heap entry that only wakes a queue whose issue spacing (control.issue_cycles) has passed."""

    __slots__ = ("queue",)

    def __init__(self, queue: Queue) -> None:
        self.queue = queue


class Queue:
    __slots__ = ("index", "bit", "engine", "segments", "seg", "it", "pos", "inflight", "running", "loop_seg",
                 "next_issue_s", "wake_pending")

    def __init__(self, index: int, engine: Engine, segments: list[Segment]) -> None:
        self.index, self.engine, self.segments = index, engine, segments
        self.seg = self.it = self.pos = 0
        self.bit = 1 << index
        self.inflight: deque[Op] = deque()
        self.running = 0
        # LOOP pc -> index of this queue's segment for that loop
        self.loop_seg = {s.loop_pc: i for i, s in enumerate(segments) if s.loop_pc >= 0}
        self.next_issue_s = 0.0          # issue spacing (control.issue_cycles)
        self.wake_pending = False

    @property
    def finished(self) -> bool:
        return self.seg >= len(self.segments) and not self.inflight

    def head(self) -> int:
        return self.segments[self.seg].pcs[self.pos]


class EventEngine:
    def __init__(self, plan: Plan, *, record_schedule: bool = False, max_schedule: int = 500_000,
                 extrapolate: bool = True, progress: Callable[[int, int], None] | None = None) -> None:
        self.plan = plan
        chip = plan.chip
        self.costs = plan.costs
        self.queues = [Queue(i, e, plan.queues[e]) for i, e in enumerate(QUEUE_ENGINES)]
        self.sems = [0] * 16
        self.heap: list[tuple[float, int, Op]] = []
        self.seq = 0
        self.now = 0.0
        self.bw = SharedBandwidth(chip.memory.hbm_bytes_per_s)
        self.dma_free = chip.memory.dma_channels
        self.gemm_unit = GemmUnit(chip.systolic.arrays_per_chip, plan.max_ways)
        self.issue_s = chip.control.issue_cycles / chip.clock_hz
        self.counters = Counters(plan)
        self.acc = self.counters.values
        self.tag_active: dict[int, int] = {}
        self.schedule: list[tuple] | None = [] if record_schedule else None
        self.max_schedule = max_schedule
        self.schedule_truncated = False
        self.ops_simulated = 0
        self.ops_extrapolated = 0
        self.progress = progress
        self.checkpoint_queue: Queue | None = None
        self.dirty = ALL_QUEUES           # queues that something woke since they last blocked
        self.blocked_on = [0] * 16        # semaphore -> queues whose head waits on it
        self.detector = LoopDetector(self) if extrapolate else None

    # ---- main loop -----------------------------------------------------------------------
    def run(self) -> EngineResult:
        heap, bw = self.heap, self.bw
        while True:
            self._issue_pass()
            if self.checkpoint_queue is not None:
                queue, self.checkpoint_queue = self.checkpoint_queue, None
                if self.detector is not None:
                    self.detector.checkpoint(queue)
            t_heap = heap[0][0] if heap else math.inf
            t_dma = bw.next_completion_s()
            t = min(t_heap, t_dma)
            if t == math.inf:
                if all(q.finished for q in self.queues):
                    break
                raise DeadlockError(self.describe_deadlock())
            self._advance(t)
            # events that float rounding puts a few ulps apart happen at the same instant
            same = t + abs(t) * _SAME_INSTANT
            while heap and heap[0][0] <= same:
                op = heapq.heappop(heap)[2]
                if op.__class__ is Wake:
                    op.queue.wake_pending = False
                    self.dirty |= op.queue.bit
                    continue
                if op.cost.is_dma and not op.data_phase and not op.cost.fence:
                    op.data_phase = True
                    bw.add(op, op.cost.nbytes, t)
                else:
                    self._complete(op, t)
            if bw.remaining:
                for op in bw.pop_finished(t, force_least=t_dma <= t_heap):
                    self._complete(op, t)
        if self.progress is not None:
            self.progress(self.plan.total_ops, self.plan.total_ops)
        return self.counters.result(self)

    def _issue_pass(self) -> None:
        """Issue every queue head that can go now. Issuing only takes semaphores and resources,
        so one pass over the queues that something has woken is enough."""
        sems, costs, dirty = self.sems, self.costs, self.dirty
        self.dirty = 0
        for q in self.queues:
            if not dirty & q.bit:
                continue
            segments = q.segments
            while q.seg < len(segments):
                segment = segments[q.seg]
                c = costs[segment.pcs[q.pos]]
                blocked = False
                for s, need in c.needs:
                    if sems[s] < need:
                        self.blocked_on[s] |= q.bit
                        blocked = True
                if blocked:
                    break
                if self.issue_s and self.now < q.next_issue_s - self.issue_s * _SAME_INSTANT_CYCLE:
                    self._wake(q)
                    break
                if c.fence:
                    pass
                elif c.is_dma:
                    if not self.dma_free:
                        break
                    self.dma_free -= 1
                elif c.slices:
                    claim = self.gemm_unit.try_issue(c, q.it)
                    if claim is None:
                        break
                elif q.inflight:
                    break
                for s in c.waits:
                    sems[s] -= 1
                q.next_issue_s = self.now + self.issue_s
                op = self._start(q, c)
                if c.slices:
                    op.gemm = claim
                    self.gemm_unit.start(op)
                q.pos += 1
                if q.pos == len(segment.pcs):
                    q.pos = 0
                    q.it += 1
                    if q.it == segment.count:
                        q.it = 0
                        q.seg += 1
                    elif segment.pacer:
                        self.checkpoint_queue = q

    def _wake(self, q: Queue) -> None:
        if not q.wake_pending:
            q.wake_pending = True
            self.seq += 1
            heapq.heappush(self.heap, (q.next_issue_s, self.seq, Wake(q)))

    def _start(self, q: Queue, c: OpCost) -> Op:
        now = self.now
        event = now + c.duration_s
        op = Op(c, q.seg, q.it, now, event)
        q.inflight.append(op)
        q.running += 1
        self.seq += 1
        heapq.heappush(self.heap, (event, self.seq, op))
        acc = self.acc
        for index, value in self.counters.adds[c.pc]:
            acc[index] += value
        self.tag_active[c.tag] = self.tag_active.get(c.tag, 0) + 1
        self.ops_simulated += 1
        if self.progress is not None and not self.ops_simulated & 0xFFF:
            self.progress(self.ops_simulated + self.ops_extrapolated, self.plan.total_ops)
        return op

    def _advance(self, t: float) -> None:
        """Charge the interval [now, t) to busy engines and to the layer kinds in flight."""
        dt = t - self.now
        if dt <= 0:
            return
        acc = self.acc
        for q in self.queues:
            if q.running:
                acc[q.index] += dt
        if self.tag_active:
            share = dt / len(self.tag_active)
            base = self.counters.tag_time
            for tag in self.tag_active:
                acc[base + tag] += share
        self.now = t

    def _complete(self, op: Op, t: float) -> None:
        c = op.cost
        op.done, op.end_s = True, t
        if c.fence:
            pass
        elif c.is_dma:
            self.dma_free += 1
            self.dirty |= DMA_BITS          # a channel is free for either DMA queue
        elif c.slices:
            self.gemm_unit.release(op)
        left = self.tag_active[c.tag] - 1
        if left:
            self.tag_active[c.tag] = left
        else:
            del self.tag_active[c.tag]
        q = self.queues[QUEUE_INDEX[c.engine]]
        q.running -= 1
        self.dirty |= q.bit
        inflight, sems, blocked_on = q.inflight, self.sems, self.blocked_on
        while inflight and inflight[0].done:
            retired = inflight.popleft()
            for s in retired.cost.signals:
                sems[s] += 1
                self.dirty |= blocked_on[s]
                blocked_on[s] = 0
            if self.schedule is not None:
                self._record(q.index, retired.cost.pc, retired.it, retired.start_s, retired.end_s, 0)

    def _record(self, queue: int, pc: int, it: int, start: float, end: float, extrapolated: int) -> None:
        if len(self.schedule) < self.max_schedule:
            self.schedule.append((queue, pc, it, start, end, extrapolated))
        else:
            self.schedule_truncated = True

    # ---- diagnostics ---------------------------------------------------------------------
    def describe_deadlock(self) -> str:
        lines = []
        program = self.plan.program.instructions
        for q in self.queues:
            if q.seg >= len(q.segments):
                continue
            segment = q.segments[q.seg]
            pc = q.head()
            c = self.costs[pc]
            where = f"instruction {pc} ({type(program[pc]).__name__}"
            if program[pc].comment:
                where += f" '{program[pc].comment}'"
            if segment.loop_pc >= 0:
                where += f", iteration {q.it} of {segment.count} of the LOOP at {segment.loop_pc}"
            where += ")"
            blocked = [f"semaphore {s} (count {self.sems[s]})" for s in dict.fromkeys(c.waits)
                       if self.sems[s] < c.waits.count(s)]
            lines.append(f"  {q.engine.name} queue at {where} waits on {', '.join(blocked) or 'nothing?'}")
        return (f"deadlock at t = {self.now:.6g} s: every unfinished queue is blocked and nothing is in "
                "flight (no instruction will ever signal what they wait for):\n" + "\n".join(lines))


QUEUE_INDEX = {engine: i for i, engine in enumerate(QUEUE_ENGINES)}
_SAME_INSTANT = 1e-12          # relative: events closer than this are simultaneous
_SAME_INSTANT_CYCLE = 1e-6     # of an issue spacing
ALL_QUEUES = (1 << len(QUEUE_ENGINES)) - 1
DMA_BITS = (1 << QUEUE_INDEX[Engine.LOAD]) | (1 << QUEUE_INDEX[Engine.STORE])


def run_program(plan: Plan, **kwargs) -> EngineResult:
    return EventEngine(plan, **kwargs).run()
