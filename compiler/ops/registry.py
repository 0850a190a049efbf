"""Op registry: for each IR op, its type rule and its numpy semantics.

Each op family lives in its own module and registers with `@register(Op.X, infer=...)`.
`run` is the living definition of the op (the interpreter calls it). An op marked
`symbolic=True` has a `run` that also works on numpy object arrays whose elements are ints
or sympy expressions; constant folding uses that to push shape arithmetic through the graph
when dimensions are symbolic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, symbol
from compiler.ir.tensor import TensorType


class UnsupportedOpError(ValueError):
    pass


class OpError(ValueError):
    """A node whose attributes, inputs or types the op cannot accept."""

    def __init__(self, node: Node, message: str) -> None:
        super().__init__(f"{node.describe()}: {message}")
        self.node = node


@dataclass
class InferContext:
    """What a type rule sees: the node, its input types, and input values when known.

    `input_values[i]` is a numpy array when input i is a constant or its value could be
    computed at compile time (object dtype when elements are symbolic dims), else None.
    """

    node: Node
    input_types: list[TensorType | None]
    input_values: list[np.ndarray | None]

    def attr(self, key: str, default: Any = None) -> Any:
        return self.node.attrs.get(key, default)

    def type(self, index: int) -> TensorType:
        t = self.input_types[index] if index < len(self.input_types) else None
        if t is None:
            raise OpError(self.node, f"input {index} is required")
        return t

    def has_input(self, index: int) -> bool:
        return index < len(self.input_types) and self.input_types[index] is not None

    def value(self, index: int) -> np.ndarray | None:
        return self.input_values[index] if index < len(self.input_values) else None

    def required_value(self, index: int, what: str) -> np.ndarray:
        """A compile-time value the output type depends on (e.g. Reshape's shape)."""
        v = self.value(index)
        if v is None:
            raise OpError(
                self.node, f"{what} (input {index}) must be known at compile time; it is computed at run time"
            )
        return v

    def fresh_dim(self, output: int, axis: int) -> Dim:
        """A new symbol for a dimension that depends on data (named after the value and axis)."""
        return symbol(f"{self.node.outputs[output]}_d{axis}".replace(".", "_").replace("/", "_").replace(":", "_"))

    def fail(self, message: str) -> OpError:
        return OpError(self.node, message)


InferFn = Callable[[InferContext], Sequence[TensorType]]
RunFn = Callable[[Node, list[Any]], Sequence[np.ndarray]]


@dataclass(frozen=True)
class OpDef:
    op: Op
    infer: InferFn
    run: RunFn
    symbolic: bool = False


_REGISTRY: dict[Op, OpDef] = {}


def register(*ops: Op, infer: InferFn, symbolic: bool = False) -> Callable[[RunFn], RunFn]:
    def wrap(run: RunFn) -> RunFn:
        for op in ops:
            if op in _REGISTRY:
                raise RuntimeError(f"{op} registered twice")
            _REGISTRY[op] = OpDef(op, infer, run, symbolic)
        return run

    return wrap


def supported_ops() -> list[str]:
    _load_families()
    return sorted(op.value for op in _REGISTRY)


def opdef(op: Op, node: Node | None = None) -> OpDef:
    _load_families()
    try:
        return _REGISTRY[op]
    except KeyError:
        where = f" ({node.describe()})" if node is not None else ""
        raise UnsupportedOpError(
            f"op {op.value}{where} has no semantics registered; supported: {', '.join(supported_ops())}"
        ) from None


def is_registered(op: Op) -> bool:
    _load_families()
    return op in _REGISTRY


_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import compiler.ops.families  # noqa: F401  (registers every op module)


# ---- helpers shared by type rules -----------------------------------------------------------
def same_as_input(index: int = 0) -> InferFn:
    def infer(ctx: InferContext) -> list[TensorType]:
        return [ctx.type(index)]

    return infer


def with_dtype(ttype: TensorType, dtype: DType) -> TensorType:
    return TensorType(dtype, ttype.shape)


def normalize_axis(node: Node, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise OpError(node, f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def broadcast_shapes(node: Node, *shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Multidirectional (numpy-style) broadcast of possibly symbolic shapes.

    Two different symbolic dims broadcast to the one with more free symbols (e.g.
    `past_len + seq` over `seq`): the run binds them, and the interpreter checks.
    """
    rank = max((len(s) for s in shapes), default=0)
    result: list[Dim] = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        out: Dim = 1
        for d in dims:
            if isinstance(d, int) and d == 1:
                continue
            if isinstance(out, int) and out == 1:
                out = d
            elif isinstance(out, int) and isinstance(d, int):
                if out != d:
                    raise OpError(node, f"shapes {[list(map(str, s)) for s in shapes]} do not broadcast (axis {axis})")
            elif isinstance(d, int):
                out = d
            elif not isinstance(out, int) and out != d:
                if len(d.free_symbols) > len(out.free_symbols) or (
                    len(d.free_symbols) == len(out.free_symbols) and str(d) > str(out)
                ):
                    out = d
        result.append(out)
    return tuple(result)
