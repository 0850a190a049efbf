"""cocotb testbench of rtl/programmable/scratchpad.py: random traffic on every port at once.

Every cycle each write port writes a random word with a random byte mask (two ports never write
the same byte in one cycle: that is a program error) and each read port reads a random word of
a small window, so reads and writes of one word in one cycle are frequent. The model is
deliberately naive: a numpy byte array; a read returns the word as it was before the cycle's
writes, except on the transparent port, which returns it after them; with `en` low a port holds
its data. Every read port is compared every cycle.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from testbenches.dma import start_clock
from testbenches.runner import load_inputs, write_outputs


@cocotb.test()
async def random_traffic(dut):
    spec = load_inputs()
    word_bytes, words, window = spec["word_bytes"], spec["words"], spec["window"]
    reads, writes, transparent = spec["reads"], spec["writes"], set(spec["transparent"])
    rng = random.Random(spec["seed"])
    memory = np.zeros(words * word_bytes, dtype=np.uint8)
    await start_clock(dut)
    port = {name: {x: getattr(dut, f"read_{name}__{x}") for x in ("en", "addr", "data")} for name in reads}
    port.update({name: {x: getattr(dut, f"write_{name}__{x}") for x in ("en", "addr", "data", "mask")}
                 for name in writes})
    for name in [*reads, *writes]:
        port[name]["en"].value = 0
    expected: dict[str, int | None] = {name: None for name in reads}
    checked = 0
    for _ in range(spec["cycles"]):
        await FallingEdge(dut.clk)
        # drive this cycle's requests: they take effect at the next rising edge
        taken = np.zeros(len(memory), dtype=bool)
        planned = []
        for name in writes:
            en = rng.random() < 0.7
            addr = rng.randrange(window)
            mask = rng.getrandbits(word_bytes)
            data = rng.getrandbits(8 * word_bytes)
            lanes = [i for i in range(word_bytes) if mask >> i & 1 and not taken[addr * word_bytes + i]]
            mask = sum(1 << i for i in lanes)
            for i in lanes:
                taken[addr * word_bytes + i] = en
            port[name]["en"].value, port[name]["addr"].value = int(en), addr
            port[name]["data"].value, port[name]["mask"].value = data, mask
            if en:
                planned.append((addr, data, mask))
        before = memory.copy()
        for addr, data, mask in planned:
            raw = data.to_bytes(word_bytes, "little")
            for i in range(word_bytes):
                if mask >> i & 1:
                    memory[addr * word_bytes + i] = raw[i]
        following = dict(expected)
        for name in reads:
            en = rng.random() < 0.7
            addr = rng.randrange(window)
            port[name]["en"].value, port[name]["addr"].value = int(en), addr
            if en:
                source = memory if name in transparent else before
                following[name] = int.from_bytes(source[addr * word_bytes:(addr + 1) * word_bytes].tobytes(),
                                                  "little")
        # what the read ports show now comes from the previous cycle's requests
        await ReadOnly()
        for name in reads:
            if expected[name] is not None:
                got = int(port[name]["data"].value)
                assert got == expected[name], f"read port {name}: got {got:#x}, expected {expected[name]:#x}"
                checked += 1
        expected = following
    write_outputs("scratchpad", {"checked": checked})
