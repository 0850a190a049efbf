"""The GEMM engine's resources: which arrays' sub-arrays are busy, and a scoreboard of the SRAM
ranges that GEMMs in flight read and write.

Issue is in program order. A GEMM with split s on sub-array j occupies sub-array j on
n = min(arrays_per_chip, tiles) arrays (a GEMM with fewer weight tiles than the chip has arrays
leaves the rest idle, as costs/systolic.py times it). The next GEMM may start while earlier ones
run when enough arrays have its sub-array free and its operands do not overlap theirs: no
read-after-write, write-after-read or write-after-write on SRAM bytes. So a program that is
correct when its GEMMs run one after another (an accumulation chain into one C, say) stays
correct, and independent small GEMMs (attention over many KV blocks and heads on a 528-array
GPU preset) overlap as they do on the hardware. Retirement stays in order (engine.py).

Arrays are allocated first-fit; with one way per array (no split) only their count matters.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from simulator.programmable.plan import OpCost

Span = tuple[int, int]      # [start, end) SRAM bytes


class GemmUnit:
    __slots__ = ("masks", "free", "ops", "writes", "reads", "read_counts", "read_lengths", "max_read")

    def __init__(self, arrays: int, ways: int) -> None:
        self.masks = [0] * arrays if ways > 1 else None   # busy sub-array slices per array
        self.free = arrays                                 # free arrays when there is no split
        self.ops = 0                                       # GEMMs in flight
        # Writes in flight never overlap (that would be a WAW hazard), so sorted by start their
        # ends increase too and one bisection finds the only candidate. Reads may overlap each
        # other: they are kept sorted and distinct, with the longest length to bound a search.
        self.writes: list[Span] = []
        self.reads: list[Span] = []
        self.read_counts: dict[Span, int] = {}
        self.read_lengths: dict[int, int] = {}
        self.max_read = 0

    def try_issue(self, c: OpCost, it: int) -> tuple | None:
        """Claim arrays for `c` in iteration `it`; None when they are busy or a hazard blocks it.
        The claim is (arrays taken, operand ranges) and becomes the op's `gemm` field."""
        ranges = c.gemm_ranges(it)
        if self.ops and self._hazard(ranges):
            return None
        n = c.arrays
        if self.masks is None:
            if self.free < n:
                return None
            self.free -= n
            return (n, ranges)
        taken = [i for i, mask in enumerate(self.masks) if not mask & c.slices][:n]
        if len(taken) < n:
            return None
        for i in taken:
            self.masks[i] |= c.slices
        return (tuple(taken), ranges)

    def _hazard(self, ranges: tuple[Span, ...]) -> bool:
        writes = self.writes
        if writes:
            for lo, hi in ranges:                  # RAW (reads) and WAW (the write)
                i = bisect_left(writes, (hi,)) - 1  # the last write starting before `hi`
                if i >= 0 and writes[i][1] > lo and hi > lo:
                    return True
        reads = self.reads
        lo, hi = ranges[-1]
        if reads and hi > lo:                      # WAR: the write against reads in flight
            first = bisect_left(reads, (lo - self.max_read + 1,))
            last = bisect_left(reads, (hi,))
            for k in range(first, last):
                if reads[k][1] > lo:
                    return True
        return False

    def start(self, op) -> None:
        self.ops += 1
        ranges = op.gemm[1]
        insort(self.writes, ranges[-1])
        for span in ranges[:-1]:
            count = self.read_counts.get(span, 0)
            self.read_counts[span] = count + 1
            if not count:
                insort(self.reads, span)
                length = span[1] - span[0]
                self.read_lengths[length] = self.read_lengths.get(length, 0) + 1
                self.max_read = max(self.max_read, length)

    def release(self, op) -> None:
        self.ops -= 1
        claim, ranges = op.gemm
        del self.writes[bisect_left(self.writes, ranges[-1])]
        for span in ranges[:-1]:
            count = self.read_counts[span] - 1
            if count:
                self.read_counts[span] = count
                continue
            del self.read_counts[span]
            del self.reads[bisect_left(self.reads, span)]
            length = span[1] - span[0]
            left = self.read_lengths[length] - 1
            if left:
                self.read_lengths[length] = left
            else:
                del self.read_lengths[length]
                if length == self.max_read:
                    self.max_read = max(self.read_lengths, default=0)
        if self.masks is None:
            self.free += claim
        else:
            for i in claim:
                self.masks[i] &= ~op.cost.slices

    def move(self, op, ranges: tuple[Span, ...]) -> None:
        """Re-file a GEMM in flight whose loop iteration was shifted (steady-state jumps)."""
        claim = op.gemm[0]
        self.release(op)
        if self.masks is None:
            self.free -= claim
        else:
            for i in claim:
                self.masks[i] |= op.cost.slices
        op.gemm = (claim, ranges)
        self.start(op)

    def state(self) -> tuple:
        """What the steady-state key needs beyond the ops in flight: which arrays they hold."""
        return tuple(self.masks) if self.masks is not None else (self.free,)
