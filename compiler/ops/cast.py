"""Element-type conversions and pass-throughs: Cast, CastLike, Identity, Dropout (inference)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import sympy

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.ops.dims import object_or_typed, provably_nonnegative
from compiler.ops.registry import InferContext, register, same_as_input

_FLOAT8 = (DType.FLOAT8E4M3, DType.FLOAT8E5M2, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2FNUZ)


def cast_array(x: np.ndarray, to: DType, saturate: bool = True) -> np.ndarray:
    """ONNX Cast of `x` to `to`. Object arrays (folded shape values) stay symbolic where needed."""
    if x.dtype == object and to != DType.STRING:
        return _cast_symbolic(x, to)
    if to == DType.STRING:
        return np.array([str(v) for v in x.reshape(-1)], dtype=object).reshape(x.shape)
    if to in _FLOAT8 and saturate and DType.from_numpy(x.dtype).is_float:
        # Saturation clamps out-of-range values (infinities included) to the largest finite
        # float8; NaN stays NaN. Clamping in float64 keeps the final rounding a single one.
        info = ml_dtypes.finfo(to.numpy)
        x = np.clip(x.astype(np.float64), float(info.min), float(info.max))
    return x.astype(to.numpy)


def _cast_symbolic(x: np.ndarray, to: DType) -> np.ndarray:
    if to == DType.BOOL:
        return np.vectorize(_truth, otypes=[bool])(x) if x.size else x.astype(bool)
    # Numbers take the target type; a symbolic dim stays a sympy expression (the same number).
    return object_or_typed(x, to.numpy)


def _truth(v: object) -> bool:
    if not isinstance(v, sympy.Basic):
        return bool(v)
    if provably_nonnegative(v - 1):
        return True
    if v == 0:
        return False
    raise ValueError(f"cannot decide whether symbolic value {v} is zero")


def _infer_cast(ctx: InferContext) -> list[TensorType]:
    to = ctx.attr("to")
    if to is None:
        raise ctx.fail("missing attribute 'to'")
    try:
        dtype = DType.from_onnx(to)
    except ValueError as e:
        raise ctx.fail(str(e)) from None
    return [TensorType(dtype, ctx.type(0).shape)]


@register(Op.CAST, infer=_infer_cast, symbolic=True)
def run_cast(node: Node, inputs: list) -> list[np.ndarray]:
    return [cast_array(inputs[0], DType.from_onnx(node.attr("to")), bool(node.attr("saturate", 1)))]


def _infer_cast_like(ctx: InferContext) -> list[TensorType]:
    return [TensorType(ctx.type(1).dtype, ctx.type(0).shape)]


@register(Op.CAST_LIKE, infer=_infer_cast_like, symbolic=True)
def run_cast_like(node: Node, inputs: list) -> list[np.ndarray]:
    like = inputs[1]
    # A folded `like` may itself be an object array; the node's type then says the target.
    to = node.output_types[0].dtype if like.dtype == object else DType.from_numpy(like.dtype)
    return [cast_array(inputs[0], to, bool(node.attr("saturate", 1)))]


@register(Op.IDENTITY, infer=same_as_input(0), symbolic=True)
def run_identity(node: Node, inputs: list) -> list[np.ndarray]:
    return [inputs[0]]


# ---- Dropout ---------------------------------------------------------------------------------
def _is_training(training_mode: np.ndarray | None) -> bool:
    return training_mode is not None and bool(np.asarray(training_mode).reshape(-1)[0])


def _ratio(node: Node, ratio: np.ndarray | None) -> float:
    # opset < 12 gives the ratio as an attribute, later opsets as input 1
    return float(np.asarray(ratio).reshape(-1)[0]) if ratio is not None else float(node.attr("ratio", 0.5))


def _infer_dropout(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    ratio_unknown = ctx.has_input(1) and ctx.value(1) is None
    if _is_training(ctx.value(2)) and not ratio_unknown and _ratio(ctx.node, ctx.value(1)) > 0:
        raise ctx.fail("training-mode Dropout drops at random; Tessera models inference (training_mode=0)")
    types = [x, TensorType(DType.BOOL, x.shape)]
    return types[: len(ctx.node.outputs)]


@register(Op.DROPOUT, infer=_infer_dropout, symbolic=True)
def run_dropout(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    ratio = inputs[1] if len(inputs) > 1 else None
    training = inputs[2] if len(inputs) > 2 else None
    if _is_training(training) and _ratio(node, ratio) > 0:
        raise ValueError(f"{node.describe()}: training-mode Dropout drops at random; only inference is modelled")
    # Inference (or ratio 0): every element is kept and the mask is all True.
    outputs = [x, np.ones(x.shape, dtype=bool)]
    return outputs[: len(node.outputs)]
