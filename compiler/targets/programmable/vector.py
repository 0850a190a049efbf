"""Vector-unit kernels: a recipe of VECTOR ops per IR op, run in place in SRAM or streamed.

A recipe lists (op, length, a, b, dst[, imm]): length "elem" covers every element, "row" one
value per row (per-row scalars such as a norm's 1/rms), "reduce" reduces rows of `row_len`
into per-row values. Operands name the op's inputs ("in0".."in2"), its output ("out"), an
elementwise scratch ("tmp") and a per-row scratch ("row"); `imm` is the float operand of an
*_IMM op. An elementwise step whose operands are all whole is one VECTOR; one that reads a
per-row value, a row vector repeated over rows or a scalar is one VECTOR_2D (broadcast by
strides, no copy).

Ops the ISA has no instruction for are lowered as a cost-equivalent stand-in and recorded in
`program.meta["isa_gaps"]` (the functional run refuses such programs). Operands in HBM stream
through SRAM slots in pairs, chunked by rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.targets.programmable.context import Lowerer, StagingFull, Value, precision_of_dtype
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import (
    INTEGER_VECTOR_OPS,
    DmaLoad,
    DmaStore,
    Precision,
    Vector,
    Vector2D,
    VectorOp,
    f32_bits,
)
from compiler.targets.programmable.options import LoweringError
from simulator.programmable.costs.vector import BINARY_OPS

V = VectorOp
E, R, D = "elem", "row", "reduce"
LENGTH_LIMIT = (1 << 24) - 1
DMA_CHUNK_BYTES = 1 << 23  # a streamed chunk is one DMA row (row_bytes is a 24-bit field)
GRID_LIMIT = (1 << 20) - 1  # VECTOR_2D rows, cols and strides are 20-bit fields
Step = tuple  # (VectorOp, kind, a, b, dst) or (VectorOp, kind, a, b, dst, imm)

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
    # a * (1 / b): the reciprocal of a broadcast divisor is computed once, at its own size
    Op.DIV: [(V.RECIPROCAL, E, "in1", "in1", "tmp"), (V.MUL, E, "in0", "tmp", "out")],
    Op.MIN: [(V.MIN, E, "in0", "in1", "out")],
    Op.CLIP: [(V.MAX, E, "in0", "in1", "out"), (V.MIN, E, "out", "in2", "out")],
}
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
    Op.NOT: ("compare/logic", [(V.SUB, E, "in0", "in0", "out")]),
    Op.IS_NAN: ("compare/logic", [(V.SUB, E, "in0", "in0", "out")]),
    Op.IS_INF: ("compare/logic", [(V.SUB, E, "in0", "in0", "out")]),
    Op.EQUAL: ("compare/logic", [(V.SUB, E, "in0", "in1", "out")]),
    Op.GREATER: ("compare/logic", [(V.SUB, E, "in0", "in1", "out")]),
    Op.LESS: ("compare/logic", [(V.SUB, E, "in0", "in1", "out")]),
    Op.LESS_OR_EQUAL: ("compare/logic", [(V.SUB, E, "in0", "in1", "out")]),
    Op.GREATER_OR_EQUAL: ("compare/logic", [(V.SUB, E, "in0", "in1", "out")]),
    Op.AND: ("compare/logic", [(V.MUL, E, "in0", "in1", "out")]),
    Op.OR: ("compare/logic", [(V.MAX, E, "in0", "in1", "out")]),
    Op.XOR: ("compare/logic", [(V.SUB, E, "in0", "in1", "out")]),
    Op.WHERE: ("select", [(V.MUL, E, "in1", "in0", "out"), (V.MUL, E, "in2", "in0", "tmp"),
                          (V.ADD, E, "out", "tmp", "out")]),
    Op.MOD: ("integer divide", [(V.MUL, E, "in0", "in1", "tmp"), (V.SUB, E, "in0", "tmp", "out")]),
}
_SOFTMAX: list[Step] = [
    (V.REDUCE_MAX, D, "in0", "in0", "row"), (V.SUB, E, "in0", "row", "out"), (V.EXP, E, "out", "out", "out"),
    (V.REDUCE_SUM, D, "out", "out", "row"), (V.RECIPROCAL, R, "row", "row", "row"), (V.MUL, E, "out", "row", "out"),
]


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


def _reduce_steps(op: Op, row_len: int) -> list[Step]:
    return {
        Op.REDUCE_SUM: [(V.REDUCE_SUM, D, "in0", "in0", "out")],
        Op.REDUCE_MEAN: [(V.REDUCE_SUM, D, "in0", "in0", "out"), (V.MUL_IMM, R, "out", "out", "out", 1.0 / row_len)],
        Op.REDUCE_MAX: [(V.REDUCE_MAX, D, "in0", "in0", "out")],
        Op.REDUCE_MIN: [(V.NEG, E, "in0", "in0", "tmp"), (V.REDUCE_MAX, D, "tmp", "tmp", "out"),
                        (V.NEG, R, "out", "out", "out")],
    }[op]


_REDUCE = frozenset({Op.REDUCE_SUM, Op.REDUCE_MEAN, Op.REDUCE_MAX, Op.REDUCE_MIN})

SUPPORTED_VECTOR_OPS = frozenset(_UNARY) | frozenset(_BINARY) | frozenset(_STAND_INS) | _REDUCE | {
    Op.POW, Op.SUM, Op.MEAN, Op.SOFTMAX, Op.LOG_SOFTMAX, Op.RMS_NORMALIZATION, Op.LAYER_NORMALIZATION,
    Op.ROTARY_EMBEDDING, Op.CUMSUM, Op.TOPK, Op.ARGMAX, Op.REDUCE_PROD,
}


def recipe_ops(op: Op) -> set[VectorOp]:
    """The VECTOR ops an elementwise IR op lowers to (stand-ins included)."""
    steps = _UNARY.get(op) or _BINARY.get(op) or _STAND_INS.get(op, (None, []))[1]
    return {step[0] for step in steps}


def lower_vector(lw: Lowerer, node: Node) -> None:
    """Lower an elementwise, reduction or normalization node to VECTOR instructions."""
    op = node.op
    out_name = node.outputs[0]
    rows_axes = None
    steps: list[Step] | None = None
    make = None  # steps that depend on the row length
    if op in (Op.CAST, Op.CAST_LIKE):
        steps = _cast_steps(lw, node)
    elif op in _UNARY:
        steps = _UNARY[op]
    elif op in _BINARY:
        steps = _BINARY[op]
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
    elif op in _REDUCE or op in (Op.REDUCE_PROD, Op.ARGMAX):
        if op == Op.REDUCE_PROD:
            lw.gap("REDUCE_PROD")
        if op == Op.ARGMAX:
            lw.gap("arg-reduction")
        rows_axes = reduce_axes(lw, node)
        if op in _REDUCE:
            make = lambda row_len: _reduce_steps(op, row_len)  # noqa: E731
        else:
            steps = [(V.REDUCE_MAX if op == Op.ARGMAX else V.REDUCE_SUM, D, "in0", "in0", "out")]
    elif op == Op.CUMSUM:
        lw.gap("prefix scan (CumSum)")
        axis = int(_const_ints(lw, node.inputs[1])[0]) % len(lw.shapes[out_name])
        length = lw.local_shape(out_name)[axis]
        steps = [(V.COPY, E, "in0", "in0", "out")] + [(V.ADD, E, "out", "out", "out")] * max(
            1, math.ceil(math.log2(max(length, 2))))
    elif op == Op.TOPK:
        lw.gap("top-k selection")
        axis = node.attr("axis", -1) % len(lw.shapes[node.inputs[0]])
        k = lw.shapes[node.outputs[0]][axis]  # bound by now, even when k was computed
        rows_axes = {axis}
        steps = [(V.REDUCE_MAX, D, "in0", "in0", "out")] * max(1, min(k, 8))
    else:
        raise LoweringError(f"{node.describe()}: no vector lowering")
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
        lw.inexact(f"{node.name}: a reduction over non-trailing axes {sorted(rows_axes)} is timed as a copy "
                   "and a trailing-axis reduction")
        steps = [(V.COPY, E, "in0", "in0", "tmp"), *[_renamed(s, "in0", "tmp") for s in steps]]
    run_steps(lw, steps, inputs, out, rows, row_len)


def _cast_steps(lw: Lowerer, node: Node) -> list[Step]:
    """A cast is a CONVERT from the source's element type (a plain copy when they agree)."""
    source = precision_of_dtype(lw.graph.type_of(node.inputs[0]).dtype)
    if lw.graph.type_of(node.inputs[0]).dtype == DType.INT64:
        source = Precision.INT64
    target = precision_of_dtype(node.output_types[0].dtype)
    if source == target or target not in _FLOATS:
        if source != target:
            lw.inexact(f"{node.name}: cast to {target.label} is timed as a copy (CONVERT writes floats)")
        return [(V.COPY, E, "in0", "in0", "out")]
    return [(V.CONVERT, E, "in0", "in0", "out", int(source))]


_FLOATS = frozenset({Precision.FP32, Precision.BF16, Precision.FP16})


def run_steps(lw: Lowerer, steps: Sequence[Step], inputs: list[Value], out: Value, rows: int,
              row_len: int) -> None:
    """Emit `steps` over rows x row_len elements: in place when everything is in SRAM, else
    streamed through SRAM slots (two per streamed operand) one chunk of rows at a time."""
    refs = {f"in{i}": v for i, v in enumerate(inputs)}
    modes = {name: operand_mode(v, rows, row_len) for name, v in refs.items()}
    modes.update({"out": "full", "tmp": "full", "row": "row"})
    if any(mode is None for mode in modes.values()) or (row_len > GRID_LIMIT and any(
            mode in ("row", "col") for name, mode in modes.items() if name in refs)):
        lw.gap("VECTOR broadcast operand")
    full = [name for name, v in refs.items() if v.space == "hbm" and modes[name] == "full"]
    per_row = [name for name, v in refs.items() if v.space == "hbm" and modes[name] == "row" and rows > 1]
    whole = [name for name, v in refs.items() if v.space == "hbm" and name not in full and name not in per_row]
    stream_out = out.space == "hbm"
    needs = {ref for step in steps for ref in step[2:5]}
    precision = out.precision
    if precision not in _FLOATS and (any(v.bits != 32 for v in (*inputs, out)) or any(
            step[0] not in INTEGER_VECTOR_OPS for step in steps)):
        lw.inexact(f"{lw.where()}: integer arithmetic on {sorted({v.bits for v in (*inputs, out)})}-bit values is "
                   "timed as int32 vector ops")
    if not (full or per_row or whole or stream_out):
        # in place; rows are cut into pieces when the scratch for all of them does not fit
        scratch_per_row = 4 * row_len * ("tmp" in needs) + 4 * ("row" in needs)
        chunk_rows = max(1, min(rows, LENGTH_LIMIT // max(row_len, 1), GRID_LIMIT,
                                lw.staging_budget() // max(scratch_per_row, 1)))
        while True:
            try:
                scratch = _scratch(lw, needs, chunk_rows * row_len, chunk_rows)
                break
            except StagingFull:
                if chunk_rows == 1:
                    raise
                chunk_rows = max(1, chunk_rows // 2)
        for r0 in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - r0)
            where = {name: (v.buf, v.addr + _offset(v, modes[name], r0, n, rows, row_len)) for name, v in refs.items()}
            where["out"] = (out.buf, out.addr + _offset(out, "full", r0, n, rows, row_len))
            where.update({k: (b, b.addr) for k, b in scratch.items()})
            _emit_steps(lw, steps, where, modes, n, row_len, precision)
        lw.unstage(*scratch.values())
        return
    budget = lw.staging_budget()
    bytes_per_row = sum(2 * _row_bytes(refs[n], row_len) for n in full) + sum(2 * refs[n].bits // 8 + 1
                                                                             for n in per_row)
    bytes_per_row += (2 * _row_bytes(out, row_len) if stream_out else 0) + 4 * row_len * ("tmp" in needs) + 8
    widest = max([_row_bytes(refs[n], row_len) for n in full] + ([_row_bytes(out, row_len)] if stream_out else [1]))
    chunk_rows = max(1, min(rows, budget // max(bytes_per_row, 1), LENGTH_LIMIT // max(row_len, 1), GRID_LIMIT,
                            DMA_CHUNK_BYTES // widest))
    if chunk_rows * bytes_per_row > max(budget, 1) * 2:
        raise LoweringError(f"{lw.where()}: one row of {row_len} elements needs {bytes_per_row} bytes of "
                            f"SRAM staging; {budget} bytes are free")
    while True:  # the largest chunk whose tiles all fit the free SRAM
        sizes = {f"{name}{i}": _chunk_bytes(refs[name], modes[name], chunk_rows, row_len) for name in full + per_row
                 for i in range(2)}
        sizes.update({f"held:{name}": min(refs[name].nbytes, max(budget // 4, 64), DMA_CHUNK_BYTES) for name in whole})
        if stream_out:
            sizes.update({f"out{i}": _chunk_bytes(out, "full", chunk_rows, row_len) for i in range(2)})
        if "tmp" in needs:
            sizes["tmp"] = 4 * chunk_rows * row_len
        if "row" in needs:
            sizes["row"] = 4 * chunk_rows
        try:
            staged = lw.stage_all(sizes)
            break
        except StagingFull:
            if chunk_rows == 1:
                raise
            chunk_rows = max(1, chunk_rows // 2)
    slots = {name: [staged[f"{name}{i}"] for i in range(2)] for name in full + per_row}
    held = {name: staged[f"held:{name}"] for name in whole}
    out_slots = [staged[f"out{i}"] for i in range(2)] if stream_out else []
    scratch = {k: staged[k] for k in ("tmp", "row") if k in staged}
    for name, buf in held.items():  # broadcast operands: fetched once (their first bytes if large)
        if buf.nbytes < refs[name].nbytes:
            lw.inexact(f"{lw.where()}: broadcast operand {refs[name].name!r} is larger than its SRAM slot "
                       "(only its first bytes are fetched)")
        lw.emit(DmaLoad(hbm_addr=refs[name].addr, sram_addr=buf.addr, rows=1, row_bytes=buf.nbytes,
                        hbm_row_stride=buf.nbytes), reads=[refs[name].buf], writes=[buf])

    if rows > chunk_rows and (not stream_out or any(v.space == "sram" and modes[name] in ("full", "row")
                                                    for name, v in refs.items())):
        lw.inexact(f"{lw.where()}: an SRAM operand of an op streamed in chunks is read at its first chunk's address "
                   "in every chunk")

    def chunk(index: int, slot: int, n: int) -> None:
        r0 = index * chunk_rows
        where: dict[str, tuple[Buf, int]] = {k: (b, b.addr) for k, b in scratch.items()}
        for name, value in refs.items():
            if name in slots:
                buf = slots[name][slot]
                nbytes = _chunk_bytes(value, modes[name], n, row_len)
                lw.emit(DmaLoad(hbm_addr=value.addr + _offset(value, modes[name], r0, n, rows, row_len),
                                sram_addr=buf.addr, rows=1, row_bytes=nbytes, hbm_row_stride=nbytes),
                        reads=[value.buf], writes=[buf])
                where[name] = (buf, buf.addr)
            elif name in held:
                where[name] = (held[name], held[name].addr)
            else:  # SRAM operand of a streamed op: a fixed address (one VECTOR stride per loop)
                where[name] = (value.buf, value.addr)
        where["out"] = (out_slots[slot], out_slots[slot].addr) if stream_out else (out.buf, out.addr)
        _emit_steps(lw, steps, where, modes, n, row_len, precision)
        if stream_out:
            nbytes = _chunk_bytes(out, "full", n, row_len)
            lw.emit(DmaStore(hbm_addr=out.addr + _offset(out, "full", r0, n, rows, row_len),
                             sram_addr=out_slots[slot].addr, rows=1, row_bytes=nbytes, hbm_row_stride=nbytes),
                    reads=[out_slots[slot]], writes=[out.buf])

    full_chunks, rest = divmod(rows, chunk_rows)

    def body(i: int) -> None:
        chunk(2 * i, 0, chunk_rows)
        chunk(2 * i + 1, 1, chunk_rows)

    lw.loop(full_chunks // 2, body)
    if full_chunks % 2:
        chunk(full_chunks - 1, 0, chunk_rows)
    if rest:
        chunk(full_chunks, full_chunks % 2, rest)
    lw.unstage(*[b for pair in slots.values() for b in pair], *held.values(), *out_slots, *scratch.values())


def operand_mode(value: Value, rows: int, row_len: int) -> str | None:
    """How an operand covers a rows x row_len grid: "full" (every element), "row" (one value per
    row), "col" (one row repeated), "scalar", or None (a broadcast the grid cannot express)."""
    count = rows * row_len
    if value.broadcast:
        return None
    n = value.numel
    if n == count:
        return "full"
    if n == 1:
        return "scalar"
    shape = value.shape
    if n == row_len and shape and shape[-1] == row_len:
        return "col"
    if n == rows and (not shape or shape[-1] == 1):
        return "row"
    return None


_GRID = {"full": None, "row": (1, 0), "col": (0, 1), "scalar": (0, 0)}


def _emit_steps(lw: Lowerer, steps: Sequence[Step], where: dict[str, tuple[Buf, int]], modes: dict[str, str | None],
                rows: int, row_len: int, precision: Precision) -> None:
    for step in steps:
        op, kind, a, b, dst = step[:5]
        imm = step[5] if len(step) > 5 else 0
        imm_bits = int(imm) if op is V.CONVERT else f32_bits(imm) if len(step) > 5 else 0
        length = rows if kind == R else rows * row_len
        # an optional input left out (Clip without a bound) reads the first input instead
        a = a if a in where else "in0"
        b = b if b in where else "in0"
        (a_buf, a_addr), (b_buf, b_addr) = where[a], where[b]
        d_buf, d_addr = where[dst]
        grid_modes = (modes.get(a, "full"), modes.get(b, "full") if op in BINARY_OPS else "full")
        if (kind != E or all(m == "full" for m in grid_modes) or None in grid_modes or row_len > GRID_LIMIT
                or precision not in _FLOATS):
            lw.emit(Vector(op=op, precision=precision, src_a=a_addr, src_b=b_addr, dst=d_addr, length=length,
                           row_len=row_len if kind == D else 1, imm=imm_bits),
                    reads=[a_buf, b_buf], writes=[d_buf])
            continue
        (ars, acs), (brs, bcs) = (_GRID[m] or (row_len, 1) for m in grid_modes)
        lw.emit(Vector2D(op=op, precision=precision, src_a=a_addr, src_b=b_addr, dst=d_addr, rows=rows, cols=row_len,
                         a_row_stride=ars, a_col_step=acs, b_row_stride=brs, b_col_step=bcs,
                         dst_row_stride=row_len),
                reads=[a_buf, b_buf], writes=[d_buf])


def _scratch(lw: Lowerer, needs: set[str], count: int, rows: int) -> dict[str, Buf]:
    sizes = {name: nbytes for name, nbytes in (("tmp", 4 * count), ("row", 4 * rows)) if name in needs}
    return lw.stage_all(sizes)


def _offset(value: Value, mode: str | None, r0: int, n: int, rows: int, row_len: int) -> int:
    """Byte offset of rows [r0, r0 + n) in `value` (full, per-row or broadcast operand)."""
    if mode == "full":
        return math.ceil(r0 * row_len * value.bits / 8)
    if mode == "row":
        return math.ceil(r0 * value.bits / 8)
    if mode in ("col", "scalar") or value.broadcast or value.numel < rows:
        return 0
    per = row_len if value.numel >= rows * row_len else 1
    return min(math.ceil(r0 * per * value.bits / 8), max(value.nbytes - _chunk_bytes(value, mode, n, row_len), 0))


def _chunk_bytes(value: Value, mode: str | None, n: int, row_len: int) -> int:
    per = 1 if mode == "row" else row_len
    return max(1, math.ceil(n * per * value.bits / 8))


def _row_bytes(value: Value, row_len: int) -> int:
    return math.ceil(row_len * value.bits / 8)


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
