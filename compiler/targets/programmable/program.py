"""A compiled program for the programmable target: instructions plus what they need to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.targets.programmable.isa import Instruction, encode_program


@dataclass(frozen=True)
class Region:
    """A named tensor placed in HBM or SRAM."""

    name: str
    space: str  # "hbm" or "sram"
    addr: int
    nbytes: int


@dataclass
class Program:
    """Instructions in program order, each tagged with the layer kind it belongs to
    ("attention", "mlp", "norm", "embed", "lm_head", "ssm", "collective", ...), so the
    simulator can report time and bytes per layer kind. `regions` is the memory plan."""

    instructions: list[Instruction] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    regions: dict[str, Region] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def emit(self, instruction: Instruction, tag: str) -> Instruction:
        self.instructions.append(instruction)
        self.tags.append(tag)
        return instruction

    def binary(self) -> bytes:
        return encode_program(self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)
