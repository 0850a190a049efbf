"""RotaryEmbedding (rotate-half RoPE) on the vector unit with strided VECTOR_2D ops.

    out[:h]  = x[:h] * cos - x[h:r] * sin        (h = rotary_dim / 2, r = rotary_dim)
    out[h:r] = x[h:r] * cos + x[:h] * sin
    out[r:]  = x[r:]

x is [batch, heads, seq, head_dim] (or [batch, seq, heads * head_dim] with `num_heads`), cos and
sin are [batch, seq, h]. Each half is a strided operand of a VECTOR_2D (row stride head_dim), the
tables are read in place (row stride h, or 0 when seq = 1 so one row serves every head), and
heads repeat as a LOOP whose table operand stays put (`b_fixed`). Six multiply/add ops over
half a row each: the same lane work as three passes over x.
"""

from __future__ import annotations

import math

from compiler.ir.graph import Node
from compiler.targets.programmable.context import Lowerer
from compiler.targets.programmable.isa import Vector2D, VectorOp
from compiler.targets.programmable.vector import GRID_LIMIT, run_steps

V = VectorOp
# (op, a, b, dst): "x1"/"x2" the halves of x, "o1"/"o2" of out, "t" a scratch half, "c"/"s" the tables
_STEPS = (
    (V.MUL, "x1", "c", "o1"), (V.MUL, "x2", "s", "t"), (V.SUB, "o1", "t", "o1"),
    (V.MUL, "x2", "c", "o2"), (V.MUL, "x1", "s", "t"), (V.ADD, "o2", "t", "o2"),
)
_STAND_IN = [(V.MUL, "elem", "in0", "in1", "out"), (V.COPY, "elem", "in0", "in0", "tmp"),
             (V.MUL, "elem", "tmp", "in2", "tmp"), (V.ADD, "elem", "out", "tmp", "out")]


def lower_rotary(lw: Lowerer, node: Node) -> None:
    x, cos, sin = (lw.value(name) for name in node.inputs[:3])
    out = lw.new_value(node.outputs[0])
    shape = lw.local_shape(node.inputs[0])
    if len(shape) == 4:
        batch, heads, seq, dim = shape
    else:
        heads = node.attr("num_heads")
        batch, seq, dim = shape[0], shape[1], shape[2] // heads
    rotary = node.attr("rotary_embedding_dim", 0) or dim
    half = rotary // 2
    reason = None
    if node.input(3):
        reason = "indexed load (position_ids into cos/sin tables)"
        lw.gap(reason)
    elif node.attr("interleaved", 0):
        reason = "interleaved RoPE (pairs at stride 2)"
        lw.inexact(f"{node.name}: {reason} is timed as three passes over x")
    elif any(v.space != "sram" for v in (x, cos, sin, out)) or max(seq * heads, dim) > GRID_LIMIT:
        reason = "RoPE operands outside SRAM"
        lw.inexact(f"{node.name}: {reason} are timed as three streamed passes over x")
    if reason is not None:
        rows = max(1, out.numel // out.shape[-1])
        run_steps(lw, _STAND_IN, [x, cos, sin], out, rows, out.shape[-1])
        return
    e = x.bits // 8
    tmp = lw.staging(math.ceil(x.numel * 4), f"{node.name}:rotate")
    table_rows = {"c": cos, "s": sin}
    for b in range(batch):
        table = b * seq * half * e
        if len(shape) == 3:  # rows (seq) of one head at stride heads * dim; heads loop
            base, rows, row_stride, step, count = b * seq * heads * dim * e, seq, heads * dim, dim * e, heads
            table_stride = half
        elif seq == 1:  # one table row for every head
            base, rows, row_stride, step, count = b * heads * dim * e, heads, dim, 0, 1
            table_stride = 0
        else:  # rows (seq) of one head; heads loop
            base, rows, row_stride, step, count = b * heads * seq * dim * e, seq, dim, seq * dim * e, heads
            table_stride = half

        def one_head(i: int, base=base, rows=rows, row_stride=row_stride, step=step, table=table,
                     table_stride=table_stride) -> None:
            where = {"x1": (x.buf, x.addr + base + i * step, row_stride),
                     "x2": (x.buf, x.addr + base + i * step + half * e, row_stride),
                     "o1": (out.buf, out.addr + base + i * step, row_stride),
                     "o2": (out.buf, out.addr + base + i * step + half * e, row_stride),
                     "t": (tmp, tmp.addr + base + i * step, row_stride)}
            where.update({k: (v.buf, v.addr + table, table_stride) for k, v in table_rows.items()})
            for op, a, b_ref, dst in _STEPS:
                fixed = b_ref in ("c", "s")  # the tables serve every head of the loop
                emit_2d(lw, op, where[a], where[b_ref], where[dst], rows, half, x.precision, b_fixed=fixed)
            if rotary < dim:
                emit_2d(lw, V.COPY, _shifted(where["x1"], rotary * e), where["x1"], _shifted(where["o1"], rotary * e),
                        rows, dim - rotary, x.precision)

        lw.loop(count, one_head)
    lw.unstage(tmp)


def _shifted(operand: tuple, nbytes: int) -> tuple:
    buf, addr, stride = operand
    return buf, addr + nbytes, stride


def emit_2d(lw: Lowerer, op: VectorOp, a: tuple, b: tuple, dst: tuple, rows: int, cols: int, precision,
            b_fixed: bool = False) -> None:
    """One VECTOR_2D over rows x cols; operands are (buf, addr, row stride in elements)."""
    (a_buf, a_addr, a_stride), (b_buf, b_addr, b_stride), (d_buf, d_addr, d_stride) = a, b, dst
    lw.emit(Vector2D(op=op, precision=precision, src_a=a_addr, src_b=b_addr, dst=d_addr, rows=rows, cols=cols,
                     a_row_stride=a_stride, b_row_stride=b_stride, dst_row_stride=d_stride, b_fixed=b_fixed),
            reads=[a_buf, b_buf], writes=[d_buf])

