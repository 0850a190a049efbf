"""Elementwise arithmetic: the corners fixed in review (integer Pow with fractional or negative
exponents, float Mod with fmod=0, stable Sigmoid, exact integer Div on folded values, Max/Min
on symbolic dims) against onnxruntime and the shape folder."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import DType, TensorType
from tests.ops.values import BATCH, PAST, SEQ, dims, f32

ORT_CASES = [
    ("Pow", [np.array([4, 2, -3, 5], np.int32), np.array([0.5, -1, 2, 1.5], np.float32)], {}, 18),
    ("Pow", [np.array([4, 2, -3, 5], np.int64), np.array([2, -1, 3, 0], np.int64)], {}, 18),
    ("Pow", [np.array([1.5, 2, 3], np.float16), np.array([2.5, 2, 0.5], np.float32)], {}, 18),
    ("Mod", [np.array([-4.3, 7.2, 5.0], np.float32), np.array([2.1, -3.4, 8.0], np.float32)], {"fmod": 0}, 28),
    ("Mod", [np.array([-4.3, 7.2, 5.0], np.float32), np.array([2.1, -3.4, 8.0], np.float32)], {"fmod": 1}, 13),
    ("Mod", [np.array([-7, 7, -7], np.int32), np.array([2, -2, -2], np.int32)], {}, 13),
    ("Div", [np.array([-7, 7, -7, 7], np.int32), np.array([2, -2, -2, 2], np.int32)], {}, 13),
    ("Sigmoid", [f32(3, 4) * 5], {}, 13),
    ("Max", [f32(3, 1), f32(1, 4), f32(4)], {}, 13),
    ("Min", [np.array([3, -1], np.int64), np.array([2, 5], np.int64)], {}, 13),
    ("Clip", [np.array([-3, 0, 5], np.int32), np.array(-1, np.int32), np.array(2, np.int32)], {}, 13),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "opset"), ORT_CASES)
def test_matches_onnxruntime(against_ort, op, inputs, attrs, opset):
    against_ort(op, inputs, attrs, 1, opset)


def test_sigmoid_keeps_tiny_results(run_op):
    (y,) = run_op("Sigmoid", [np.array([-100.0, -20.0, 0.0, 100.0], np.float32)])
    assert y[1] == pytest.approx(2.0611537e-09) and y[0] > 0 and y[3] == 1.0


def test_integer_div_on_folded_values_is_exact(fold):
    big = 2**62 + 1  # would round if divided through a float
    (y,) = fold("Div", [dims(big, -7, 4 * SEQ), dims(1, 2, 4)])
    assert y.tolist() == [big, -3, SEQ]


def test_max_min_on_symbolic_dims(fold):
    (y,) = fold("Max", [dims(SEQ, PAST + SEQ, 3), dims(1, SEQ, 5)])
    assert y.tolist() == [SEQ, PAST + SEQ, 5]
    (y,) = fold("Min", [dims(SEQ, 0), dims(1, PAST)])
    assert y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="cannot decide"):
        fold("Max", [dims(SEQ), dims(PAST)])


def test_binary_ops_broadcast_symbolic_types(infer):
    f32t = DType.FLOAT32
    (y,) = infer("Add", [TensorType(f32t, (BATCH, 1, SEQ)), TensorType(f32t, (32, 1))], [None, None])
    assert y.shape == (BATCH, 32, SEQ)
