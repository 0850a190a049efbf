"""MatMul, Gemm and Einsum: numpy semantics vs onnxruntime, type rules incl. symbolic dims."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import DType, TensorType
from compiler.ops.matmul import parse_einsum
from compiler.ops.registry import OpError
from tests.ops.values import BATCH, PAST, SEQ, f32, rng

F32 = DType.FLOAT32


def i32(*shape: int) -> np.ndarray:
    return rng.integers(-5, 5, shape).astype(np.int32)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (f32(3), f32(3)),
        (f32(3), f32(2, 3, 4)),
        (f32(2, 1, 3, 4), f32(4)),
        (f32(2, 1, 3, 4), f32(5, 4, 2)),
        (f32(3, 4), f32(4, 5)),
        (i32(2, 3, 4), i32(4, 2)),
        (f32(2, 3).astype(np.float16), f32(3, 2).astype(np.float16)),
    ],
)
def test_matmul_matches_onnxruntime(against_ort, a, b):
    against_ort("MatMul", [a, b], rtol=1e-3 if a.dtype == np.float16 else 1e-5)


def test_bfloat16_matmul_rounds_once(run_op):
    bf16 = DType.BFLOAT16.numpy
    a, b = f32(4, 8).astype(bf16), f32(8, 3).astype(bf16)
    (y,) = run_op("MatMul", [a, b])
    assert y.dtype == bf16
    # float32 accumulation, one rounding to bf16 at the end
    expected = (a.astype(np.float32) @ b.astype(np.float32)).astype(bf16)
    np.testing.assert_array_equal(y.view(np.uint16), expected.view(np.uint16))


@pytest.mark.parametrize(
    ("inputs", "attrs"),
    [
        ([f32(3, 4), f32(4, 5)], {}),
        ([f32(4, 3), f32(5, 4), f32(3, 5)], {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}),
        ([f32(3, 4), f32(4, 5), f32(5)], {"beta": -1.0}),
        ([f32(3, 4), f32(4, 5), f32(1)], {}),
        ([f32(3, 4), f32(4, 5), f32(3, 1)], {"alpha": 3.0}),
    ],
)
def test_gemm_matches_onnxruntime(against_ort, inputs, attrs):
    against_ort("Gemm", inputs, attrs)


@pytest.mark.parametrize(
    ("equation", "inputs"),
    [
        ("ij,jk->ik", [f32(2, 3), f32(3, 4)]),
        ("bhqd,bhkd->bhqk", [f32(1, 2, 3, 4), f32(1, 2, 5, 4)]),
        ("...ij,...jk->...ik", [f32(2, 3, 4), f32(1, 4, 5)]),
        ("ij,jk", [f32(2, 3), f32(3, 4)]),
        ("ii->i", [f32(3, 3)]),
        ("ij->", [f32(2, 3)]),
        ("i,i", [f32(4), f32(4)]),
        ("...ii->...i", [f32(2, 3, 3)]),
    ],
)
def test_einsum_matches_onnxruntime(against_ort, equation, inputs):
    against_ort("Einsum", inputs, {"equation": equation}, rtol=1e-4)


# ---- type rules on symbolic shapes --------------------------------------------------------------
def test_matmul_infers_symbolic_batch_dims(infer):
    x = TensorType(F32, (BATCH, SEQ, 4096))
    w = TensorType(F32, (4096, 14336))
    assert infer("MatMul", [x, w], [None, None])[0].shape == (BATCH, SEQ, 14336)
    q = TensorType(F32, (BATCH, 32, SEQ, 128))
    k_t = TensorType(F32, (BATCH, 32, 128, PAST + SEQ))
    assert infer("MatMul", [q, k_t], [None, None])[0].shape == (BATCH, 32, SEQ, PAST + SEQ)
    v = TensorType(F32, (4096,))
    assert infer("MatMul", [x, v], [None, None])[0].shape == (BATCH, SEQ)


def test_einsum_infers_symbolic_and_ellipsis_dims(infer):
    q = TensorType(F32, (BATCH, 32, SEQ, 128))
    k = TensorType(F32, (BATCH, 32, PAST + SEQ, 128))
    (y,) = infer("Einsum", [q, k], [None, None], {"equation": "bhqd, bhkd -> bhqk"})
    assert y.shape == (BATCH, 32, SEQ, PAST + SEQ)
    (y,) = infer(
        "Einsum", [TensorType(F32, (BATCH, SEQ, 64)), TensorType(F32, (64, 8))], [None, None], {"equation": "...d,de"}
    )
    assert y.shape == (BATCH, SEQ, 8)


def test_einsum_implicit_output_is_sorted_with_broadcast_first():
    inputs, output = parse_einsum("...ba,ac", [3, 2])
    assert inputs == [[".0", "b", "a"], ["a", "c"]]
    assert output == [".0", "b", "c"]


@pytest.mark.parametrize(
    ("op", "types", "attrs", "message"),
    [
        ("MatMul", [TensorType(F32, (2, 3)), TensorType(F32, (4, 5))], {}, "contracted dims differ"),
        ("MatMul", [TensorType(F32, (2, 3)), TensorType(DType.FLOAT16, (3, 5))], {}, "types differ"),
        ("Gemm", [TensorType(F32, (2, 3, 1)), TensorType(F32, (3, 5))], {}, "matrices"),
        ("Einsum", [TensorType(F32, (2, 3))], {"equation": "ijk->i"}, "rank"),
        ("Einsum", [TensorType(F32, (2, 3))], {"equation": "ij->z"}, "appears in no input"),
    ],
)
def test_bad_contractions_fail_clearly(infer, op, types, attrs, message):
    with pytest.raises(OpError, match=message):
        infer(op, types, [None] * len(types), attrs)
