"""The scratchpad on Icarus: several read and write ports at once under random traffic behave like
a byte array with registered reads (old data on a same-cycle write, new data on the transparent
port), and the generator refuses port lists it cannot build."""

from __future__ import annotations

import pytest

from rtl.programmable.config import CoreConfig, RtlConfigError
from rtl.programmable.scratchpad import Scratchpad
from simulator.hardware import load_hardware
from testbenches.runner import build, read_outputs, run_cocotb

READS, WRITES, TRANSPARENT = ("a", "b", "store"), ("x", "y", "z"), ("store",)


@pytest.fixture(scope="module")
def config() -> CoreConfig:
    return CoreConfig.from_chip(load_hardware("matx-tiny"))


@pytest.mark.rtl
def test_scratchpad_ports_under_random_traffic(config, tmp_path_factory):
    built = build("scratchpad", lambda: Scratchpad(config, READS, WRITES, TRANSPARENT), key={"config": repr(config)})
    test_dir = tmp_path_factory.mktemp("scratchpad")
    cycles = 600
    run_cocotb(built, "testbenches.scratchpad", test_dir, inputs={
        "word_bytes": config.word_bytes, "words": config.sram_words, "window": 4, "reads": READS, "writes": WRITES,
        "transparent": TRANSPARENT, "seed": 5, "cycles": cycles})
    assert read_outputs(test_dir, "scratchpad")["checked"] > cycles      # each port compared most cycles


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_scratchpad_refuses_bad_port_lists(config):
    with pytest.raises(RtlConfigError, match="named uniquely"):
        Scratchpad(config, ("a", "a"), ("x",))
    with pytest.raises(RtlConfigError, match=r"transparent ports \['x'\] are not read ports"):
        Scratchpad(config, ("a",), ("x",), transparent=("x",))
