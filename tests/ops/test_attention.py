"""Attention and RotaryEmbedding (opset 23): numpy semantics vs onnxruntime over MHA / GQA,
3-D and 4-D layouts, masks, KV cache, causal alignment, softcap and the qk_matmul_output modes;
type rules on symbolic batch / seq / past_len."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import DType, TensorType
from compiler.ops.registry import OpError
from tests.ops.conftest import run_ort
from tests.ops.values import BATCH, PAST, SEQ, f32, rng

F32, F16 = DType.FLOAT32, DType.FLOAT16


def positions(batch: int, seq: int, start: int = 0) -> np.ndarray:
    return np.tile(np.arange(start, start + seq, dtype=np.int64), (batch, 1))


def mask_bool(*shape: int) -> np.ndarray:
    m = rng.random(shape) > 0.3
    m[..., 0] = True  # every query sees at least one key
    return m


ATTENTION_CASES = [
    ("mha", [f32(2, 4, 3, 8), f32(2, 4, 5, 8), f32(2, 4, 5, 8)], {}, 1),
    ("gqa_causal", [f32(2, 8, 5, 16), f32(2, 2, 5, 16), f32(2, 2, 5, 16)], {"is_causal": 1}, 1),
    ("scale_v_head", [f32(1, 2, 3, 8), f32(1, 2, 4, 8), f32(1, 2, 4, 6)], {"scale": 0.3}, 1),
    ("3d_gqa", [f32(2, 3, 32), f32(2, 5, 16), f32(2, 5, 24)], {"q_num_heads": 4, "kv_num_heads": 2}, 1),
    ("float_mask", [f32(2, 4, 3, 8), f32(2, 4, 5, 8), f32(2, 4, 5, 8), f32(3, 5)], {}, 1),
    ("bool_mask_4d", [f32(2, 4, 3, 8), f32(2, 4, 5, 8), f32(2, 4, 5, 8), mask_bool(2, 1, 3, 5)], {}, 1),
    (
        "decode_with_cache",
        [f32(2, 4, 1, 8), f32(2, 2, 1, 8), f32(2, 2, 1, 8), None, f32(2, 2, 6, 8), f32(2, 2, 6, 8)],
        {"is_causal": 1},
        3,
    ),
    (
        "prefill_chunk_with_cache_bottom_right_causal",
        [f32(1, 2, 3, 8), f32(1, 2, 3, 8), f32(1, 2, 3, 8), None, f32(1, 2, 4, 8), f32(1, 2, 4, 8)],
        {"is_causal": 1},
        3,
    ),
    (
        "3d_with_cache_and_mask",
        [f32(2, 2, 16), f32(2, 2, 16), f32(2, 2, 16), f32(2, 5), f32(2, 2, 3, 8), f32(2, 2, 3, 8)],
        {"q_num_heads": 2, "kv_num_heads": 2},
        3,
    ),
    ("softcap", [f32(2, 4, 3, 8) * 4, f32(2, 4, 5, 8) * 4, f32(2, 4, 5, 8)], {"softcap": 2.0}, 1),
]
QK_MODES = [0, 1, 2, 3]


@pytest.mark.parametrize(("name", "inputs", "attrs", "outputs"), ATTENTION_CASES, ids=[c[0] for c in ATTENTION_CASES])
def test_attention_matches_onnxruntime(against_ort, name, inputs, attrs, outputs):
    against_ort("Attention", inputs, attrs, outputs, 23, rtol=1e-4)


@pytest.mark.parametrize("mode", QK_MODES)
def test_qk_matmul_output_modes_match_onnxruntime(run_op, mode):
    inputs = [f32(1, 2, 3, 8) * 3, f32(1, 2, 4, 8) * 3, f32(1, 2, 4, 8), f32(3, 4)]
    attrs = {"qk_matmul_output_mode": mode, "softcap": 1.5, "is_causal": 1}
    ours = run_op("Attention", inputs, attrs, 4)
    theirs = run_ort("Attention", inputs, attrs, 4, 23)
    # onnxruntime writes masked scores as the lowest float; the spec (and we) use -inf
    theirs[3] = np.where(theirs[3] == np.finfo(np.float32).min, -np.inf, theirs[3])
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_short_mask_is_padded_with_not_attendable(run_op):
    q, k, v = f32(1, 2, 3, 8), f32(1, 2, 5, 8), f32(1, 2, 5, 8)
    short = mask_bool(3, 4)
    padded = np.concatenate([short, np.zeros((3, 1), bool)], axis=1)
    np.testing.assert_array_equal(run_op("Attention", [q, k, v, short])[0], run_op("Attention", [q, k, v, padded])[0])


def test_fully_masked_query_row_outputs_zeros(run_op):
    mask = np.ones((2, 3), bool)
    mask[1] = False
    y, _, _, probs = run_op(
        "Attention", [f32(1, 1, 2, 4), f32(1, 1, 3, 4), f32(1, 1, 3, 4), mask], {"qk_matmul_output_mode": 3}, 4
    )
    assert np.all(y[0, 0, 1] == 0) and np.all(probs[0, 0, 1] == 0) and not np.isnan(y).any()


def test_float16_attention_keeps_dtype(run_op):
    q, k, v = (f32(1, 2, 3, 8).astype(np.float16) for _ in range(3))
    (y,) = run_op("Attention", [q, k, v], {"is_causal": 1})
    (wide,) = run_op("Attention", [q.astype(np.float32), k.astype(np.float32), v.astype(np.float32)], {"is_causal": 1})
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), wide, rtol=1e-2, atol=1e-2)


ROPE_CASES = [
    ("4d", [f32(2, 3, 4, 8), f32(10, 4), f32(10, 4), positions(2, 4, 3)], {}),
    ("3d_interleaved", [f32(2, 4, 16), f32(10, 4), f32(10, 4), positions(2, 4)], {"num_heads": 2, "interleaved": 1}),
    ("partial", [f32(1, 2, 3, 16), f32(8, 4), f32(8, 4), positions(1, 3, 5)], {"rotary_embedding_dim": 8}),
    ("no_position_ids", [f32(2, 2, 3, 8), f32(2, 3, 4), f32(2, 3, 4)], {}),
]


@pytest.mark.parametrize(("name", "inputs", "attrs"), ROPE_CASES, ids=[c[0] for c in ROPE_CASES])
def test_rotary_embedding_matches_onnxruntime(against_ort, name, inputs, attrs):
    against_ort("RotaryEmbedding", inputs, attrs, 1, 23)


# ---- type rules with symbolic dims -------------------------------------------------------
def test_attention_cache_grows_by_seq(infer):
    q = TensorType(F16, (BATCH, 32, SEQ, 128))
    kv = TensorType(F16, (BATCH, 8, SEQ, 128))
    past = TensorType(F16, (BATCH, 8, PAST, 128))
    y, present_k, present_v, qk = infer("Attention", [q, kv, kv, None, past, past], [None] * 6, {"is_causal": 1}, 4)
    assert y == q
    assert present_k == present_v == TensorType(F16, (BATCH, 8, PAST + SEQ, 128))
    assert qk == TensorType(F16, (BATCH, 32, SEQ, PAST + SEQ))


def test_attention_3d_layout_types(infer):
    q = TensorType(F32, (BATCH, SEQ, 4096))
    kv = TensorType(F32, (BATCH, SEQ, 1024))
    (y, present_k) = infer("Attention", [q, kv, kv], [None] * 3, {"q_num_heads": 32, "kv_num_heads": 8}, 2)
    assert y == q and present_k == TensorType(F32, (BATCH, 8, SEQ, 128))


@pytest.mark.parametrize(
    ("shapes", "attrs", "message"),
    [
        ([(1, 3, 32), (1, 3, 16), (1, 3, 16)], {}, "q_num_heads"),
        ([(1, 3, 30), (1, 3, 16), (1, 3, 16)], {"q_num_heads": 4, "kv_num_heads": 2}, "multiple"),
        ([(1, 6, 3, 8), (1, 4, 3, 8), (1, 4, 3, 8)], {}, "multiple of kv_num_heads"),
        ([(1, 2, 3, 8), (1, 2, 3, 8), (1, 2, 3)], {}, "3-D or all 4-D"),
        ([(1, 2, 3, 8)] * 3, {"qk_matmul_output_mode": 4}, "qk_matmul_output_mode"),
        ([(1, 2, 3, 8)] * 3, {"softmax_precision": 6}, "softmax_precision"),
    ],
)
def test_attention_refuses_bad_inputs(infer, shapes, attrs, message):
    with pytest.raises(OpError, match=message):
        infer("Attention", [TensorType(F32, s) for s in shapes], [None] * 3, attrs)


def test_rotary_types(infer):
    x = TensorType(F32, (BATCH, SEQ, 4096))
    cache = TensorType(F32, (131072, 64))
    ids = TensorType(DType.INT64, (BATCH, SEQ))
    (y,) = infer("RotaryEmbedding", [x, cache, cache, ids], [None] * 4, {"num_heads": 32})
    assert y == x
    with pytest.raises(OpError, match="rotary_embedding_dim"):
        infer("RotaryEmbedding", [x, cache, cache, ids], [None] * 4, {"num_heads": 16})
    with pytest.raises(OpError, match="num_heads"):
        infer("RotaryEmbedding", [x, cache, cache, ids], [None] * 4)
