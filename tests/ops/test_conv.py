"""Conv: the im2col numpy model vs onnxruntime over strides, dilations, pads, auto_pad and
groups (Mamba's depthwise causal conv1d included), and the output-size rule on symbolic dims."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from compiler.ir import DType, TensorType
from compiler.ops.registry import OpError
from tests.ops.values import BATCH, SEQ, f32

F32 = DType.FLOAT32


ORT_CASES = [
    # Mamba's short conv: depthwise (group = channels), kernel 4, left-padded by 3
    ([f32(2, 8, 11), f32(8, 1, 4), f32(8)], {"group": 8, "pads": [3, 0]}),
    ([f32(1, 4, 9), f32(6, 2, 3)], {"group": 2, "strides": [2], "dilations": [2], "pads": [1, 2]}),
    ([f32(2, 3, 7, 8), f32(5, 3, 3, 3), f32(5)], {"pads": [1, 1, 1, 1]}),
    ([f32(1, 4, 9, 10), f32(4, 2, 3, 2)], {"group": 2, "strides": [2, 3], "dilations": [1, 2], "pads": [0, 1, 2, 0]}),
    ([f32(1, 2, 7, 8), f32(3, 2, 3, 3)], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ([f32(1, 2, 7, 8), f32(3, 2, 4, 3)], {"auto_pad": "SAME_LOWER", "strides": [2, 1]}),
    ([f32(1, 2, 7, 8), f32(3, 2, 3, 3)], {"auto_pad": "VALID", "strides": [2, 3]}),
    ([f32(1, 2, 5, 6, 4), f32(4, 2, 2, 3, 2), f32(4)], {"pads": [1, 0, 1, 0, 1, 1], "kernel_shape": [2, 3, 2]}),
]


@pytest.mark.parametrize(("inputs", "attrs"), ORT_CASES)
def test_matches_onnxruntime(against_ort, inputs, attrs):
    against_ort("Conv", inputs, attrs, 1, 18, rtol=1e-4)


def test_bfloat16_conv_accumulates_in_float32(run_op):
    x, w = f32(1, 4, 12), f32(4, 1, 4)
    (y,) = run_op("Conv", [x.astype(DType.BFLOAT16.numpy), w.astype(DType.BFLOAT16.numpy)], {"group": 4})
    assert y.dtype == DType.BFLOAT16.numpy
    (wide,) = run_op(
        "Conv",
        [x.astype(DType.BFLOAT16.numpy).astype(np.float32), w.astype(DType.BFLOAT16.numpy).astype(np.float32)],
        {"group": 4},
    )
    np.testing.assert_allclose(y.astype(np.float32), wide, rtol=1e-2, atol=1e-2)


def test_float64_conv_stays_float64(run_op):
    # onnxruntime has no float64 Conv kernel; compare with our float32 result instead
    x, w = f32(1, 3, 6, 6), f32(2, 3, 3, 3)
    (y,) = run_op("Conv", [x.astype(np.float64), w.astype(np.float64)])
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, run_op("Conv", [x, w])[0], rtol=1e-5, atol=1e-5)


def test_output_size_on_symbolic_length(infer):
    x = TensorType(F32, (BATCH, 8, SEQ))
    w = TensorType(F32, (8, 1, 4))
    (y,) = infer("Conv", [x, w], [None, None], {"group": 8, "pads": [3, 0]})
    assert y.shape == (BATCH, 8, SEQ)  # causal: same length
    (y,) = infer("Conv", [x, w], [None, None], {"group": 8})
    assert y.shape == (BATCH, 8, SEQ - 3)
    (y,) = infer("Conv", [x, w], [None, None], {"group": 8, "strides": [2], "pads": [3, 0]})
    assert y.shape == (BATCH, 8, sympy.floor((SEQ - 1) / 2) + 1)
    (y,) = infer("Conv", [x, w], [None, None], {"group": 8, "auto_pad": "SAME_UPPER"})
    assert y.shape == (BATCH, 8, SEQ)


@pytest.mark.parametrize(
    ("w_shape", "attrs", "message"),
    [
        ((8, 2, 4), {"group": 8}, "channels"),
        ((6, 1, 4), {"group": 4}, "channels"),
        ((8, 1, 4), {"group": 8, "strides": [1, 1]}, "strides"),
        ((8, 1, 4), {"group": 8, "kernel_shape": [3]}, "kernel_shape"),
        ((8, 1, 4), {"group": 8, "auto_pad": "SAME"}, "auto_pad"),
    ],
)
def test_bad_attributes_are_refused(infer, w_shape, attrs, message):
    with pytest.raises(OpError, match=message):
        infer("Conv", [TensorType(F32, (1, 8, 16)), TensorType(F32, w_shape)], [None, None], attrs)
