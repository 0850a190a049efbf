"""Memory images for functional runs of integer programs: what HBM (and SRAM) hold at the
start, and the outputs read back at the end. Float programs are timing programs: their
layouts are not value-exact, so images are refused for them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.program import Program


def hbm_image(program: Program, graph: Graph, inputs: Mapping[str, np.ndarray]) -> bytearray:
    """HBM at program start: each input and each HBM-resident constant at its region."""
    _require_integer(program)
    size = max((r.addr + r.nbytes for r in program.regions.values() if r.space == "hbm"), default=0)
    image = bytearray(size)
    for name in graph.inputs:
        if name not in inputs:
            raise LoweringError(f"hbm_image: input {name!r} missing (graph inputs: {', '.join(graph.inputs)})")
        _put(image, program, name, np.asarray(inputs[name]))
    for name, region in program.regions.items():
        if region.space == "hbm" and name in graph.constants:
            _put(image, program, name, graph.constants[name].value())
    return image


def sram_image(program: Program, graph: Graph) -> bytearray:
    """SRAM at program start: weights kept resident between steps, in their piece layout."""
    _require_integer(program)
    image = bytearray(program.meta["sram_capacity_bytes"])
    pieces = program.meta.get("weight_pieces", {})
    for name, region in program.regions.items():
        if region.space != "sram" or name not in graph.constants:
            continue
        array = graph.constants[name].value()
        if name in pieces:  # consecutive [K, piece] column blocks
            blocks, col = [], 0
            for width in pieces[name]:
                blocks.append(np.ascontiguousarray(array[:, col:col + width]))
                col += width
            array = np.concatenate([b.reshape(-1) for b in blocks])
        _put(image, program, name, array)
    return image


def read_outputs(program: Program, hbm: bytes) -> dict[str, np.ndarray]:
    """The graph outputs, read from their HBM regions after a run."""
    _require_integer(program)
    outputs = {}
    for name in program.meta["graph_outputs"]:
        info, region = program.meta["tensors"][name], program.regions[name]
        dtype = np.dtype(DType[info["dtype"].upper()].numpy)
        count = int(np.prod(info["shape"]))
        data = bytes(hbm[region.addr:region.addr + count * dtype.itemsize])
        outputs[name] = np.frombuffer(data, dtype=dtype).reshape(info["shape"]).copy()
    return outputs


def _put(image: bytearray, program: Program, name: str, array: np.ndarray) -> None:
    region = program.regions[name]
    data = np.ascontiguousarray(array).tobytes()
    if len(data) > region.nbytes:
        raise LoweringError(f"{name!r}: {len(data)} bytes do not fit its {region.nbytes}-byte region")
    image[region.addr:region.addr + len(data)] = data


def _require_integer(program: Program) -> None:
    if not program.meta.get("integer"):
        raise LoweringError("memory images are for integer programs; float programs are timing programs whose "
                            "layouts are not value-exact (float functional runs are not supported)")
