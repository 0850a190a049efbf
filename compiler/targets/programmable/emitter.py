"""Instruction emission with semaphores derived from buffer hazards.

Kernels say which buffers (`Buf`) an instruction reads and writes; the emitter turns the
read-after-write, write-after-read and write-after-write hazards between engines into
semaphore waits and signals, so no kernel hand-numbers a semaphore.

A semaphore is a channel, one per (producer engine, consumer engine) pair. Engines run and
retire their queues in order, and a counting semaphore cannot tell tokens apart, so the k-th
wait on a channel takes the k-th signal: tokens are only ever created in producer order (a
dependency on an older producer than the channel's last token waits on a newer one, which is
stronger). Each instruction carries a vector clock (the newest instruction of every engine
known to have finished before it starts), so a hazard already implied costs nothing. At most
2 waits and 2 signals fit an instruction: extra waits go to a zero-size "fence" on the same
engine; a producer that cannot take another signal is followed by a fence that signals.

`loop()` emits iteration 0 straight-line (it absorbs every dependency on earlier code), then
LOOP over iteration 1 as the body. Inside the body only what repeats every iteration may
imply a hazard (not iteration 0's one-off fences); a hazard on the previous iteration waits on
that iteration's last instruction of the producing engine, and the body repeats that signal.
When a body cannot be made periodic (it would need a fence), its iterations are written out.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from compiler.targets.programmable.isa import (
    MAX_SEMAPHORE,
    Collective,
    DmaLoad,
    DmaStore,
    Engine,
    Gemm,
    GemmStrided,
    Halt,
    Instruction,
    Loop,
    Vector,
    Vector2D,
)
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.program import Program

_ENGINES = len(Engine)
_CONTROL = int(Engine.CONTROL)
_HUBS = (int(Engine.VECTOR), int(Engine.GEMM), int(Engine.LOAD), int(Engine.STORE), int(Engine.LINK))

# Zero-size instructions: they move nothing and exist only to carry waits and signals.
_FENCES: dict[int, Callable[[], Instruction]] = {
    int(Engine.LOAD): lambda: DmaLoad(rows=0, row_bytes=0),
    int(Engine.STORE): lambda: DmaStore(rows=0, row_bytes=0),
    int(Engine.GEMM): lambda: Gemm(m=0, n=0, k=0),
    int(Engine.VECTOR): lambda: Vector(length=0),
    int(Engine.LINK): lambda: Collective(nbytes=0),
}

# Address fields and the stride field a LOOP advances them by (Vector shares one stride).
_STRIDES: dict[type, tuple[tuple[str, str], ...]] = {
    DmaLoad: (("hbm_addr", "hbm_loop_stride"), ("sram_addr", "sram_loop_stride")),
    DmaStore: (("hbm_addr", "hbm_loop_stride"), ("sram_addr", "sram_loop_stride")),
    Gemm: (("a_addr", "a_loop_stride"), ("b_addr", "b_loop_stride"), ("c_addr", "c_loop_stride")),
    Vector: (("src_a", "loop_stride"), ("src_b", "loop_stride"), ("dst", "loop_stride")),
    Vector2D: (("src_a", "loop_stride"), ("src_b", "loop_stride"), ("dst", "loop_stride")),
    GemmStrided: (("a_addr", ""), ("b_addr", ""), ("c_addr", "")),   # no loop strides: addresses stay put
    Collective: (),
}


@dataclass(eq=False)
class Buf:
    """Bytes of one tensor (or staging slot) in "sram" or "hbm"; hazards are tracked per Buf.

    `reads` maps engine -> newest instruction that read the Buf since its last write.
    """

    name: str
    space: str
    addr: int
    nbytes: int
    last_write: tuple[int, int] | None = None
    reads: dict[int, int] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.addr + self.nbytes

    def accesses(self) -> dict[int, int]:
        """Every engine's newest access, for handing freed bytes to their next owner."""
        seen = dict(self.reads)
        if self.last_write is not None:
            engine, index = self.last_write
            seen[engine] = max(seen.get(engine, -1), index)
        return seen


class _NotPeriodic(Exception):
    """A LOOP body would need a fence (or an extra signal): write its iterations out instead."""


@dataclass
class _Body:
    """The LOOP body being emitted: where iteration 0 and the body start."""

    first: int  # iteration 0's first instruction
    end: int  # one past iteration 0
    start: int  # the body's first instruction
    periodic: dict[int, list[int]] = field(default_factory=dict)
    mirror: list[tuple[int, int]] = field(default_factory=list)  # (iteration-0 producer, sem)
    touched: list[tuple[int, int]] = field(default_factory=list)  # signals added before the body
    lasts: dict[int, int] = field(default_factory=dict)

    def last_of(self, engine: int, emitter: Emitter) -> int:
        """Iteration 0's last (non-fence) instruction on `engine`."""
        if engine not in self.lasts:
            self.lasts[engine] = max(i for i in range(self.first, self.end)
                                     if emitter.engine[i] == engine and not emitter.fence[i])
        return self.lasts[engine]


class Emitter:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.raw: list[Instruction] = []
        self.tags: list[str] = []
        self.engine: list[int] = []
        self.waits: list[list[int]] = []
        self.signals: list[list[int]] = []
        self.clocks: list[list[int]] = []
        self.fence: list[bool] = []
        self.in_body: list[bool] = []
        self.accesses: list[tuple[tuple[Buf, ...], tuple[Buf, ...]]] = []  # for checking; keeps Bufs alive
        self.last = [-1] * _ENGINES
        self.channels: dict[tuple[int, int], int] = {}
        self.pending: dict[int, deque[int]] = {}
        self.last_token: dict[int, int] = {}
        self.fence_count = 0
        self.unrolled = 0  # LOOP iterations written out (a stride overflowed, or a body was not periodic)
        self._capture: list | None = None
        self._body: _Body | None = None

    # ---- public -------------------------------------------------------------------------
    def emit(self, instruction: Instruction, tag: str, reads: Iterable[Buf] = (),
             writes: Iterable[Buf] = ()) -> int:
        """Append `instruction`, waiting on whatever earlier work its buffers depend on."""
        reads, writes = tuple(reads), tuple(writes)
        if self._capture is not None:
            self._capture.append((instruction, reads, writes))
            return -1
        engine = int(instruction.ENGINE)
        needed: dict[int, int] = {}
        for buf in reads:
            _need(needed, buf.last_write, engine)
        for buf in writes:
            _need(needed, buf.last_write, engine)
            for access in buf.reads.items():
                _need(needed, access, engine)
        body = self._body
        clock = self._base_clock(engine)
        periodic = self._periodic_base(engine) if body is not None else None
        waits: list[int] = []
        deps = needed.items() if len(needed) < 2 else sorted(needed.items(), key=lambda item: -item[1])
        for producer, index in deps:
            if body is not None and index >= body.first:
                if periodic[producer] >= index:
                    continue  # implied by what every iteration does
                if index < body.end:  # the previous iteration: wait for its last instruction there
                    index = body.last_of(producer, self)
            elif clock[producer] >= index:
                continue  # implied by an earlier wait or by this engine's order
            sems, satisfied_by = self._tokens(producer, index, engine, tag)
            waits += sems
            _merge(clock, self.clocks[satisfied_by])
            clock[producer] = max(clock[producer], satisfied_by)
            if periodic is not None:
                _merge(periodic, self._periodic_of(satisfied_by))
                periodic[producer] = max(periodic[producer], satisfied_by)
        if len(waits) > 2 and body is not None:
            raise _NotPeriodic()
        while len(waits) > 2:
            self._append(_FENCES[engine](), tag, engine, waits[:2], list(clock), fence=True)
            waits = waits[2:]
        index = self._append(instruction, tag, engine, waits, clock)
        if periodic is not None:
            body.periodic[index] = periodic
        self.accesses[index] = (reads, writes)
        for buf in reads:
            buf.reads[engine] = index
        for buf in writes:
            buf.last_write = (engine, index)
            buf.reads = {}
        return index

    def loop(self, count: int, body: Callable[[int], None], tag: str) -> None:
        """Emit `body(i)` for i < count: iteration 0 straight-line, the rest as one LOOP.

        `body` must emit the same instructions every iteration with addresses linear in i
        and must not allocate; iteration 0 may differ in non-address fields (e.g. accumulate).
        """
        if count <= 0:
            return
        first = len(self.raw)
        body(0)
        if count == 1:
            return
        end = len(self.raw)
        second, third = self._captured(body, 1), self._captured(body, 2) if count > 2 else None
        try:
            strided = [_with_strides(a[0], b[0], tag) for a, b in zip(second, third or second)]
        except _StrideOverflow:  # a stride does not fit its field
            self._write_out(body, count)
            return
        self._drain_pending(tag)
        saved = self._snapshot(second)
        loop_index = self._append(Loop(body=1, count=1), tag, _CONTROL, [], self._base_clock(_CONTROL))
        self._body = _Body(first, end, len(self.raw))
        try:
            for instruction, (_, reads, writes) in zip(strided, second):
                self.emit(instruction, tag, reads, writes)
            self._close_body(loop_index, count, tag)
            periodic = True
        except _NotPeriodic:
            self._restore(saved)
            periodic = False
        finally:
            self._body = None
        if not periodic:
            self._write_out(body, count)

    def finish(self) -> int:
        """Close the program with HALT and write the instructions into the Program."""
        self._append(Halt(), "other", _CONTROL, [], self._base_clock(_CONTROL))
        program = self.program
        for instruction, tag, waits, signals in zip(self.raw, self.tags, self.waits, self.signals):
            if waits or signals:
                # each raw instruction is this emitter's own object and the semaphores were checked
                # here (at most 2 each, ids 1..15): set them without re-validating every field
                object.__setattr__(instruction, "wait", tuple(waits))
                object.__setattr__(instruction, "signal", tuple(signals))
            program.emit(instruction, tag)
        return len(self.raw)

    @property
    def semaphores_used(self) -> int:
        return len(self.channels)

    # ---- loops --------------------------------------------------------------------------
    def _captured(self, body: Callable[[int], None], iteration: int) -> list:
        self._capture = []
        try:
            body(iteration)
            return self._capture
        finally:
            self._capture = None

    def _write_out(self, body: Callable[[int], None], count: int) -> None:
        self.unrolled += count - 1
        for i in range(1, count):
            body(i)

    def _close_body(self, loop_index: int, count: int, tag: str) -> None:
        """Make the body repeat the signals its next run waits for, and check it is periodic."""
        body = self._body
        end = len(self.raw)
        first = [i for i in range(body.first, body.end) if not self.fence[i]]
        if len(first) != end - body.start:
            raise LoweringError(f"internal: LOOP iterations 0 and 1 emit {len(first)} and "
                                f"{end - body.start} instructions ({tag})")
        position = {index: offset for offset, index in enumerate(first)}
        repeated = []
        for producer, sem in body.mirror:
            index = body.start + position[producer]
            if len(self.signals[index]) >= 2 or sem in self.signals[index]:
                raise _NotPeriodic()
            repeated.append((index, sem))
        for index, sem in repeated:
            self.signals[index].append(sem)
            self.pending.setdefault(sem, deque()).append(index)  # the last iteration's token
            self.last_token[sem] = max(self.last_token.get(sem, -1), index)
        self.raw[loop_index] = Loop(body=end - body.start, count=count - 1)
        for index in range(body.start, end):
            self.in_body[index] = True

    def _snapshot(self, captured: list) -> dict:
        bufs = {id(b): b for _, reads, writes in captured for b in (*reads, *writes)}
        return {
            "length": len(self.raw), "last": list(self.last), "channels": dict(self.channels),
            "pending": {s: deque(q) for s, q in self.pending.items()}, "last_token": dict(self.last_token),
            "fences": self.fence_count, "bufs": [(b, b.last_write, dict(b.reads)) for b in bufs.values()],
        }

    def _restore(self, saved: dict) -> None:
        length = saved["length"]
        for index, sem in self._body.touched:
            if index < length and sem in self.signals[index]:
                self.signals[index].remove(sem)
        for column in (self.raw, self.tags, self.engine, self.waits, self.signals, self.clocks, self.fence,
                       self.in_body, self.accesses):
            del column[length:]
        self.last, self.channels, self.pending = saved["last"], saved["channels"], saved["pending"]
        self.last_token, self.fence_count = saved["last_token"], saved["fences"]
        for buf, last_write, reads in saved["bufs"]:
            buf.last_write, buf.reads = last_write, reads

    # ---- internals ----------------------------------------------------------------------
    def _append(self, instruction: Instruction, tag: str, engine: int, waits: list[int], clock: list[int],
                fence: bool = False) -> int:
        index = len(self.raw)
        self.raw.append(instruction)
        self.tags.append(tag)
        self.engine.append(engine)
        self.waits.append(list(waits))
        self.signals.append([])
        self.clocks.append(clock)
        self.fence.append(fence)
        self.in_body.append(False)
        self.accesses.append(((), ()))
        if fence:
            self.fence_count += 1
        if engine != _CONTROL:
            self.last[engine] = index
        return index

    def _base_clock(self, engine: int) -> list[int]:
        previous = self.last[engine] if engine != _CONTROL else -1
        if previous < 0:
            return [-1] * _ENGINES
        clock = list(self.clocks[previous])
        clock[engine] = previous
        return clock

    def _periodic_base(self, engine: int) -> list[int]:
        """What a body instruction knows from its own queue: the previous instruction on it
        (in the body, with what that one knew; before it, just that it is done)."""
        previous = self.last[engine]
        if previous < 0:
            return [-1] * _ENGINES
        clock = self._periodic_of(previous)
        clock[engine] = max(clock[engine], previous)
        return clock

    def _periodic_of(self, index: int) -> list[int]:
        if index in self._body.periodic:
            return list(self._body.periodic[index])
        clock = [-1] * _ENGINES
        clock[self.engine[index]] = index
        return clock

    def _channel(self, producer: int, consumer: int) -> int | None:
        """The channel's semaphore; None once all 15 are taken by other engine pairs."""
        key = (producer, consumer)
        if key not in self.channels:
            if len(self.channels) >= MAX_SEMAPHORE:
                return None
            self.channels[key] = len(self.channels) + 1
        return self.channels[key]

    def _routed(self, producer: int, index: int, consumer: int, tag: str) -> tuple[list[int], int]:
        """No semaphore left for this engine pair: a fence on a hub engine that has channels to
        both waits for the producer and signals the consumer."""
        if self._body is not None:
            raise _NotPeriodic()
        for hub in _HUBS:
            if hub in (producer, consumer) or (producer, hub) not in self.channels \
                    or (hub, consumer) not in self.channels:
                continue
            waits, satisfied_by = self._tokens(producer, index, hub, tag)
            clock = self._base_clock(hub)
            _merge(clock, self.clocks[satisfied_by])
            clock[producer] = max(clock[producer], satisfied_by)
            while len(waits) > 2:
                self._append(_FENCES[hub](), tag, hub, waits[:2], list(clock), fence=True)
                waits = waits[2:]
            fence = self._append(_FENCES[hub](), tag, hub, waits, clock, fence=True)
            return self._signal(fence, (hub, consumer)), fence
        raise LoweringError(f"no semaphore left for {Engine(producer).name} -> {Engine(consumer).name} "
                            f"and no engine to route it through ({len(self.channels)} channels in use)")

    def _tokens(self, producer: int, index: int, consumer: int, tag: str) -> tuple[list[int], int]:
        """Waits that guarantee instruction `index` (on engine `producer`) has completed."""
        sem = self._channel(producer, consumer)
        if sem is None:
            return self._routed(producer, index, consumer, tag)
        queue = self.pending.get(sem)
        waits: list[int] = []
        while queue:
            token = queue.popleft()
            waits.append(sem)
            if token >= index:
                return waits, token
        # tokens are made in producer order: never older than the channel's newest one
        oldest = max(index, self.last_token.get(sem, -1) + 1)
        candidates = (index, self.last[producer]) if oldest == index else (self.last[producer],)
        source = next((i for i in candidates if i >= oldest and self._signalable(i, sem)), None)
        if source is None:
            if self._body is not None:
                raise _NotPeriodic()
            source = self._append(_FENCES[producer](), tag, producer, [], self._base_clock(producer), fence=True)
        return waits + self._signal(source, (producer, consumer)), source

    def _signal(self, source: int, key: tuple[int, int]) -> list[int]:
        sem = self.channels[key]
        self.signals[source].append(sem)
        self.last_token[sem] = max(self.last_token.get(sem, -1), source)
        body = self._body
        if body is not None and source < body.start:
            body.touched.append((source, sem))
            if source >= body.first:
                body.mirror.append((source, sem))
            else:
                raise _NotPeriodic()  # a body waiting on code before the loop would wait every time
        return [sem]

    def _signalable(self, index: int, sem: int) -> bool:
        if index < 0 or len(self.signals[index]) >= 2 or sem in self.signals[index]:
            return False
        return not self.in_body[index]

    def _drain_pending(self, tag: str) -> None:
        """Tokens left by earlier LOOP bodies are consumed before a new body, which must balance."""
        for (producer, consumer), sem in self.channels.items():
            queue = self.pending.get(sem)
            while queue:
                waits = [sem]
                last = queue.popleft()
                if queue:
                    waits.append(sem)
                    last = queue.popleft()
                clock = self._base_clock(consumer)
                _merge(clock, self.clocks[last])
                clock[producer] = max(clock[producer], last)
                self._append(_FENCES[consumer](), tag, consumer, waits, clock, fence=True)


def _need(needed: dict[int, int], access: tuple[int, int] | None, engine: int) -> None:
    if access is None:
        return
    producer, index = access
    if producer != engine and index > needed.get(producer, -1):
        needed[producer] = index


def _merge(clock: list[int], other: list[int]) -> None:
    for engine, index in enumerate(other):
        if index > clock[engine]:
            clock[engine] = index


def _with_strides(body: Instruction, later: Instruction, tag: str) -> Instruction:
    """`body` (iteration 1) with loop strides set from how `later` (iteration 2) moved."""
    if type(body) is not type(later):
        raise LoweringError(f"internal: LOOP body changes instruction type ({tag})")
    pairs = _STRIDES.get(type(body), ())
    if isinstance(body, Vector2D) and body.b_fixed:  # src_b stays put in every iteration
        pairs = tuple(p for p in pairs if p[0] != "src_b")
    address_fields = {name for name, _ in pairs}
    for name, _bits in body.FIELDS:
        if name not in address_fields and not name.endswith("stride") and getattr(body, name) != getattr(later, name):
            raise LoweringError(f"internal: LOOP body field {type(body).__name__}.{name} varies ({tag})")
    strides: dict[str, int] = {}
    for address, stride_field in pairs:
        step = getattr(later, address) - getattr(body, address)
        if not stride_field:
            if step:
                raise _StrideOverflow()   # an address that cannot move: write the loop out
            continue
        if step < 0:
            raise LoweringError(f"internal: LOOP stride of {type(body).__name__}.{address} is negative ({tag})")
        if strides.setdefault(stride_field, step) != step:
            raise LoweringError(f"internal: {type(body).__name__} operands advance by different strides ({tag})")
    widths = dict(body.FIELDS)
    if any(step >= 1 << widths[name] for name, step in strides.items()):
        raise _StrideOverflow()
    return dataclasses.replace(body, **strides) if strides else body


class _StrideOverflow(Exception):
    pass
