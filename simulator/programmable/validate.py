"""Checks that a program can run on a chip: ISA subset, precisions, splits, SRAM bounds, loops.

Every error names the instruction index and the field, so a lowering bug is found at once.
"""

from __future__ import annotations

from compiler.targets.programmable.isa import (
    INTEGER_VECTOR_OPS,
    SELECTION_OPS,
    Collective,
    DmaGather,
    DmaLoad,
    Gemm,
    GemmStrided,
    Halt,
    Instruction,
    Loop,
    Precision,
    Vector,
    Vector2D,
    VectorGather,
    VectorOp,
)
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable import selection
from simulator.programmable.costs.systolic import GemmShapeError, sub_array
from simulator.programmable.costs.vector import BINARY_OPS, REDUCTIONS


class ProgramError(ValueError):
    """A program the chip cannot run; the message names the instruction."""


_ELEMENT_BYTES = {p: p.bits / 8 for p in Precision}


def element_bytes(precision: Precision) -> float:
    return _ELEMENT_BYTES[precision]


def where(pc: int, ins: Instruction) -> str:
    note = f" ({ins.comment})" if ins.comment else ""
    return f"instruction {pc} {type(ins).__name__}{note}"


def check_subset(chip: ProgrammableChip, pc: int, ins: Instruction) -> None:
    """The integer subset: int8 GEMM into int32, int32 vector ops (REQUANT writes int8), DMA, LOOP, HALT."""
    if chip.isa_subset != "integer":
        return
    if isinstance(ins, (Collective, Vector2D, DmaGather, GemmStrided, VectorGather)):
        raise ProgramError(f"{where(pc, ins)}: {chip.name} implements the integer ISA subset, which has no "
                           f"{type(ins).__name__}")
    if isinstance(ins, Gemm):
        if ins.precision != Precision.INT8 or ins.acc_precision != Precision.INT32:
            raise ProgramError(f"{where(pc, ins)}: {chip.name} implements the integer ISA subset, GEMM must be "
                               f"int8 x int8 -> int32, got {ins.precision.label} -> {ins.acc_precision.label}")
    elif isinstance(ins, Vector):
        if ins.op not in INTEGER_VECTOR_OPS or ins.precision != Precision.INT32:
            raise ProgramError(f"{where(pc, ins)}: {chip.name} implements the integer ISA subset, vector ops "
                               f"{sorted(op.name for op in INTEGER_VECTOR_OPS)} on int32; got "
                               f"{ins.op.name} on {ins.precision.label}")


def sram_ranges(ins: Instruction) -> list[tuple[str, int, int, int]]:
    """(field, base address, bytes, per-iteration stride) of every SRAM operand."""
    if isinstance(ins, DmaLoad):
        return [("sram_addr", ins.sram_addr, ins.nbytes, ins.sram_loop_stride)]
    if isinstance(ins, GemmStrided):   # rows `ld` elements apart: first element to the end of the last
        eb, ab = element_bytes(ins.precision), element_bytes(ins.acc_precision)
        return [("a_addr", ins.a_addr, _extent(ins.m, ins.k, ins.lda, 1, eb), 0),
                ("b_addr", ins.b_addr, _extent(*((ins.n, ins.k) if ins.transpose_b else (ins.k, ins.n)),
                                               ins.ldb, 1, eb), 0),
                ("c_addr", ins.c_addr, _extent(ins.m, ins.n, ins.ldc, 1, ab), 0)]
    if isinstance(ins, Gemm):
        eb, ab = element_bytes(ins.precision), element_bytes(ins.acc_precision)
        return [("a_addr", ins.a_addr, int(ins.m * ins.k * eb), ins.a_loop_stride),
                ("b_addr", ins.b_addr, int(ins.k * ins.n * eb), ins.b_loop_stride),
                ("c_addr", ins.c_addr, int(ins.m * ins.n * ab), ins.c_loop_stride)]
    if isinstance(ins, Vector) and ins.op in SELECTION_OPS:
        return selection.sram_ranges(ins)
    if isinstance(ins, VectorGather):
        return selection.gather_ranges(ins)
    if isinstance(ins, Vector):
        eb = element_bytes(ins.precision)
        out = ins.length // max(ins.row_len, 1) if ins.op in REDUCTIONS else ins.length
        out_bytes = out if ins.op is VectorOp.REQUANT else int(out * eb)
        ranges = [("src_a", ins.src_a, int(ins.length * eb), ins.loop_stride),
                  ("dst", ins.dst, out_bytes, ins.loop_stride)]
        if ins.op in BINARY_OPS:
            ranges.append(("src_b", ins.src_b, int(ins.length * eb), ins.loop_stride))
        return ranges
    if isinstance(ins, Vector2D):
        eb = element_bytes(ins.precision)
        ranges = [("src_a", ins.src_a, _extent(ins.rows, ins.cols, ins.a_row_stride, ins.a_col_step, eb),
                   ins.loop_stride)]
        if ins.op in BINARY_OPS:
            ranges.append(("src_b", ins.src_b, _extent(ins.rows, ins.cols, ins.b_row_stride, ins.b_col_step, eb),
                           0 if ins.b_fixed else ins.loop_stride))
        cols = 1 if ins.op in REDUCTIONS else ins.cols
        ranges.append(("dst", ins.dst, _extent(ins.rows, cols, ins.dst_row_stride, 1, eb), ins.loop_stride))
        return ranges
    if isinstance(ins, DmaGather):
        return [("sram_addr", ins.sram_addr, ins.nbytes, 0), ("index_addr", ins.index_addr, ins.index_bytes, 0)]
    if isinstance(ins, Collective):
        return [("sram_addr", ins.sram_addr, ins.nbytes, 0)]
    return []


def _extent(rows: int, cols: int, row_stride: int, col_step: int, eb: float) -> int:
    """Bytes from an operand's first element to the end of its last (0 for an empty grid)."""
    if rows == 0 or cols == 0:
        return 0
    return int(((rows - 1) * row_stride + (cols - 1) * col_step + 1) * eb)


def check_shape(chip: ProgrammableChip, pc: int, ins: Instruction) -> None:
    """What depends on the instruction's shape only (cached per shape by plan.py)."""
    check_subset(chip, pc, ins)
    if isinstance(ins, Gemm) and ins.macs:
        try:
            sub_array(chip, ins.split, ins.precision.label)
        except GemmShapeError as exc:
            raise ProgramError(f"{where(pc, ins)}: {exc}") from None
        if ins.subarray >= (1 << ins.split):
            raise ProgramError(f"{where(pc, ins)}: subarray {ins.subarray} but split {ins.split} has only "
                               f"{1 << ins.split} sub-arrays")
    if isinstance(ins, Vector2D) and ins.op in {VectorOp.REQUANT, VectorOp.SHIFT} | SELECTION_OPS:
        raise ProgramError(f"{where(pc, ins)}: VECTOR_2D runs float ops; {ins.op.name} is a VECTOR op")
    if isinstance(ins, Vector) and ins.op in REDUCTIONS and ins.length and (
            ins.row_len <= 0 or ins.length % ins.row_len):
        raise ProgramError(f"{where(pc, ins)}: reduction length {ins.length} is not a multiple of "
                           f"row_len {ins.row_len}")
    problem = (selection.check(ins) if isinstance(ins, Vector) and ins.op in SELECTION_OPS
               else selection.check_gather(ins) if isinstance(ins, VectorGather) else None)
    if problem:
        raise ProgramError(f"{where(pc, ins)}: {problem}")
    if isinstance(ins, Collective) and ins.chips > chip.links.chips:
        raise ProgramError(f"{where(pc, ins)}: collective over {ins.chips} chips, {chip.name} links "
                           f"{chip.links.chips} (links.chips)")


def check_bounds(chip: ProgrammableChip, pc: int, ins: Instruction, iterations: int,
                 ranges: list[tuple[str, int, int, int]]) -> None:
    """Every SRAM operand, in the loop's last iteration too, lies inside the chip's SRAM."""
    size = chip.memory.sram_bytes
    for name, base, nbytes, stride in ranges:
        last = base + (iterations - 1) * stride + nbytes
        if last > size:
            raise ProgramError(f"{where(pc, ins)}: {name} reaches SRAM byte {last:,} (base {base:,}, {nbytes:,} bytes, "
                               f"loop stride {stride:,} x {iterations - 1}), beyond memory.sram_bytes {size:,}")


def check_instruction(chip: ProgrammableChip, pc: int, ins: Instruction, iterations: int) -> None:
    check_shape(chip, pc, ins)
    check_bounds(chip, pc, ins, iterations, sram_ranges(ins))


def check_loop(program_len: int, pc: int, loop: Loop, body: list[Instruction]) -> None:
    if loop.body < 1 or pc + loop.body >= program_len:
        raise ProgramError(f"instruction {pc} Loop: body of {loop.body} instructions runs past the end of the "
                           f"{program_len}-instruction program")
    for offset, ins in enumerate(body, start=pc + 1):
        if isinstance(ins, (Loop, Halt)):
            raise ProgramError(f"instruction {offset} {type(ins).__name__} inside the body of the Loop at {pc}: "
                               "loops do not nest and a body cannot halt")
