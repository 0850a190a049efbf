"""Shared by the value tests of the programmable target: the fp32 chip they lower for, and one
functional run of a lowered program from the memory images of given inputs."""

from __future__ import annotations

import dataclasses

import numpy as np

from compiler.targets.programmable.image import hbm_image, read_outputs, sram_image
from compiler.targets.programmable.options import LoweringOptions
from simulator.hardware import load_hardware
from simulator.programmable import run_functional


def fp32_chip():
    """matx-one with an fp32 matrix path (fp32 at a quarter of the bf16 MAC rate): the functional
    runs are checked in float32; one chip (functional mode does not run the other chips)."""
    chip = load_hardware("matx-one")
    macs = {**chip.systolic.macs_per_pe_per_cycle, "fp32": 1}
    energy = {**chip.energy.pj_per_mac, "fp32": 3.6}
    return dataclasses.replace(chip, name="matx-one-fp32",
                               systolic=dataclasses.replace(chip.systolic, macs_per_pe_per_cycle=macs),
                               energy=dataclasses.replace(chip.energy, pj_per_mac=energy))


def fp32_options(batch: int, bindings: dict[str, int]) -> LoweringOptions:
    return LoweringOptions(batch=batch, bindings=bindings, weight_precision="fp32", kv_precision="fp32",
                           activation_precision="fp32", tensor_parallel=1)


def chip_with_sram(sram_bytes: int):
    """The fp32 chip with another SRAM size (small: operands stream; a few MiB: small images)."""
    chip = fp32_chip()
    return dataclasses.replace(chip, memory=dataclasses.replace(chip.memory, sram_bytes=sram_bytes))


def run_program(program, graph, inputs, chip):
    """The functional run of `program` from the memory images of `inputs`, and the graph outputs
    read back from HBM after it."""
    hbm = np.frombuffer(hbm_image(program, graph, inputs), dtype=np.uint8).copy()
    sram = np.frombuffer(sram_image(program, graph, inputs), dtype=np.uint8).copy()
    result = run_functional(program, chip, hbm, sram)
    return result, read_outputs(program, result.hbm)
