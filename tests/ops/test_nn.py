"""LayerNormalization, RMSNormalization and Pad: numpy semantics vs onnxruntime and type rules
with symbolic dims."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from compiler.ir import DType, TensorType
from compiler.ops.registry import OpError
from tests.ops.values import BATCH, PAST, SEQ, dims, f32, i64, rng

F32, F16, BF16, I64 = DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16, DType.INT64


ORT_CASES = [
    ("LayerNormalization", [f32(2, 3, 8), f32(8), f32(8)], {}, 3, 17),
    ("LayerNormalization", [f32(2, 3, 4), f32(3, 4)], {"axis": 1, "epsilon": 1e-3}, 3, 17),
    ("LayerNormalization", [f32(4, 6) * 5 + 3, f32(4, 6), f32(4, 6)], {"axis": 0}, 1, 17),
    ("RMSNormalization", [f32(2, 3, 8), f32(8)], {}, 1, 23),
    ("RMSNormalization", [f32(2, 3, 4), f32(3, 4)], {"axis": -2, "epsilon": 1e-2}, 1, 23),
    ("Pad", [f32(2, 3), i64(1, 0, 2, 3)], {}, 1, 18),
    ("Pad", [f32(2, 3), i64(1, 2, 0, 1), np.array(-5.0, np.float32)], {"mode": "constant"}, 1, 18),
    ("Pad", [f32(3, 4), i64(2, 1, 1, 2)], {"mode": "reflect"}, 1, 18),
    ("Pad", [f32(3, 4), i64(2, 1, 1, 3)], {"mode": "edge"}, 1, 18),
    ("Pad", [f32(3, 4), i64(2, 1, 1, 3)], {"mode": "wrap"}, 1, 19),
    ("Pad", [f32(2, 3, 4), i64(1, 2), None, i64(-1)], {}, 1, 18),
    ("Pad", [f32(4, 5), i64(-1, 1, 0, -2)], {}, 1, 18),
    ("Pad", [rng.integers(0, 9, (2, 3)).astype(np.int32), i64(0, 1, 0, 1), np.array(7, np.int32)], {}, 1, 18),
    ("Pad", [f32(2, 3)], {"pads": [0, 1, 1, 0], "value": 2.5}, 1, 2),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "outputs", "opset"), ORT_CASES)
def test_matches_onnxruntime(against_ort, op, inputs, attrs, outputs, opset):
    against_ort(op, inputs, attrs, outputs, opset)


@pytest.mark.parametrize("dtype", [np.float16, DType.BFLOAT16.numpy])
def test_half_precision_norms_keep_dtype_and_stash_float32(run_op, dtype):
    x, scale, bias = (f32(2, 16).astype(dtype), f32(16).astype(dtype), f32(16).astype(dtype))
    y, mean, inv_std = run_op("LayerNormalization", [x, scale, bias], {}, 3)
    assert y.dtype == dtype and mean.dtype == np.float32 and inv_std.dtype == np.float32
    wide = run_op("LayerNormalization", [x.astype(np.float32), scale.astype(np.float32), bias.astype(np.float32)])[0]
    np.testing.assert_allclose(y.astype(np.float32), wide, rtol=2e-2, atol=2e-2)
    (r,) = run_op("RMSNormalization", [x, scale])
    assert r.dtype == dtype


# ---- type rules ------------------------------------------------------------------------------
def test_layer_norm_statistics_shape(infer):
    x = TensorType(BF16, (BATCH, SEQ, 4096))
    y, mean, inv_std = infer("LayerNormalization", [x, TensorType(BF16, (4096,))], [None, None], {}, 3)
    assert y == x
    assert mean == TensorType(F32, (BATCH, SEQ, 1)) and inv_std == mean
    (y,) = infer("LayerNormalization", [x, TensorType(BF16, (SEQ, 4096))], [None, None], {"axis": 1})
    assert y == x


def test_rms_norm_output_type_follows_scale(infer):
    (y,) = infer("RMSNormalization", [TensorType(F16, (BATCH, SEQ, 64)), TensorType(F16, (64,))], [None, None])
    assert y == TensorType(F16, (BATCH, SEQ, 64))
    with pytest.raises(OpError, match="stash_type"):
        infer("RMSNormalization", [TensorType(F32, (2, 4)), TensorType(F32, (4,))], [None, None], {"stash_type": 7})
    with pytest.raises(OpError, match="floating-point"):
        infer("RMSNormalization", [TensorType(I64, (2, 4)), TensorType(I64, (4,))], [None, None])


def test_pad_with_symbolic_dims_and_pads(infer):
    x = TensorType(F32, (BATCH, 16, SEQ))
    pads = TensorType(I64, (6,))
    (y,) = infer("Pad", [x, pads], [None, i64(0, 0, 3, 0, 0, 1)])
    assert y.shape == (BATCH, 16, SEQ + 4)
    # pad a causal-conv input up to a symbolic length (pads computed from Shape arithmetic)
    (y,) = infer("Pad", [x, TensorType(I64, (2,)), None, TensorType(I64, (1,))], [None, dims(PAST, 0), None, i64(-1)])
    assert y.shape == (BATCH, 16, PAST + SEQ)


def test_pad_with_runtime_pads_keeps_rank(infer):
    x = TensorType(F32, (BATCH, 16, SEQ))
    (y,) = infer("Pad", [x, TensorType(I64, (2,)), None, TensorType(I64, (1,))], [None, None, None, i64(2)])
    assert y.shape[:2] == (BATCH, 16) and isinstance(y.shape[2], sympy.Symbol)
    (y,) = infer("Pad", [x, TensorType(I64, (6,))], [None, None])
    assert y.rank == 3 and all(isinstance(d, sympy.Symbol) for d in y.shape)


def test_pad_refuses_bad_attributes(infer):
    x = TensorType(F32, (2, 3))
    with pytest.raises(OpError, match="mode"):
        infer("Pad", [x, TensorType(I64, (4,))], [None, i64(0, 0, 0, 0)], {"mode": "mirror"})
    with pytest.raises(OpError, match="two per axis"):
        infer("Pad", [x, TensorType(I64, (3,))], [None, i64(0, 0, 0)])


# ---- symbolic folding ------------------------------------------------------------------------
def test_pad_folds_a_shape_vector(fold):
    # exporters pad a shape vector with ones to broadcast ranks
    (y,) = fold("Pad", [dims(BATCH, SEQ), i64(2, 0), np.array(1, np.int64)])
    assert y.tolist() == [1, 1, BATCH, SEQ]
