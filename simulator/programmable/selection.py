"""What the selection ops compute (TOPK, SCAN_SUM, REDUCE_PROD, ARGMAX) and what VECTOR_GATHER
moves: the numpy definitions the functional simulator runs, the SRAM each instruction touches,
and the checks on their shapes.

The ops follow ONNX (TopK, CumSum, ReduceProd, ArgMax/ArgMin, Gather) exactly, with the
interpreter's choices where ONNX leaves one open: TopK is always sorted (ties in ascending index
order), half-precision floats are compared and summed in float32 and stored back in their
precision, integer scans and products wrap in the element type.
"""

from __future__ import annotations

import numpy as np

from compiler.targets.programmable.isa import (
    ARG_LAST,
    ARG_MIN,
    INDEX_INT64,
    SCAN_EXCLUSIVE,
    SCAN_REVERSE,
    TOPK_INDICES,
    TOPK_LARGEST,
    TOPK_VALUES,
    Precision,
    Vector,
    VectorGather,
    VectorOp,
)

# element types the selection ops and VECTOR_GATHER read (INT8 for VECTOR_GATHER's bytes only)
SELECTION_PRECISIONS = frozenset({Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT32, Precision.INT64})
_HALF = frozenset({Precision.FP16, Precision.BF16})


def element_bytes(precision: Precision) -> int:
    return precision.bits // 8


def index_bytes(ins: Vector) -> int:
    return 8 if ins.shift & INDEX_INT64 else 4


def lines(ins: Vector) -> tuple[int, int, int]:
    """(outer, row_len, inner): the [outer, row_len, inner] view the op works along (TOPK: inner 1)."""
    inner = 1 if ins.op is VectorOp.TOPK else max(ins.imm, 1)
    n = max(ins.row_len, 1)
    return ins.length // (n * inner), n, inner


def check(ins: Vector) -> str | None:
    """What makes a selection instruction malformed (None when it is well formed)."""
    if ins.precision not in SELECTION_PRECISIONS:
        return f"{ins.op.name} runs on fp32, fp16, bf16, int32 or int64, not {ins.precision.label}"
    outer, n, inner = lines(ins)
    if ins.row_len <= 0 or ins.length != outer * n * inner:
        return f"{ins.op.name} length {ins.length} is not a multiple of row_len {ins.row_len} x inner {inner}"
    if ins.op is VectorOp.TOPK:
        if not 1 <= ins.imm <= n:
            return f"TOPK k = imm = {ins.imm} outside 1..row_len {n}"
        if not ins.shift & (TOPK_VALUES | TOPK_INDICES):
            return "TOPK writes neither values (TOPK_VALUES) nor indices (TOPK_INDICES)"
    return None


def outputs(ins: Vector) -> list[tuple[str, int, int]]:
    """(field, base address, bytes) of each SRAM range the instruction writes."""
    outer, n, inner = lines(ins)
    eb = element_bytes(ins.precision)
    if ins.op is VectorOp.TOPK:
        count = outer * ins.imm
        return ([("dst", ins.dst, count * eb)] if ins.shift & TOPK_VALUES else []) + (
            [("src_b", ins.src_b, count * index_bytes(ins))] if ins.shift & TOPK_INDICES else [])
    if ins.op is VectorOp.SCAN_SUM:
        return [("dst", ins.dst, ins.length * eb)]
    if ins.op is VectorOp.ARGMAX:
        return [("dst", ins.dst, outer * inner * index_bytes(ins))]
    return [("dst", ins.dst, outer * inner * eb)]                          # REDUCE_PROD


def sram_ranges(ins: Vector) -> list[tuple[str, int, int, int]]:
    """(field, base, bytes, loop stride) of every SRAM operand, src_a first."""
    eb = element_bytes(ins.precision)
    return [("src_a", ins.src_a, ins.length * eb, ins.loop_stride)] + [
        (name, base, nbytes, ins.loop_stride) for name, base, nbytes in outputs(ins)]


def gather_ranges(ins: VectorGather) -> list[tuple[str, int, int, int]]:
    eb = element_bytes(ins.precision)
    return [("src", ins.src, ins.outer * ins.axis_len * ins.row_len * eb, 0),
            ("index_addr", ins.index_addr, ins.index_bytes, 0), ("dst", ins.dst, ins.length * eb, 0)]


def check_gather(ins: VectorGather) -> str | None:
    if ins.precision is Precision.INT4:
        return "VECTOR_GATHER moves whole bytes: int4 elements cannot be gathered"
    if ins.axis_len < 1 and ins.count:
        return f"VECTOR_GATHER axis_len {ins.axis_len}: a table with no rows cannot be indexed"
    return None


# ---- values ---------------------------------------------------------------------------------

def run(ins: Vector, a: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays `ins` writes (by field name), from its src_a elements `a`."""
    outer, n, inner = lines(ins)
    x = a.reshape(outer, n, inner)
    keys = x.astype(np.float32) if ins.precision in _HALF else x
    index_type = np.int64 if ins.shift & INDEX_INT64 else np.int32
    if ins.op is VectorOp.TOPK:
        values, order = topk(keys[:, :, 0], ins.imm, bool(ins.shift & TOPK_LARGEST))
        written = {}
        if ins.shift & TOPK_VALUES:
            written["dst"] = values.astype(a.dtype)
        if ins.shift & TOPK_INDICES:
            written["src_b"] = order.astype(index_type)
        return written
    if ins.op is VectorOp.SCAN_SUM:
        return {"dst": scan(keys, bool(ins.shift & SCAN_EXCLUSIVE), bool(ins.shift & SCAN_REVERSE)).astype(a.dtype)}
    if ins.op is VectorOp.ARGMAX:
        return {"dst": arg_reduce(keys, bool(ins.shift & ARG_MIN), bool(ins.shift & ARG_LAST)).astype(index_type)}
    with np.errstate(over="ignore", invalid="ignore"):
        return {"dst": np.prod(keys, axis=1, dtype=keys.dtype).astype(a.dtype)}   # REDUCE_PROD


def topk(x: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest (smallest) values, sorted, and their indices; equal values keep
    ascending index order: a stable sort, of the reversed row (read backwards) for largest."""
    n = x.shape[1]
    if largest:
        order = np.flip(n - 1 - np.argsort(np.flip(x, 1), axis=1, kind="stable"), 1)
    else:
        order = np.argsort(x, axis=1, kind="stable")
    order = order[:, :k]
    return np.take_along_axis(x, order, axis=1), order


def scan(x: np.ndarray, exclusive: bool, reverse: bool) -> np.ndarray:
    """Running sums along axis 1 of [outer, n, inner], in the element type (floats: in order)."""
    values = np.flip(x, 1) if reverse else x
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.cumsum(values, axis=1, dtype=values.dtype)
    if exclusive:
        total = np.concatenate([np.zeros_like(total[:, :1]), total[:, :-1]], axis=1)
    return np.flip(total, 1) if reverse else total


def arg_reduce(x: np.ndarray, smallest: bool, last: bool) -> np.ndarray:
    """The index along axis 1 of [outer, n, inner] of the largest (smallest) element, first (last) of ties."""
    pick = np.argmin if smallest else np.argmax
    if last:
        return x.shape[1] - 1 - pick(np.flip(x, 1), axis=1)
    return pick(x, axis=1)


def wrapped_index(index: np.ndarray, rows: int, what: str) -> np.ndarray:
    """Indices with negatives counted from the end; ValueError naming the first outside [-rows, rows)."""
    index = index.astype(np.int64)
    bad = (index < -rows) | (index >= rows)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(f"{what}[{j}] = {int(index[j])} outside -{rows}..{rows - 1}")
    return np.where(index < 0, index + rows, index)


def gather(ins: VectorGather, table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """dst of a VECTOR_GATHER from its table elements and its index vector."""
    rows = wrapped_index(index, ins.axis_len, "index")
    return table.reshape(ins.outer, ins.axis_len, ins.row_len)[:, rows, :].reshape(-1)
