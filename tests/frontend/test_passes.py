"""Each pass keeps the graph valid and its results unchanged (run before and after, compare)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.frontend import import_onnx
from compiler.interp import run_graph
from compiler.ir.printer import format_graph
from compiler.passes.pipeline import PASSES, run_passes

HF = Path(__file__).resolve().parent.parent / "fixtures" / "hf"
# Passes that only move or drop work must not change a single bit.
EXACT_PASSES = {"fold-constants", "dce"}


@pytest.mark.parametrize("pass_name", sorted(PASSES))
@pytest.mark.parametrize("fixture", ["llama_decode", "mamba2"])
def test_pass_preserves_semantics(fixture, pass_name):
    graph = import_onnx(HF / fixture / "model.onnx")
    with np.load(HF / fixture / "inputs.npz") as f:
        inputs = {k: f[k] for k in f.files}
    before = run_graph(graph, inputs)
    after_graph = run_passes(graph, [pass_name])
    after = run_graph(after_graph, inputs, check_types=True)
    for key in before:
        if pass_name in EXACT_PASSES:
            np.testing.assert_array_equal(after[key], before[key])
        else:
            # Fused ops round differently: RMSNormalization divides by sqrt where the graph
            # multiplies by a reciprocal (about 1 ulp).
            scale = max(float(np.max(np.abs(before[key]))), 1.0)
            np.testing.assert_allclose(after[key], before[key], rtol=0, atol=1e-5 * scale)


def test_folding_is_idempotent_on_imported_graphs():
    graph = import_onnx(HF / "llama" / "model.onnx")
    once = format_graph(graph)
    assert format_graph(run_passes(graph, ["fold-constants", "dce"])) == once


def test_unknown_pass_lists_passes():
    graph = import_onnx(HF / "gpt2" / "model.onnx")
    with pytest.raises(ValueError, match="passes: fold-constants, dce"):
        run_passes(graph, ["fuse-everything"])
