"""Comparisons, boolean logic and Where: numpy semantics vs onnxruntime, type rules, and the
symbolic comparisons constant folding runs on shape tensors."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import DType, TensorType
from compiler.ops.registry import OpError
from tests.ops.values import BATCH, PAST, SEQ, dims, f32, rng

F32, I64, BOOL = DType.FLOAT32, DType.INT64, DType.BOOL


def ints(*shape: int, dtype=np.int64) -> np.ndarray:
    return rng.integers(-3, 4, size=shape).astype(dtype)


def bools(*shape: int) -> np.ndarray:
    return rng.random(shape) > 0.5


SPECIAL = np.array([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf], dtype=np.float32)

ORT_CASES = [
    ("Equal", [ints(3, 4), ints(4)], {}, 19),
    ("Equal", [f32(2, 3), f32(2, 3)], {}, 19),
    ("Equal", [SPECIAL, SPECIAL[::-1].copy()], {}, 19),
    ("Greater", [ints(2, 3, dtype=np.int32), ints(3, dtype=np.int32)], {}, 13),
    ("Greater", [SPECIAL, np.zeros(6, np.float32)], {}, 13),
    ("Less", [f32(3, 1), f32(1, 4)], {}, 13),
    ("LessOrEqual", [ints(3, 4, dtype=np.uint8), ints(3, 4, dtype=np.uint8)], {}, 16),
    ("GreaterOrEqual", [f32(2, 3), f32(2, 1)], {}, 16),
    ("And", [bools(3, 4), bools(4)], {}, 7),
    ("Or", [bools(2, 1, 3), bools(4, 1)], {}, 7),
    ("Xor", [bools(3, 4), bools(3, 4)], {}, 7),
    ("Not", [bools(2, 3)], {}, 1),
    ("IsNaN", [SPECIAL], {}, 20),
    ("IsInf", [SPECIAL], {}, 20),
    ("IsInf", [SPECIAL], {"detect_negative": 0}, 20),
    ("IsInf", [SPECIAL], {"detect_positive": 0}, 20),
    ("Where", [bools(3, 1), f32(1, 4), f32(3, 4)], {}, 16),
    ("Where", [bools(4), ints(2, 1), np.array(7, np.int64)], {}, 16),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "opset"), ORT_CASES)
def test_matches_onnxruntime(against_ort, op, inputs, attrs, opset):
    against_ort(op, inputs, attrs, 1, opset)


def test_equal_on_strings(run_op):
    a = np.array(["a", "bc", "d"], dtype=object)
    (y,) = run_op("Equal", [a, np.array(["a", "b", "d"], dtype=object)])
    assert y.dtype == np.bool_ and y.tolist() == [True, False, True]


def test_where_keeps_bfloat16(run_op):
    x = f32(2, 3).astype(DType.BFLOAT16.numpy)
    (y,) = run_op("Where", [bools(2, 3), x, x[::-1].copy()])
    assert y.dtype == DType.BFLOAT16.numpy


def test_isnan_on_bfloat16(run_op):
    (y,) = run_op("IsNaN", [SPECIAL.astype(DType.BFLOAT16.numpy)])
    assert y.tolist() == [False, False, False, True, False, False]


# ---- type rules ------------------------------------------------------------------------------
def test_comparison_broadcasts_symbolic_dims_to_bool(infer):
    (y,) = infer("Less", [TensorType(I64, (BATCH, 1)), TensorType(I64, (1, PAST + SEQ))], [None, None])
    assert y == TensorType(BOOL, (BATCH, PAST + SEQ))


def test_where_takes_dtype_from_x_and_broadcasts_three_ways(infer):
    types = [TensorType(BOOL, (1, 1, SEQ, PAST + SEQ)), TensorType(F32, (BATCH, 1, 1, 1)), TensorType(F32, ())]
    (y,) = infer("Where", types, [None] * 3)
    assert y == TensorType(F32, (BATCH, 1, SEQ, PAST + SEQ))


@pytest.mark.parametrize(
    ("op", "types", "message"),
    [
        ("Equal", [TensorType(F32, (2,)), TensorType(I64, (2,))], "differ"),
        ("And", [TensorType(BOOL, (2,)), TensorType(I64, (2,))], "bool"),
        ("Where", [TensorType(F32, (2,)), TensorType(F32, (2,)), TensorType(F32, (2,))], "condition"),
        ("IsNaN", [TensorType(I64, (2,))], "floating-point"),
        ("Greater", [TensorType(F32, (2, 3)), TensorType(F32, (4,))], "broadcast"),
    ],
)
def test_bad_inputs_are_refused(infer, op, types, message):
    with pytest.raises(OpError, match=message):
        infer(op, types, [None] * len(types))


# ---- symbolic folding ------------------------------------------------------------------------
def test_equal_on_dims_answers_only_what_is_provable(fold):
    # exporters compare a shape with -1 or 0 to resolve Reshape targets
    (y,) = fold("Equal", [dims(BATCH, SEQ, 4096), dims(BATCH, -1, 4096)])
    assert y.dtype == np.bool_ and y.tolist() == [True, False, True]
    (y,) = fold("Equal", [dims(PAST + SEQ), dims(SEQ + PAST)])
    assert y.tolist() == [True]
    with pytest.raises(ValueError, match="cannot decide"):
        fold("Equal", [dims(SEQ), dims(1)])


def test_ordering_on_dims(fold):
    (y,) = fold("Less", [dims(SEQ, 0, PAST + SEQ), dims(0, SEQ, SEQ)])
    assert y.tolist() == [False, True, False]
    (y,) = fold("GreaterOrEqual", [dims(SEQ), dims(1)])
    assert y.tolist() == [True]
    with pytest.raises(ValueError, match="cannot decide"):
        fold("Greater", [dims(SEQ), dims(PAST)])


def test_where_selects_symbolic_dims(fold):
    # Where(Equal(shape, -1), 1, shape): the pattern torch.export writes before an Expand
    shape = dims(BATCH, -1, 128)
    (is_minus_one,) = fold("Equal", [shape, np.array(-1, dtype=np.int64)])
    (y,) = fold("Where", [is_minus_one, np.array(1, dtype=np.int64), shape])
    assert y.tolist() == [BATCH, 1, 128]


def test_logic_on_folded_bool_values(fold):
    (y,) = fold("And", [np.array([True, True], dtype=object), np.array([True, False])])
    assert y.dtype == np.bool_ and y.tolist() == [True, False]
    (y,) = fold("Not", [np.array([True, False], dtype=object)])
    assert y.tolist() == [False, True]
