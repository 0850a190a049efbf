"""Movement, indexing, shape and cast ops: numpy semantics vs onnxruntime, type rules vs actual
shapes, and the symbolic shape arithmetic torch exporters emit."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from compiler.ir import DType, TensorType
from compiler.ops.registry import OpError
from compiler.ops.shape import shape_value, size_value
from tests.ops.values import BATCH, PAST, SEQ, dims, f32, i64

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
F32, I64 = DType.FLOAT32, DType.INT64


# ---- numpy semantics agree with onnxruntime (and infer predicts the shapes) -----------------
ORT_CASES = [
    ("Reshape", [f32(2, 3, 4), i64(0, -1)], {}, 1, 18),
    ("Reshape", [f32(2, 3, 4), i64(4, 0, 2)], {}, 1, 18),
    ("Reshape", [f32(0, 3), i64(3, 0)], {"allowzero": 1}, 1, 18),
    ("Flatten", [f32(2, 3, 4, 5)], {"axis": -2}, 1, 18),
    ("Flatten", [f32(2, 3)], {"axis": 0}, 1, 18),
    ("Transpose", [f32(2, 3, 4)], {"perm": [1, 2, 0]}, 1, 18),
    ("Transpose", [f32(2, 3, 4)], {}, 1, 18),
    ("Concat", [f32(2, 3), f32(2, 1), f32(2, 0)], {"axis": -1}, 1, 18),
    ("Split", [f32(7, 2)], {"axis": 0, "num_outputs": 3}, 3, 18),
    ("Split", [f32(2, 6), i64(1, 5)], {"axis": 1}, 2, 18),
    ("Split", [f32(6)], {"split": [2, 4]}, 2, 11),
    ("Slice", [f32(5, 6), i64(1, -1), i64(INT64_MAX, -4), i64(0, 1), i64(1, -1)], {}, 1, 18),
    ("Slice", [f32(5, 6), i64(-2), i64(INT64_MIN), i64(0), i64(-2)], {}, 1, 18),
    ("Slice", [f32(5, 6), i64(10), i64(20)], {}, 1, 18),
    ("Slice", [f32(5, 6)], {"starts": [1], "ends": [-1], "axes": [1]}, 1, 9),
    ("Gather", [f32(5, 4), i64(-1, 0, 3)], {"axis": 0}, 1, 18),
    ("Gather", [f32(5, 4), np.array([[1, -2]], dtype=np.int64)], {"axis": 1}, 1, 18),
    ("Gather", [f32(5, 4), np.array(2, dtype=np.int64)], {"axis": 0}, 1, 18),
    ("GatherElements", [f32(3, 4), np.array([[0, -1], [2, 1], [1, 1]], dtype=np.int64)], {"axis": 1}, 1, 18),
    ("GatherND", [f32(2, 3, 4), np.array([[[0, 1]], [[2, -1]]], dtype=np.int64)], {"batch_dims": 1}, 1, 18),
    ("GatherND", [f32(2, 3, 4), np.array([[1], [0]], dtype=np.int64)], {}, 1, 18),
    ("ScatterND", [f32(4, 3), np.array([[1], [-1]], dtype=np.int64), f32(2, 3)], {}, 1, 18),
    ("ScatterND", [f32(4, 3), np.array([[1, 2], [1, 2]], dtype=np.int64), f32(2)], {"reduction": "add"}, 1, 18),
    ("ScatterElements", [f32(3, 3), np.array([[1, -1]], dtype=np.int64), f32(1, 2)], {"axis": 1}, 1, 18),
    (
        "ScatterElements",
        [f32(3, 3), np.array([[1, 1]], dtype=np.int64), f32(1, 2)],
        {"axis": 1, "reduction": "mul"},
        1,
        18,
    ),
    ("Expand", [f32(3, 1), i64(2, 1, 4)], {}, 1, 18),
    ("Tile", [f32(2, 3), i64(2, 1)], {}, 1, 18),
    ("Unsqueeze", [f32(2, 3), i64(-1, 0)], {}, 1, 18),
    ("Unsqueeze", [f32(2, 3)], {"axes": [1]}, 1, 11),
    ("Squeeze", [f32(1, 3, 1), i64(-1)], {}, 1, 18),
    ("Squeeze", [f32(1, 3, 1)], {}, 1, 18),
    ("Shape", [f32(2, 3, 4)], {"start": -2}, 1, 18),
    ("Shape", [f32(2, 3, 4)], {"start": 1, "end": 9}, 1, 18),
    ("Size", [f32(2, 3, 4)], {}, 1, 18),
    ("Range", [np.array(10, np.int64), np.array(2, np.int64), np.array(-3, np.int64)], {}, 1, 18),
    ("Range", [np.array(0.5, np.float32), np.array(2.0, np.float32), np.array(0.4, np.float32)], {}, 1, 18),
    ("Cast", [f32(3, 4) * 100], {"to": 6}, 1, 18),
    ("Cast", [f32(3, 4)], {"to": 10}, 1, 18),
    ("Cast", [i64(0, 3, -1)], {"to": 9}, 1, 18),
    ("CastLike", [i64(1, 2, 3), np.zeros(1, np.float16)], {}, 1, 18),
    ("Identity", [f32(2)], {}, 1, 18),
    ("Dropout", [f32(3, 4)], {}, 2, 18),
    ("Dropout", [f32(3, 4), np.array(0.3, np.float32), np.array(False)], {}, 2, 18),
    ("ConstantOfShape", [i64(2, 3)], {"value": np.array([7], dtype=np.int32)}, 1, 18),
    ("ConstantOfShape", [i64(0)], {}, 1, 18),
    ("Trilu", [f32(2, 4, 5), np.array(-1, np.int64)], {"upper": 0}, 1, 18),
    ("Trilu", [f32(4, 3)], {}, 1, 18),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "outputs", "opset"), ORT_CASES)
def test_matches_onnxruntime(against_ort, op, inputs, attrs, outputs, opset):
    against_ort(op, inputs, attrs, outputs, opset)


def test_bfloat16_moves_bit_exact(run_op):
    x = f32(2, 3).astype(DType.BFLOAT16.numpy)
    (y,) = run_op("Transpose", [x])
    np.testing.assert_array_equal(y.view(np.uint16), x.T.view(np.uint16))


def test_cast_to_float8_saturates(run_op):
    x = np.array([1e6, -1e6, np.inf, np.nan, 0.3], dtype=np.float32)
    (y,) = run_op("Cast", [x], {"to": DType.FLOAT8E4M3.onnx_code})
    assert y.dtype == DType.FLOAT8E4M3.numpy
    assert [float(v) for v in y[:3]] == [448.0, -448.0, 448.0] and np.isnan(float(y[3]))
    (z,) = run_op("Cast", [x], {"to": DType.FLOAT8E4M3.onnx_code, "saturate": 0})
    assert np.isnan(float(z[0]))


def test_training_dropout_is_refused(infer):
    x = TensorType(F32, (2,))
    with pytest.raises(OpError, match="training-mode"):
        infer("Dropout", [x, TensorType(F32, ()), TensorType(DType.BOOL, ())], [None, np.array(0.5), np.array(True)])


# ---- symbolic shapes: type rules ----------------------------------------------------------------
def test_reshape_resolves_zero_and_minus_one_symbolically(infer):
    x = TensorType(F32, (BATCH, SEQ, 4096))
    shape = TensorType(I64, (4,))
    (y,) = infer("Reshape", [x, shape], [None, i64(0, 0, -1, 128)])
    assert y.shape == (BATCH, SEQ, 32, 128)
    (y,) = infer("Reshape", [x, TensorType(I64, (2,))], [None, i64(-1, 4096)])
    assert y.shape == (BATCH * SEQ, 4096)
    merged = TensorType(F32, (BATCH, PAST + SEQ, 8, 128))
    (y,) = infer("Reshape", [merged, TensorType(I64, (3,))], [None, i64(0, -1, 1024)])
    assert y.shape == (BATCH, PAST + SEQ, 1024)


def test_reshape_fed_by_folded_shape_arithmetic(infer, fold):
    # Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch's dynamo exporter writes it
    x = TensorType(F32, (BATCH, SEQ, 4096))
    shape = shape_value(x)
    assert list(shape) == [BATCH, SEQ, 4096]
    batch = fold("Unsqueeze", [fold("Gather", [shape, np.array(0)])[0], i64(0)])[0]
    seq = fold("Unsqueeze", [fold("Gather", [shape, np.array(1)])[0], i64(0)])[0]
    (target,) = fold("Concat", [batch, seq, i64(32, 128)], {"axis": 0})
    assert list(target) == [BATCH, SEQ, 32, 128]
    (y,) = infer("Reshape", [x, TensorType(I64, (4,))], [None, target])
    assert y.shape == (BATCH, SEQ, 32, 128)


def test_reshape_with_runtime_shape_gets_fresh_dims(infer):
    (y,) = infer("Reshape", [TensorType(F32, (6,)), TensorType(I64, (2,))], [None, None])
    assert y.rank == 2 and all(isinstance(d, sympy.Symbol) for d in y.shape)


def test_range_with_symbolic_limit(infer):
    scalar = TensorType(I64, ())
    (y,) = infer("Range", [scalar] * 3, [np.array(0), dims(SEQ).reshape(()), np.array(1)])
    assert y.shape == (SEQ,)
    (y,) = infer("Range", [scalar] * 3, [dims(PAST).reshape(()), dims(PAST + SEQ).reshape(()), np.array(1)])
    assert y.shape == (SEQ,)
    (y,) = infer("Range", [scalar] * 3, [np.array(0), dims(SEQ).reshape(()), np.array(2)])
    assert y.shape == (sympy.ceiling(SEQ / 2),)


@pytest.mark.parametrize(
    ("start", "end", "step", "expected"),
    [
        (1, INT64_MAX, 1, PAST + SEQ - 1),
        (0, -1, 1, PAST + SEQ - 1),
        (-1, INT64_MAX, 1, 1),
        (0, INT64_MAX, 1, PAST + SEQ),
        (2, 5, 1, 3),
        (-1, INT64_MIN, -1, PAST + SEQ),
    ],
)
def test_slice_on_symbolic_dim(infer, start, end, step, expected):
    x = TensorType(F32, (BATCH, PAST + SEQ, 64))
    bound = TensorType(I64, (1,))
    values = [None, i64(start), i64(end), i64(1), i64(step)]
    (y,) = infer("Slice", [x, bound, bound, bound, bound], values)
    assert y.shape == (BATCH, expected, 64)


def test_slice_with_symbolic_bounds(infer):
    bound = TensorType(I64, (1,))
    # the last `seq` positions of the cache, and a causal mask cut to the current length
    (y,) = infer("Slice", [TensorType(F32, (PAST + SEQ, 8)), bound, bound], [None, dims(-SEQ), i64(INT64_MAX)])
    assert y.shape == (SEQ, 8)
    (y,) = infer("Slice", [TensorType(F32, (4096, 4096)), bound, bound], [None, i64(0), dims(SEQ)])
    assert y.shape == (SEQ, 4096)


def test_concat_adds_symbolic_dims(infer):
    past = TensorType(F32, (BATCH, 8, PAST, 128))
    new = TensorType(F32, (BATCH, 8, SEQ, 128))
    (y,) = infer("Concat", [past, new], [None, None], {"axis": -2})
    assert y.shape == (BATCH, 8, PAST + SEQ, 128)


def test_expand_and_constant_of_shape_take_symbolic_shapes(infer):
    shape = TensorType(I64, (4,))
    (y,) = infer("Expand", [TensorType(F32, (1, 1, SEQ, 1)), shape], [None, dims(BATCH, 1, SEQ, PAST + SEQ)])
    assert y.shape == (BATCH, 1, SEQ, PAST + SEQ)
    (y,) = infer("ConstantOfShape", [TensorType(I64, (2,))], [dims(SEQ, PAST + SEQ)])
    assert y == TensorType(F32, (SEQ, PAST + SEQ))


def test_split_tile_flatten_unsqueeze_on_symbolic_dims(infer):
    x = TensorType(F32, (BATCH, SEQ, 3 * 4096))
    parts = infer("Split", [x], [None], {"axis": -1}, outputs=3)
    assert [p.shape for p in parts] == [(BATCH, SEQ, 4096)] * 3
    (y,) = infer("Tile", [TensorType(F32, (BATCH, SEQ)), TensorType(I64, (2,))], [None, dims(1, PAST)])
    assert y.shape == (BATCH, PAST * SEQ)
    (y,) = infer("Flatten", [x], [None], {"axis": 2})
    assert y.shape == (BATCH * SEQ, 3 * 4096)
    (y,) = infer("Unsqueeze", [TensorType(F32, (BATCH, SEQ)), TensorType(I64, (2,))], [None, i64(1, -1)])
    assert y.shape == (BATCH, 1, SEQ, 1)


def test_shape_and_size_values():
    x = TensorType(F32, (BATCH, SEQ, 4096))
    assert list(shape_value(x)) == [BATCH, SEQ, 4096] and shape_value(x).dtype == object
    assert shape_value(TensorType(F32, (2, 3))).dtype == np.int64
    assert size_value(x).item() == BATCH * SEQ * 4096


# ---- symbolic shapes: runs on folded values -----------------------------------------------------
def test_runs_on_object_arrays(fold):
    shape = dims(BATCH, SEQ, 4096)
    assert list(fold("Slice", [shape, i64(-1), i64(INT64_MAX)])[0]) == [4096]
    assert list(fold("Slice", [shape, i64(0), i64(-1)])[0]) == [BATCH, SEQ]
    assert fold("Gather", [shape, np.array(1)])[0].item() == SEQ
    assert fold("Squeeze", [dims(SEQ), i64(0)])[0].item() == SEQ
    assert list(fold("Reshape", [shape, i64(3, 1)])[0][:, 0]) == [BATCH, SEQ, 4096]
    assert list(fold("Expand", [dims(SEQ), i64(2)])[0]) == [SEQ, SEQ]
    assert [p.tolist() for p in fold("Split", [shape], {"axis": 0}, outputs=3)] == [[BATCH], [SEQ], [4096]]
    assert fold("Identity", [shape])[0] is shape


def test_cast_of_symbolic_shape(fold):
    shape = dims(BATCH, 4096)
    assert list(fold("Cast", [shape], {"to": DType.INT64.onnx_code})[0]) == [BATCH, 4096]
    (as_float,) = fold("Cast", [dims(2, 3)], {"to": DType.FLOAT32.onnx_code})
    assert as_float.dtype == np.float32  # every element a number: a real array again
    assert fold("Cast", [shape], {"to": DType.BOOL.onnx_code})[0].tolist() == [True, True]


# ---- errors name what is wrong -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "types", "values", "attrs", "message"),
    [
        ("Reshape", [TensorType(F32, (2, 3)), TensorType(I64, (1,))], [None, i64(4)], {}, "cannot reshape"),
        ("Reshape", [TensorType(F32, (2, 3)), TensorType(I64, (2,))], [None, i64(-1, -1)], {}, "more than one -1"),
        ("Transpose", [TensorType(F32, (2, 3))], [None], {"perm": (0, 0)}, "not a permutation"),
        ("Concat", [TensorType(F32, (2, 3)), TensorType(F32, (4, 3))], [None, None], {"axis": 1}, "differ"),
        ("Cast", [TensorType(F32, (2,))], [None], {"to": 99}, "unsupported ONNX element type"),
        ("Squeeze", [TensorType(F32, (2, 3)), TensorType(I64, (1,))], [None, i64(0)], {}, "cannot squeeze"),
        ("Split", [TensorType(F32, (5,))], [None], {}, "equal pieces"),
        ("Gather", [TensorType(F32, (5,)), TensorType(F32, (1,))], [None, None], {}, "int32 or int64"),
    ],
)
def test_bad_nodes_fail_clearly(infer, op, types, values, attrs, message):
    outputs = 2 if op == "Split" else 1
    with pytest.raises(OpError, match=message):
        infer(op, types, values, attrs, outputs)
