"""First-fit allocation of SRAM or HBM bytes that remembers who last touched freed bytes.

Reusing bytes is a hazard: the next owner's first write must wait for the last reads and
writes of the previous owners, so a freed block keeps their newest access per engine and
passes it to whoever is carved from it.
"""

from __future__ import annotations

from compiler.targets.programmable.emitter import Buf

ALIGN_BYTES = 64  # one DMA burst / SRAM line; keeps every tensor line-aligned


def align(nbytes: int, to: int = ALIGN_BYTES) -> int:
    return -(-nbytes // to) * to


class Arena:
    def __init__(self, space: str, base: int, size: int) -> None:
        self.space = space
        self.base = base
        self.size = size
        # free blocks sorted by address: [addr, nbytes, {engine: newest access}]
        self.free: list[list] = [[base, size, {}]] if size > 0 else []
        self.in_use = 0
        self.high_water = 0
        self.top = base  # the highest byte address ever handed out, plus one

    @property
    def end(self) -> int:
        return self.base + self.size

    def largest_free(self) -> int:
        return max((block[1] for block in self.free), default=0)

    def alloc(self, nbytes: int, name: str) -> Buf | None:
        """A Buf of `nbytes` (rounded up to a line), or None when no free block is big enough."""
        want = align(max(nbytes, 1))
        for i, (addr, size, history) in enumerate(self.free):
            if size >= want:
                if size == want:
                    del self.free[i]
                else:
                    self.free[i] = [addr + want, size - want, dict(history)]
                self.in_use += want
                self.high_water = max(self.high_water, self.in_use)
                self.top = max(self.top, addr + want)
                return Buf(name, self.space, addr, want, reads=dict(history))
        return None

    def alloc_unused(self, nbytes: int, name: str) -> Buf | None:
        """A Buf of bytes never handed out before (from `top` up): they still hold what a memory
        image put there at program start. None when the arena has no such bytes left."""
        want = align(max(nbytes, 1))
        for i, (addr, size, history) in enumerate(self.free):
            start = max(addr, self.top)
            if addr + size - start < want:
                continue
            pieces = [[addr, start - addr, history]] if start > addr else []
            if addr + size > start + want:
                pieces.append([start + want, addr + size - start - want, {}])
            self.free[i:i + 1] = pieces
            self.in_use += want
            self.high_water = max(self.high_water, self.in_use)
            self.top = start + want
            return Buf(name, self.space, start, want)
        return None

    def release(self, buf: Buf) -> None:
        history = buf.accesses()
        self.in_use -= buf.nbytes
        block = [buf.addr, buf.nbytes, history]
        index = 0
        while index < len(self.free) and self.free[index][0] < buf.addr:
            index += 1
        self.free.insert(index, block)
        # coalesce with the neighbours; a merged block remembers every owner's newest access
        if index + 1 < len(self.free) and block[0] + block[1] == self.free[index + 1][0]:
            following = self.free.pop(index + 1)
            block[1] += following[1]
            _union(block[2], following[2])
        if index > 0 and self.free[index - 1][0] + self.free[index - 1][1] == block[0]:
            previous = self.free[index - 1]
            previous[1] += block[1]
            _union(previous[2], block[2])
            del self.free[index]


def _union(into: dict[int, int], other: dict[int, int]) -> None:
    for engine, index in other.items():
        if index > into.get(engine, -1):
            into[engine] = index
