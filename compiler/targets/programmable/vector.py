"""Vector-unit kernels: a recipe of VECTOR ops per IR op, run by vector_steps.run_steps in place in
SRAM or streamed, with numpy broadcasting of every operand.

A recipe lists (op, length, a, b, dst[, imm]): length "elem" covers every element, "row" one
value per row (per-row scalars such as a norm's 1/rms), "reduce" reduces rows of `row_len`
into per-row values. Operands name the op's inputs ("in0".."in2"), its output ("out"), an
elementwise scratch ("tmp") and a per-row scratch ("row"); `imm` is the operand of an *_IMM op
(float32 bits on floats, a signed 32-bit integer on integers).

Element types. A value is stored in its own type: floats in their precision, int64 as 8-byte
and int32 as 4-byte integers, bool as one byte holding 0 or 1 (what memory images hold for
graph inputs and outputs). Arithmetic runs in the output's type (int64 lanes for position ids
and Engram's hash; IDIV truncates toward zero and IMOD takes the divisor's sign, as ONNX Div and
Mod on integers). Comparisons run in their inputs' type and write 1 / 0, CONVERTed to the bool
bytes; And / Or / Xor / Not run on the bytes (int8 lanes: MUL, MAX, |a - b|, 1 - a); Where
copies its `else` branch and SELECTs the `then` branch where the condition (CONVERTed to the
output's type once, at its own size) is nonzero. Casts CONVERT (float to integer truncates);
a cast to bool is x != 0 (NaN included).

Ops the ISA has no instruction for are lowered as a cost-equivalent stand-in and recorded in
`program.meta["isa_gaps"]` (the functional run refuses such programs).
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.targets.programmable.context import Lowerer, Value
from compiler.targets.programmable.isa import Precision, Vector, Vector2D, VectorOp, f32_bits
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.vector_steps import (  # noqa: F401 (the kernels' shared limits)
    DMA_CHUNK_BYTES,
    GRID_LIMIT,
    LENGTH_LIMIT,
    Step,
    operand_mode,
    run_steps,
    same_kind,
    storage,
)

V = VectorOp
E, R, D = "elem", "row", "reduce"

_UNARY: dict[Op, list[Step]] = {
    Op.NEG: [(V.NEG, E, "in0", "in0", "out")],
    Op.EXP: [(V.EXP, E, "in0", "in0", "out")],
    Op.LOG: [(V.LOG, E, "in0", "in0", "out")],
    Op.COS: [(V.COS, E, "in0", "in0", "out")],
    Op.SIN: [(V.SIN, E, "in0", "in0", "out")],
    Op.RECIPROCAL: [(V.RECIPROCAL, E, "in0", "in0", "out")],
    Op.SQRT: [(V.RSQRT, E, "in0", "in0", "out"), (V.RECIPROCAL, E, "out", "out", "out")],
    Op.RELU: [(V.MAX_IMM, E, "in0", "in0", "out", 0.0)],
    # 1 / (1 + exp(-x))
    Op.SIGMOID: [(V.NEG, E, "in0", "in0", "out"), (V.EXP, E, "out", "out", "out"),
                 (V.ADD_IMM, E, "out", "out", "out", 1.0), (V.RECIPROCAL, E, "out", "out", "out")],
    # 2 / (1 + exp(-2x)) - 1
    Op.TANH: [(V.MUL_IMM, E, "in0", "in0", "out", -2.0), (V.EXP, E, "out", "out", "out"),
              (V.ADD_IMM, E, "out", "out", "out", 1.0), (V.RECIPROCAL, E, "out", "out", "out"),
              (V.MUL_IMM, E, "out", "out", "out", 2.0), (V.ADD_IMM, E, "out", "out", "out", -1.0)],
    Op.ABS: [(V.ABS, E, "in0", "in0", "out")],
    Op.SOFTPLUS: [(V.EXP, E, "in0", "in0", "out"), (V.ADD_IMM, E, "out", "out", "out", 1.0),
                  (V.LOG, E, "out", "out", "out")],
    Op.CAST: [(V.COPY, E, "in0", "in0", "out")],
    Op.CAST_LIKE: [(V.COPY, E, "in0", "in0", "out")],
}
_BINARY: dict[Op, list[Step]] = {
    Op.ADD: [(V.ADD, E, "in0", "in1", "out")],
    Op.SUB: [(V.SUB, E, "in0", "in1", "out")],
    Op.MUL: [(V.MUL, E, "in0", "in1", "out")],
    Op.MAX: [(V.MAX, E, "in0", "in1", "out")],
    # a * (1 / b) on floats
    Op.DIV: [(V.RECIPROCAL, E, "in1", "in1", "tmp"), (V.MUL, E, "in0", "tmp", "out")],
    Op.MIN: [(V.MIN, E, "in0", "in1", "out")],
    Op.CLIP: [(V.MAX, E, "in0", "in1", "out"), (V.MIN, E, "out", "in2", "out")],
}
# Integer division and remainder (ONNX: Div truncates toward zero; Mod fmod=0 takes the divisor's
# sign, fmod=1 the dividend's: a - trunc(a / b) * b)
_INTEGER_DIV: list[Step] = [(V.IDIV, E, "in0", "in1", "out")]
_INTEGER_MOD: list[Step] = [(V.IMOD, E, "in0", "in1", "out")]
_INTEGER_FMOD: list[Step] = [(V.IDIV, E, "in0", "in1", "tmp"), (V.MUL, E, "tmp", "in1", "tmp"),
                             (V.SUB, E, "in0", "tmp", "out")]
# Comparisons in their inputs' type, writing 1 / 0 (a > b is b < a)
_COMPARE: dict[Op, list[Step]] = {
    Op.EQUAL: [(V.CMP_EQ, E, "in0", "in1", "out")],
    Op.LESS: [(V.CMP_LT, E, "in0", "in1", "out")],
    Op.LESS_OR_EQUAL: [(V.CMP_LE, E, "in0", "in1", "out")],
    Op.GREATER: [(V.CMP_LT, E, "in1", "in0", "out")],
    Op.GREATER_OR_EQUAL: [(V.CMP_LE, E, "in1", "in0", "out")],
}
_ONE_MINUS_OUT: list[Step] = [(V.MUL_IMM, E, "out", "out", "out", -1), (V.ADD_IMM, E, "out", "out", "out", 1)]
# Boolean logic on the 0 / 1 bytes
_LOGIC: dict[Op, list[Step]] = {
    Op.AND: [(V.MUL, E, "in0", "in1", "out")],
    Op.OR: [(V.MAX, E, "in0", "in1", "out")],
    Op.XOR: [(V.SUB, E, "in0", "in1", "out"), (V.ABS, E, "out", "out", "out")],
    Op.NOT: [(V.COPY, E, "in0", "in0", "out"), *_ONE_MINUS_OUT],
}
# NaN is the one value unequal to itself
_IS_NAN: list[Step] = [(V.CMP_EQ, E, "in0", "in0", "out"), *_ONE_MINUS_OUT]
# x != 0: x * 0 is 0, or NaN for an infinity or NaN, which then compare unequal too
_NONZERO: list[Step] = [(V.MUL_IMM, E, "in0", "in0", "tmp", 0), (V.CMP_EQ, E, "in0", "tmp", "out"), *_ONE_MINUS_OUT]
_WHERE: list[Step] = [(V.COPY, E, "in2", "in2", "out"), (V.SELECT, E, "in0", "in1", "out")]
# Ops with no VECTOR instruction: (missing capability, stand-in recipe of the same cost class).
_STAND_INS: dict[Op, tuple[str, list[Step]]] = {
    Op.ERF: ("ERF", [(V.MUL, E, "in0", "in0", "out"), (V.EXP, E, "out", "out", "out"),
                     (V.ADD, E, "out", "out", "out"), (V.RECIPROCAL, E, "out", "out", "out")]),
    Op.GELU: ("ERF", [(V.MUL, E, "in0", "in0", "tmp"), (V.MUL, E, "tmp", "in0", "tmp"),
                      (V.ADD, E, "tmp", "in0", "tmp"), (V.EXP, E, "tmp", "tmp", "tmp"),
                      (V.ADD, E, "tmp", "tmp", "tmp"), (V.RECIPROCAL, E, "tmp", "tmp", "tmp"),
                      (V.MUL, E, "in0", "tmp", "out")]),
    Op.SIGN: ("SIGN/ROUND", [(V.COPY, E, "in0", "in0", "out")]),
    Op.FLOOR: ("SIGN/ROUND", [(V.COPY, E, "in0", "in0", "out")]),
    Op.CEIL: ("SIGN/ROUND", [(V.COPY, E, "in0", "in0", "out")]),
    Op.ROUND: ("SIGN/ROUND", [(V.COPY, E, "in0", "in0", "out")]),
    Op.MOD: ("float remainder (Mod on floats)", [(V.MUL, E, "in0", "in1", "tmp"), (V.SUB, E, "in0", "tmp", "out")]),
}
_SOFTMAX: list[Step] = [
    (V.REDUCE_MAX, D, "in0", "in0", "row"), (V.SUB, E, "in0", "row", "out"), (V.EXP, E, "out", "out", "out"),
    (V.REDUCE_SUM, D, "out", "out", "row"), (V.RECIPROCAL, R, "row", "row", "row"), (V.MUL, E, "out", "row", "out"),
]
_SIGNED = frozenset({DType.INT8, DType.INT32, DType.INT64, DType.BOOL})


def _rms_norm(row_len: int, eps: float) -> list[Step]:
    """x * rsqrt(mean(x^2) + eps) * scale."""
    return [
        (V.MUL, E, "in0", "in0", "out"), (V.REDUCE_SUM, D, "out", "out", "row"),
        (V.MUL_IMM, R, "row", "row", "row", 1.0 / row_len), (V.ADD_IMM, R, "row", "row", "row", eps),
        (V.RSQRT, R, "row", "row", "row"), (V.MUL, E, "in0", "row", "out"), (V.MUL, E, "out", "in1", "out"),
    ]


def _layer_norm(row_len: int, eps: float) -> list[Step]:
    """(x - mean) * rsqrt(var + eps) * scale (+ bias, added by the caller)."""
    return [
        (V.REDUCE_SUM, D, "in0", "in0", "row"), (V.MUL_IMM, R, "row", "row", "row", 1.0 / row_len),
        (V.SUB, E, "in0", "row", "tmp"), (V.MUL, E, "tmp", "tmp", "out"), (V.REDUCE_SUM, D, "out", "out", "row"),
        (V.MUL_IMM, R, "row", "row", "row", 1.0 / row_len), (V.ADD_IMM, R, "row", "row", "row", eps),
        (V.RSQRT, R, "row", "row", "row"), (V.MUL, E, "tmp", "row", "out"), (V.MUL, E, "out", "in1", "out"),
    ]


def _is_inf(node: Node) -> list[Step]:
    """inf - inf is NaN, x - x is 0 for finite x: |x| = inf where x == x but x - x != x - x.
    With one sign only, the other side is clipped to 0 first."""
    positive, negative = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
    if not (positive or negative):
        return [(V.FILL, E, "in0", "in0", "out", 0)]
    clip = [] if positive and negative else [(V.MAX_IMM if positive else V.MIN_IMM, E, "in0", "in0", "out", 0.0)]
    x = "out" if clip else "in0"
    return clip + [(V.SUB, E, x, x, "tmp"), (V.CMP_EQ, E, "tmp", "tmp", "tmp"), (V.CMP_EQ, E, x, x, "out"),
                   (V.SUB, E, "out", "tmp", "out")]


def _reduce_steps(op: Op, row_len: int) -> list[Step]:
    return {
        Op.REDUCE_SUM: [(V.REDUCE_SUM, D, "in0", "in0", "out")],
        Op.REDUCE_MEAN: [(V.REDUCE_SUM, D, "in0", "in0", "out"), (V.MUL_IMM, R, "out", "out", "out", 1.0 / row_len)],
        Op.REDUCE_MAX: [(V.REDUCE_MAX, D, "in0", "in0", "out")],
        Op.REDUCE_MIN: [(V.NEG, E, "in0", "in0", "tmp"), (V.REDUCE_MAX, D, "tmp", "tmp", "out"),
                        (V.NEG, R, "out", "out", "out")],
    }[op]


_REDUCE = frozenset({Op.REDUCE_SUM, Op.REDUCE_MEAN, Op.REDUCE_MAX, Op.REDUCE_MIN})
_TESTS = frozenset({Op.IS_NAN, Op.IS_INF})

SUPPORTED_VECTOR_OPS = frozenset(_UNARY) | frozenset(_BINARY) | frozenset(_STAND_INS) | _REDUCE | frozenset(
    _COMPARE) | frozenset(_LOGIC) | _TESTS | {
    Op.WHERE, Op.POW, Op.SUM, Op.MEAN, Op.SOFTMAX, Op.LOG_SOFTMAX, Op.RMS_NORMALIZATION, Op.LAYER_NORMALIZATION,
    Op.ROTARY_EMBEDDING, Op.CUMSUM, Op.TOPK, Op.ARGMAX, Op.REDUCE_PROD,
}


def recipe_ops(op: Op) -> set[VectorOp]:
    """The VECTOR ops an elementwise IR op lowers to (stand-ins included; float forms)."""
    steps = (_UNARY.get(op) or _BINARY.get(op) or _COMPARE.get(op) or _LOGIC.get(op)
             or (_WHERE if op == Op.WHERE else None) or _STAND_INS.get(op, (None, []))[1])
    return {step[0] for step in steps}


def lower_vector(lw: Lowerer, node: Node) -> None:
    """Lower an elementwise, reduction or normalization node to VECTOR instructions."""
    op = node.op
    out_name = node.outputs[0]
    rows_axes = None
    steps: list[Step] | None = None
    make = None  # steps that depend on the row length
    compute_as = "out"  # the type the node computes in: its output's, its first input's, or int8
    integer = not lw.graph.type_of(node.inputs[0]).dtype.is_float
    if op in (Op.CAST, Op.CAST_LIKE):
        steps, compute_as = _cast_steps(lw, node)
    elif op == Op.DIV and integer:
        steps = _INTEGER_DIV
    elif op == Op.MOD and integer:
        steps = _INTEGER_FMOD if node.attr("fmod", 0) else _INTEGER_MOD
    elif op in _UNARY:
        steps = _UNARY[op]
    elif op in _BINARY:
        steps = _BINARY[op]
    elif op in _COMPARE:
        steps, compute_as = _COMPARE[op], "in0"
    elif op in _LOGIC:
        steps, compute_as = _LOGIC[op], "in0"
    elif op in _TESTS:
        steps, compute_as = (_IS_NAN if op == Op.IS_NAN else _is_inf(node)), "in0"
    elif op == Op.WHERE:
        steps = _WHERE
    elif op in _STAND_INS:
        gap, steps = _STAND_INS[op]
        lw.gap(gap)
    elif op == Op.POW:
        steps = _pow_steps(lw, node)
    elif op in (Op.SUM, Op.MEAN):
        steps = [(V.ADD, E, "in0", "in1" if i == 0 else "out", "out") for i in range(len(node.inputs) - 1)]
        steps += [(V.MUL_IMM, E, "out", "out", "out", 1.0 / len(node.inputs))] if op == Op.MEAN else []
        steps = steps or [(V.COPY, E, "in0", "in0", "out")]
    elif op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        steps = list(_SOFTMAX) + ([(V.LOG, E, "out", "out", "out")] if op == Op.LOG_SOFTMAX else [])
        rows_axes = {node.attr("axis", -1) % len(lw.shapes[node.inputs[0]])}
    elif op == Op.RMS_NORMALIZATION:
        rows_axes = _norm_axes(lw, node)
        make = lambda row_len: _rms_norm(row_len, float(node.attr("epsilon", 1e-5)))  # noqa: E731
    elif op == Op.LAYER_NORMALIZATION:
        rows_axes = _norm_axes(lw, node)
        bias = [(V.ADD, E, "out", "in2", "out")] if node.input(2) else []
        make = lambda row_len: _layer_norm(row_len, float(node.attr("epsilon", 1e-5))) + bias  # noqa: E731
    elif op == Op.ROTARY_EMBEDDING:
        from compiler.targets.programmable.rotary import lower_rotary

        lower_rotary(lw, node)
        return
    elif op in (Op.TOPK, Op.CUMSUM, Op.REDUCE_PROD, Op.ARGMAX):
        from compiler.targets.programmable.selection import lower_selection

        lower_selection(lw, node)  # the vector unit's selection ops (selection.py)
        return
    elif op in _REDUCE:
        rows_axes = reduce_axes(lw, node)
        make = lambda row_len: _reduce_steps(op, row_len)  # noqa: E731
    else:
        raise LoweringError(f"{node.describe()}: no vector lowering")
    _note_unsigned(lw, node)
    inputs = [lw.value(v) for v in node.inputs if v]
    out = lw.new_value(out_name)
    for extra in node.outputs[1:]:
        if extra:
            lw.alias(extra, out)
    # elementwise ops cover the (broadcast) output; reductions and norms their input's rows
    source_shape = lw.local_shape(node.inputs[0]) if rows_axes is not None else out.shape
    rows, row_len = _rows(source_shape, rows_axes)
    if make is not None:
        steps = make(row_len)
    if rows_axes is not None and not _trailing(rows_axes, len(source_shape)):
        if op in _REDUCE and _reduce_between(lw, inputs[0], out, rows_axes, op):
            return
        lw.inexact(f"{node.name}: a reduction over non-trailing axes {sorted(rows_axes)} is timed as a copy "
                   "and a trailing-axis reduction")
        steps = [(V.COPY, E, "in0", "in0", "tmp"), *[_renamed(s, "in0", "tmp") for s in steps]]
    compute = None if compute_as == "out" else storage(inputs[0])
    run_steps(lw, steps, inputs, out, rows, row_len, precision=compute)


def _reduce_between(lw: Lowerer, x: Value, out: Value, axes: set[int], op: Op) -> bool:
    """A reduction over a run of axes with others after it: x as [outer, m, inner], halved in
    pairs, each level one VECTOR_2D over [outer, pairs * inner] (slice i with slice i + ceil(m/2);
    the middle slice of an odd count copied beside them), levels alternating between two SRAM
    scratch tiles, the last written into the output: log2(m) instructions doing what a reduction
    does, m - 1 combines per result. In SRAM only (False otherwise: the caller times it)."""
    shape = tuple(x.shape)
    first, last = min(axes), max(axes) + 1
    if axes != set(range(first, last)) or x.space != "sram" or out.space != "sram" or x.broadcast:
        return False
    outer, m, inner = math.prod(shape[:first]), math.prod(shape[first:last]), math.prod(shape[last:])
    precision = storage(x)
    if (storage(out) != precision or max(outer, (m + 1) // 2 * inner, m * inner) > GRID_LIMIT
            or precision not in (Precision.FP32, Precision.BF16, Precision.FP16, Precision.INT32, Precision.INT64)):
        return False
    combine = {Op.REDUCE_SUM: V.ADD, Op.REDUCE_MEAN: V.ADD, Op.REDUCE_MAX: V.MAX, Op.REDUCE_MIN: V.MIN}[op]
    e = precision.bits // 8
    half = (m + 1) // 2
    tiles = [lw.staging(max(outer * half * inner * e, 1), f"reduce{i}") for i in range(2)] if m > 2 else []
    cur, stride, count, level = (x.buf, x.addr), m * inner, m, 0
    while count > 1:
        h, pairs = (count + 1) // 2, count // 2
        dst = (out.buf, out.addr) if h == 1 else (tiles[level % 2], tiles[level % 2].addr)
        emit_2d(lw, combine, (cur[0], cur[1], stride), (cur[0], cur[1] + h * inner * e, stride),
                (dst[0], dst[1], h * inner), outer, pairs * inner, precision)
        if count % 2:  # the unpaired middle slice moves down a level as it is
            emit_2d(lw, V.COPY, (cur[0], cur[1] + pairs * inner * e, stride), (cur[0], cur[1], stride),
                    (dst[0], dst[1] + pairs * inner * e, h * inner), outer, inner, precision)
        cur, stride, count, level = dst, h * inner, h, level + 1
    if m == 1:
        emit_2d(lw, V.COPY, (x.buf, x.addr, inner), (x.buf, x.addr, inner), (out.buf, out.addr, inner), outer, inner,
                precision)
    if op == Op.REDUCE_MEAN:
        lw.emit(Vector(op=V.MUL_IMM, precision=precision, src_a=out.addr, src_b=out.addr, dst=out.addr,
                       length=outer * inner, imm=f32_bits(1.0 / m)), reads=[out.buf], writes=[out.buf])
    lw.unstage(*tiles)
    return True


def emit_2d(lw: Lowerer, op: VectorOp, a: tuple, b: tuple, dst: tuple, rows: int, cols: int,
            precision: Precision) -> None:
    """One VECTOR_2D over rows x cols; operands are (buf, addr, row stride in elements)."""
    (a_buf, a_addr, a_stride), (b_buf, b_addr, b_stride), (d_buf, d_addr, d_stride) = a, b, dst
    lw.emit(Vector2D(op=op, precision=precision, src_a=a_addr, src_b=b_addr, dst=d_addr, rows=rows, cols=cols,
                     a_row_stride=a_stride, b_row_stride=b_stride, dst_row_stride=d_stride),
            reads=[a_buf, b_buf], writes=[d_buf])


def _cast_steps(lw: Lowerer, node: Node) -> tuple[list[Step], str]:
    """A cast CONVERTs from the source's element type (a copy when they agree); to bool it is
    x != 0, computed in the source's type."""
    source = storage(lw.value(node.inputs[0]))
    target_dtype = node.output_types[0].dtype
    if target_dtype == DType.BOOL and lw.graph.type_of(node.inputs[0]).dtype != DType.BOOL:
        return _NONZERO, "in0"
    target = Precision.INT8 if target_dtype == DType.BOOL else _storage_of_dtype(target_dtype)
    if source == target:
        return [(V.COPY, E, "in0", "in0", "out")], "out"
    if target is Precision.FP8 or not (same_kind(source, target) or source in _INTEGERS or target in _INTEGERS):
        lw.inexact(f"{node.name}: cast to {target.label} is timed as a copy (CONVERT writes fp32, bf16, fp16 "
                   "and integers)")
        return [(V.COPY, E, "in0", "in0", "out")], "out"
    return [(V.CONVERT, E, "in0", "in0", "out", int(source))], "out"


_INTEGERS = frozenset({Precision.INT8, Precision.INT32, Precision.INT64})


def _storage_of_dtype(dtype: DType) -> Precision:
    from compiler.targets.programmable.context import precision_of_dtype

    if dtype.is_float:
        return precision_of_dtype(dtype)
    return {8: Precision.INT8, 32: Precision.INT32, 64: Precision.INT64}.get(dtype.bits, precision_of_dtype(dtype))


def _note_unsigned(lw: Lowerer, node: Node) -> None:
    """Integers the vector unit has no lanes for are computed as the signed integer of their width."""
    odd = sorted({str(t.dtype) for t in (*[lw.graph.type_of(v) for v in node.inputs if v], *node.output_types)
                  if not t.dtype.is_float and t.dtype not in _SIGNED})
    if odd:
        lw.inexact(f"{node.name}: {', '.join(odd)} values are computed as signed integers of their width")


def _rows(shape: tuple[int, ...], axes: set[int] | None) -> tuple[int, int]:
    """(rows, row_len): reduced axes form the row; elementwise ops use the last axis."""
    count = math.prod(shape)
    if axes is None:
        row_len = shape[-1] if shape else 1
    else:
        row_len = math.prod(shape[a] for a in axes)
    row_len = max(row_len, 1)
    return max(count // row_len, 1), row_len


def _trailing(axes: set[int], rank: int) -> bool:
    return axes == set(range(rank - len(axes), rank))


def _renamed(step: Step, old: str, new: str) -> Step:
    return step[:2] + tuple(new if ref == old else ref for ref in step[2:])  # type: ignore[return-value]


def _norm_axes(lw: Lowerer, node: Node) -> set[int]:
    rank = len(lw.shapes[node.inputs[0]])
    return set(range(node.attr("axis", -1) % rank, rank))


def reduce_axes(lw: Lowerer, node: Node) -> set[int]:
    rank = len(lw.shapes[node.inputs[0]])
    if node.op == Op.ARGMAX:
        return {node.attr("axis", 0) % rank}
    axes = node.attr("axes")
    if axes is None and node.input(1):
        axes = _const_ints(lw, node.inputs[1])
    if axes is None or len(axes) == 0:
        return set(range(rank)) if not node.attr("noop_with_empty_axes", 0) else set()
    return {int(a) % rank for a in axes}


def _const_ints(lw: Lowerer, name: str) -> list[int]:
    const = lw.graph.constants.get(name)
    if const is None:
        raise LoweringError(f"{lw.where()}: input {name!r} must be a compile-time constant")
    return [int(x) for x in np.asarray(const.value()).reshape(-1)]


def _pow_steps(lw: Lowerer, node: Node) -> list[Step]:
    const = lw.graph.constants.get(node.inputs[1])
    exponent = float(np.asarray(const.value()).reshape(-1)[0]) if const is not None and const.type.numel == 1 else None
    if exponent == 2.0:
        return [(V.MUL, E, "in0", "in0", "out")]
    if exponent == 1.0:
        return [(V.COPY, E, "in0", "in0", "out")]
    if exponent == 0.5:
        return [(V.RSQRT, E, "in0", "in0", "out"), (V.RECIPROCAL, E, "out", "out", "out")]
    if exponent == -0.5:
        return [(V.RSQRT, E, "in0", "in0", "out")]
    if exponent == -1.0:
        return [(V.RECIPROCAL, E, "in0", "in0", "out")]
    # x ** y = exp(y * log(x)), for x > 0 as the IR's float Pow on positive bases
    return [(V.LOG, E, "in0", "in0", "out"), (V.MUL, E, "out", "in1", "out"), (V.EXP, E, "out", "out", "out")]
