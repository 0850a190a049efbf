"""Amaranth layouts of the ISA's 256-bit instructions, derived from `isa.py` (never re-typed).

`isa.encode` packs the 24-bit header and then each class's `FIELDS` from bit 0 up; an Amaranth
`StructLayout` lays its members out in declaration order from bit 0 too, so a layout built from
the same lists decodes the same bits. `tests/rtl/test_isa_layout.py` checks that on encoded
instructions.
"""

from __future__ import annotations

from amaranth.lib import data

from compiler.targets.programmable import isa

HEADER_FIELDS: tuple[tuple[str, int], ...] = (
    ("opcode", 4), ("engine", 4), ("wait0", 4), ("wait1", 4), ("signal0", 4), ("signal1", 4),
)
assert HEADER_FIELDS == isa._HEADER, "isa.py changed its header; update HEADER_FIELDS"

HEADER_BITS = sum(bits for _, bits in HEADER_FIELDS)
Header = data.StructLayout(dict(HEADER_FIELDS))


def instruction_layout(cls: type[isa.Instruction]) -> data.StructLayout:
    """Header + the class's fields + padding to 256 bits."""
    members = dict(HEADER_FIELDS)
    members.update({name: bits for name, bits in cls.FIELDS})
    used = sum(members.values())
    if used < isa.INSTRUCTION_BITS:
        members["_pad"] = isa.INSTRUCTION_BITS - used
    return data.StructLayout(members)


DmaLayout = instruction_layout(isa.DmaLoad)        # DMA_STORE has the same fields
GemmLayout = instruction_layout(isa.Gemm)
VectorLayout = instruction_layout(isa.Vector)
LoopLayout = instruction_layout(isa.Loop)


def field_offsets(cls: type[isa.Instruction]) -> dict[str, tuple[int, int]]:
    """name -> (bit offset, width) in the 256-bit word, header included (for testbenches)."""
    offsets, at = {}, 0
    for name, bits in (*HEADER_FIELDS, *cls.FIELDS):
        offsets[name] = (at, bits)
        at += bits
    return offsets
