"""MatMul, Gemm, Einsum and Conv nodes as GEMM kernels (or vector work where nothing is summed).

A MatMul whose B is a parameter is a weight GEMM: its batch and row dims fold into M and the
weight is read once per row block. An activation x activation MatMul outside a recognized
Attention is a batched GEMM per batch entry, operands in SRAM or HBM as their size dictates:
correct, but not the streaming attention kernel, so it is listed in meta["unrecognized"].
"""

from __future__ import annotations

import math

from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.targets.programmable.broadcast import einsum_strides
from compiler.targets.programmable.context import PRECISION_OF, Lowerer, Value
from compiler.targets.programmable.gemm import MatrixRef, emit_gemm
from compiler.targets.programmable.isa import Gemm, VectorOp
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.sharding import weight_source
from compiler.targets.programmable.tiling import GEMM_DIM_LIMIT, choose_split
from compiler.targets.programmable.vector import run_steps

V = VectorOp


def lower_matmul(lw: Lowerer, node: Node) -> None:
    if node.op == Op.GEMM and node.attr("transA", 0):
        raise LoweringError(f"{node.describe()}: transA=1 is not supported (transpose A first)")
    a = lw.value(node.inputs[0])
    weight = weight_source(lw.graph, node.inputs[1])
    out = lw.new_value(node.outputs[0])
    if weight is not None:
        perm = tuple(weight[1])
        if node.op == Op.GEMM and node.attr("transB", 0):
            perm = tuple(reversed(perm))
        if perm != tuple(range(len(perm))):  # memory images transpose the parameter before packing
            lw.program.meta.setdefault("weight_perms", {})[weight[0]] = list(perm)
        _weight_gemm(lw, a, lw.value(weight[0]), out)
    else:
        lw.unrecognized.append(node.name)
        b = lw.value(node.inputs[1])
        if node.op == Op.GEMM and node.attr("transB", 0):
            lw.gap("GEMM transposed B operand")
        _batched(lw, a, b, out, lw.act_precision())
    if node.op == Op.GEMM and node.input(2):  # Gemm's bias C: one vector add over the output
        bias = lw.value(node.inputs[2])
        run_steps(lw, [(V.ADD, "elem", "in0", "in1", "out")], [out, bias], out, _rows(out), out.shape[-1])


def _weight_gemm(lw: Lowerer, a: Value, w: Value, out: Value) -> None:
    k, n = a.shape[-1], out.shape[-1]
    m = out.numel // n
    precision = PRECISION_OF[lw.options.weight_precision]
    emit_gemm(lw, MatrixRef(a.buf, a.addr, m, k, a.bits), MatrixRef(w.buf, w.addr, k, n, w.bits, packed=True),
              MatrixRef(out.buf, out.addr, m, n, out.bits), precision, out.precision)


def _batched(lw: Lowerer, a: Value, b: Value, out: Value, precision) -> None:
    """out[i] = a[i] @ b[i] over broadcast batch dims; one GEMM (or GEMM kernel) per entry."""
    m, k = a.shape[-2] if len(a.shape) > 1 else 1, a.shape[-1]
    n = b.shape[-1] if len(b.shape) > 1 else 1
    batch = out.shape[:-2]
    a_batch, b_batch = _batch_strides(a.shape[:-2], batch), _batch_strides(b.shape[:-2], batch)
    entries = math.prod(batch)
    a_bytes, b_bytes, c_bytes = (math.ceil(m * k * a.bits / 8), math.ceil(k * n * b.bits / 8),
                                 math.ceil(m * n * out.bits / 8))
    offsets = []
    for index in range(entries):
        ai, bi = _entry(index, batch, a_batch), _entry(index, batch, b_batch)
        offsets.append((_clamp(a, ai * a_bytes, a_bytes), _clamp(b, bi * b_bytes, b_bytes), index * c_bytes))
    single = all(v.space == "sram" for v in (a, b, out)) and max(m, n, k) <= GEMM_DIM_LIMIT
    emit_runs(lw, offsets, single, a, b, out, (m, n, k), precision)


def emit_runs(lw: Lowerer, offsets: list[tuple[int, int, int]], single: bool, a: Value, b: Value, out: Value,
              dims: tuple[int, int, int], precision) -> None:
    """Per-entry GEMMs; runs of entries whose offsets step evenly become one LOOP."""
    m, n, k = dims
    if not single:
        for a_off, b_off, c_off in offsets:
            emit_gemm(lw, MatrixRef(a.buf, a.addr + a_off, m, k, a.bits),
                      MatrixRef(b.buf, b.addr + b_off, k, n, b.bits),
                      MatrixRef(out.buf, out.addr + c_off, m, n, out.bits), precision, out.precision)
        return
    split = choose_split(lw.chip, m, n, k, precision.label)
    start = 0
    while start < len(offsets):
        end = start + 1
        if end < len(offsets):
            step = _diff(offsets[start], offsets[end])
            if min(step) >= 0:
                end += 1
                while end < len(offsets) and _diff(offsets[end - 1], offsets[end]) == step:
                    end += 1
        run = offsets[start:end]
        ways = split.ways if len(run) >= split.ways else 1

        def gemm(entry: tuple[int, int, int], subarray: int, ways: int = ways) -> None:
            a_off, b_off, c_off = entry
            lw.emit(Gemm(a_addr=a.addr + a_off, b_addr=b.addr + b_off, c_addr=out.addr + c_off, m=m, n=n, k=k,
                         precision=precision, acc_precision=out.precision, split=split.log2 if ways > 1 else 0,
                         subarray=subarray), reads=[a.buf, b.buf], writes=[out.buf])

        def body(i: int, run=run, ways=ways) -> None:  # independent entries side by side on the sub-arrays
            for u in range(ways):
                gemm(_extrapolate(run, i * ways + u), u)

        lw.loop(len(run) // ways, body)
        for index in range(len(run) // ways * ways, len(run)):
            gemm(run[index], index % ways)
        start = end


def _diff(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(y - x for x, y in zip(first, second))


def _extrapolate(run: list[tuple[int, int, int]], i: int) -> tuple[int, int, int]:
    if len(run) == 1:
        return run[0]
    step = _diff(run[0], run[1])
    return tuple(x + i * s for x, s in zip(run[0], step))  # type: ignore[return-value]


def _batch_strides(shape: tuple[int, ...], batch: tuple[int, ...]) -> list[int]:
    """Per output batch axis, the entry stride in the operand (0 where it broadcasts)."""
    shape = (1,) * (len(batch) - len(shape)) + tuple(shape)
    strides, running = [0] * len(batch), 1
    for axis in reversed(range(len(batch))):
        strides[axis] = running if shape[axis] != 1 else 0
        running *= shape[axis]
    return strides


def _entry(index: int, batch: tuple[int, ...], strides: list[int]) -> int:
    entry = 0
    for axis in reversed(range(len(batch))):
        index, coord = divmod(index, batch[axis])
        entry += coord * strides[axis]
    return entry


def _clamp(value: Value, offset: int, size: int) -> int:
    """Broadcast (Expand) views repeat their bytes: wrap into the buffer behind them."""
    limit = max(value.buf.nbytes - (value.addr - value.buf.addr) - size, 0)
    return offset if offset <= limit else offset % (limit + 1) if limit else 0


def _rows(value: Value) -> int:
    return max(1, value.numel // (value.shape[-1] if value.shape else 1))


def lower_einsum(lw: Lowerer, node: Node) -> None:
    equation = node.attr("equation").replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    inputs = [lw.value(v) for v in node.inputs]
    out = lw.new_value(node.outputs[0])
    summed = set("".join(terms)) - set(rhs)
    if len(terms) != 2 or not summed or "..." in equation:
        # nothing summed (an outer or elementwise product): vector multiplies over the output, each
        # operand read at the strides of its letters (vector.py's broadcasting)
        if summed:
            lw.gap("einsum summing over more than two operands")
        layouts = {i: strides for i, (term, value) in enumerate(zip(terms, inputs))
                   if "..." not in equation and not summed
                   and (strides := einsum_strides(lw, value, term, rhs, out.shape)) is not None}
        steps = [(V.MUL, "elem", "in0", f"in{i + 1}", "out") for i in range(len(inputs) - 1)]
        run_steps(lw, steps or [(V.COPY, "elem", "in0", "in0", "out")], inputs, out, _rows(out), out.shape[-1],
                  layouts=layouts)
        return
    sizes: dict[str, int] = {}
    for term, value in zip(terms, inputs):
        for letter, size in zip(term, value.shape):
            sizes.setdefault(letter, size)
    a_term, b_term = terms
    batch = [c for c in rhs if c in a_term and c in b_term]
    m = math.prod(sizes[c] for c in a_term if c not in b_term)
    n = math.prod(sizes[c] for c in b_term if c not in a_term)
    k = math.prod(sizes[c] for c in summed)
    entries = math.prod(sizes[c] for c in batch)
    a, b = inputs
    sizes_bytes = (math.ceil(m * k * a.bits / 8), math.ceil(k * n * b.bits / 8), math.ceil(m * n * out.bits / 8))
    offsets = [(i * sizes_bytes[0], i * sizes_bytes[1], i * sizes_bytes[2]) for i in range(entries)]
    single = all(v.space == "sram" for v in (a, b, out)) and max(m, n, k) <= GEMM_DIM_LIMIT
    emit_runs(lw, offsets, single, a, b, out, (m, n, k), lw.act_precision())


def lower_conv(lw: Lowerer, node: Node) -> None:
    x, w = lw.value(node.inputs[0]), lw.value(node.inputs[1])
    out = lw.new_value(node.outputs[0])
    channels = lw.shapes[node.inputs[0]][1]  # the attribute counts all chips' channels
    taps = math.prod(w.shape[2:])
    if node.attr("group", 1) == channels and w.shape[1] == 1:
        # depthwise (Mamba's causal conv1d): one multiply-add per tap on the vector unit
        steps = [(V.MUL, "elem", "in0", "in1", "out")]
        steps += [(V.MUL, "elem", "in0", "in1", "tmp"), (V.ADD, "elem", "out", "tmp", "out")] * (taps - 1)
        if node.input(2):
            steps.append((V.ADD, "elem", "out", "in2", "out"))
        inputs = [x, w] + ([lw.value(node.inputs[2])] if node.input(2) else [])
        run_steps(lw, steps, inputs, out, _rows(out), out.shape[-1])
        return
    if node.attr("group", 1) != 1:
        raise LoweringError(f"{node.describe()}: grouped convolution (group={node.attr('group')}) is not supported; "
                            "supported: group=1 (as a GEMM) and depthwise")
    spatial = math.prod(out.shape[2:])
    m, k, n = out.shape[0] * spatial, math.prod(w.shape[1:]), w.shape[0]
    emit_gemm(lw, MatrixRef(x.buf, x.addr, m, k, x.bits), MatrixRef(w.buf, w.addr, k, n, w.bits, packed=True),
              MatrixRef(out.buf, out.addr, m, n, out.bits), PRECISION_OF[lw.options.weight_precision], out.precision)
    if node.input(2):
        bias = lw.value(node.inputs[2])
        run_steps(lw, [(V.ADD, "elem", "in0", "in1", "out")], [out, bias], out, _rows(out), out.shape[-1])

