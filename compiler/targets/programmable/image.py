"""Memory images for functional runs: what HBM and SRAM hold at the start, and the outputs read
back at the end, for integer programs and float programs alike.

Layouts follow the lowering's meta: packed weights as consecutive [K, piece] column blocks
(`weight_pieces`, after `weight_perms` for weights read through a Transpose), KV caches of the
attention kernel in blocks of `block` positions holding every (sequence, KV head), K transposed
([d, block]) and V row-major ([block, dv]) (`cache_layouts`), a past cache that a Concat appends
to in place laid out in the present's shape, its positions first along the appended axis and
room for the new ones after them (`appended_caches`), everything else row-major.
Values the lowering folded once shapes were bound (`static_values`: masks from Range, shape
arithmetic) are computed here with the IR's own op semantics, as a compiler folds constants.
A float program whose meta lists ISA gaps or inexact code still gets images; run_functional is
what refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import ml_dtypes
import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph
from compiler.targets.programmable.folding import evaluate_static
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.program import Program


def hbm_image(program: Program, graph: Graph, inputs: Mapping[str, np.ndarray]) -> bytearray:
    """HBM at program start: each input and each HBM-resident constant at its region."""
    _require_tensors(program)
    size = max((r.addr + r.nbytes for r in program.regions.values() if r.space == "hbm"), default=0)
    image = bytearray(max(size, program.meta.get("hbm_end_bytes", 0)))  # scratch beyond the regions too
    for name in graph.inputs:
        if name not in inputs:
            raise LoweringError(f"hbm_image: input {name!r} missing (graph inputs: {', '.join(graph.inputs)})")
        _put(image, program, name, _laid_out(program, name, np.asarray(inputs[name])))
    folded = _static_values(program, graph, inputs)
    for name, region in program.regions.items():
        if region.space != "hbm":
            continue
        if name in graph.constants:
            _put(image, program, name, _constant(program, graph, name, "hbm"))
        elif name in folded:
            _put(image, program, name, folded[name])
    return image


def sram_image(program: Program, graph: Graph, inputs: Mapping[str, np.ndarray] | None = None) -> bytearray:
    """SRAM at program start: weights kept resident between steps (in their piece layout), small
    constants and folded values. `inputs` are needed only when a folded value depends on an
    input's shape."""
    _require_tensors(program)
    image = bytearray(program.meta["sram_capacity_bytes"])
    folded = _static_values(program, graph, inputs or {})
    for name, region in program.regions.items():
        if region.space != "sram":
            continue
        if name in graph.constants:
            _put(image, program, name, _constant(program, graph, name, "sram"))
        elif name in folded:
            _put(image, program, name, folded[name])
    return image


def read_outputs(program: Program, hbm: bytes) -> dict[str, np.ndarray]:
    """The graph outputs, read from their HBM regions after a run."""
    _require_tensors(program)
    outputs = {}
    for name in program.meta["graph_outputs"]:
        info, region = program.meta["tensors"][name], program.regions[name]
        dtype = np.dtype(DType[info["dtype"].upper()].numpy)
        shape = tuple(info["shape"])
        layout = program.meta.get("cache_layouts", {}).get(name)
        if layout is not None:
            outputs[name] = _unblock(bytes(hbm[region.addr:region.addr + region.nbytes]), layout, shape).astype(dtype)
            continue
        count = int(np.prod(shape))
        data = bytes(hbm[region.addr:region.addr + count * dtype.itemsize])
        outputs[name] = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    return outputs


def _constant(program: Program, graph: Graph, name: str, space: str) -> np.ndarray:
    """A constant as the program stores it: packed weight pieces, else row-major (integer
    programs stream HBM weights row-major and pack only SRAM-resident ones)."""
    array = graph.constants[name].value()
    label = program.meta.get("precisions", {}).get("weight")
    if graph.constants[name].is_parameter and array.dtype.kind == "f" and label in _FLOAT_STORAGE:
        array = array.astype(_FLOAT_STORAGE[label])  # weights are stored in the weight precision
    perm = program.meta.get("weight_perms", {}).get(name)
    if perm is not None:
        array = np.transpose(array, perm)
    pieces = program.meta.get("weight_pieces", {}).get(name)
    if pieces is not None and not (program.meta.get("integer") and space == "hbm"):
        # consecutive [K, piece] column blocks
        matrix = array.reshape(-1, array.shape[-1])
        blocks, col = [], 0
        for width in pieces:
            blocks.append(np.ascontiguousarray(matrix[:, col:col + width]).reshape(-1))
            col += width
        array = np.concatenate(blocks)
    return array


_FLOAT_STORAGE = {"fp32": np.dtype("<f4"), "bf16": np.dtype(ml_dtypes.bfloat16), "fp16": np.dtype("<f2"),
                  "fp8": np.dtype(ml_dtypes.float8_e4m3fn)}


def _laid_out(program: Program, name: str, array: np.ndarray) -> np.ndarray:
    layout = program.meta.get("cache_layouts", {}).get(name)
    if layout is not None:
        return _block(array, layout)
    appended = program.meta.get("appended_caches", {}).get(name)
    if appended is not None:  # the past at the present's row pitch: room for the appended positions
        present = np.zeros(appended["shape"], dtype=array.dtype)
        index = [slice(None)] * array.ndim
        index[appended["axis"]] = slice(0, array.shape[appended["axis"]])
        present[tuple(index)] = array
        return present
    return array


def _element_dtype(layout: Mapping) -> np.dtype:
    bits = layout["element_bits"]
    if bits == 32:
        return np.dtype("<f4")
    if bits == 16:
        return np.dtype(ml_dtypes.bfloat16)
    raise LoweringError(f"memory images hold KV caches of 32 or 16 bits, not {bits}")


def _block(cache: np.ndarray, layout: Mapping) -> np.ndarray:
    """[batch, kv_heads, positions, dim] -> blocks of every (sequence, head): K as [dim, block],
    V as [block, dim]."""
    block, pairs, dim = layout["block"], layout["pairs"], layout["dim"]
    positions = cache.shape[2]
    padded = math.ceil(max(positions, 1) / block) * block
    data = np.zeros((pairs, padded, dim), dtype=_element_dtype(layout))
    data[:, :positions] = cache.reshape(pairs, positions, dim)
    data = data.reshape(pairs, padded // block, block, dim)
    order = (1, 0, 3, 2) if layout["kind"] == "k_transposed" else (1, 0, 2, 3)
    return np.ascontiguousarray(data.transpose(order))


def _unblock(raw: bytes, layout: Mapping, shape: tuple[int, ...]) -> np.ndarray:
    block, pairs, dim = layout["block"], layout["pairs"], layout["dim"]
    positions = shape[2]
    blocks = math.ceil(max(positions, 1) / block)
    dtype = _element_dtype(layout)
    data = np.frombuffer(raw[:blocks * pairs * block * dim * dtype.itemsize], dtype=dtype)
    if layout["kind"] == "k_transposed":
        data = data.reshape(blocks, pairs, dim, block).transpose(1, 0, 3, 2)
    else:
        data = data.reshape(blocks, pairs, block, dim).transpose(1, 0, 2, 3)
    return data.reshape(pairs, blocks * block, dim)[:, :positions].reshape(shape)


def _static_values(program: Program, graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The values the lowering folded (known once shapes are bound), by the IR's op semantics."""
    wanted = set(program.meta.get("static_values", ()))
    if not wanted:
        return {}
    shapes = program.meta.get("static_shapes", {})
    return evaluate_static(graph, wanted, lambda value: shapes.get(value), known=inputs)


def _put(image: bytearray, program: Program, name: str, array: np.ndarray) -> None:
    region = program.regions[name]
    data = np.ascontiguousarray(array).tobytes()
    if len(data) > region.nbytes:
        raise LoweringError(f"{name!r}: {len(data)} bytes do not fit its {region.nbytes}-byte region")
    image[region.addr:region.addr + len(data)] = data


def _require_tensors(program: Program) -> None:
    if "tensors" not in program.meta or "graph_outputs" not in program.meta:
        raise LoweringError("memory images need the program's tensor table (meta 'tensors', 'graph_outputs'); "
                            "this program was not produced by compiler.targets.programmable.lower")
