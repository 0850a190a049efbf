"""Helpers for the models/ tests: onnxruntime runner, weights as arrays, checker, closeness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a model on onnxruntime's CPU provider; outputs by name."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The model's initializers as fp64 arrays, for the numpy references."""
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}


def check_model(model: onnx.ModelProto, tmp_dir: Path) -> None:
    """onnx.checker with shape inference, without reading external data.

    The checker wants an external-data file to exist; an empty placeholder satisfies it, so a
    described-only model is checked without a byte of weights.
    """
    locations = {
        entry.value
        for tensor in model.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    if not locations:
        onnx.checker.check_model(model, full_check=True)
        return
    for location in locations:
        (tmp_dir / location).touch()
    path = tmp_dir / "model.onnx"
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(path), full_check=True)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    """Relative closeness with the tolerance scaled to the reference's magnitude."""
    expected = np.asarray(expected)
    atol = rtol * max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def past_name(present: str) -> str:
    """The decode input that a present output feeds: present.{i}.key -> past_key_values.{i}.key,
    present_ssm_state.{i} -> past_ssm_state.{i}, present_memory.{i}.key -> past_memory.{i}.key."""
    if present.startswith("present."):
        return "past_key_values." + present[len("present.") :]
    return "past_" + present[len("present_") :]


def carry_state(model: onnx.ModelProto, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds for `model` (a decode graph) from another graph's present* outputs."""
    wanted = {i.name for i in model.graph.input}
    carried = {past_name(name): value for name, value in outputs.items() if name.startswith("present")}
    return {name: value for name, value in carried.items() if name in wanted}


def token_feeds(tokens: np.ndarray, start: int = 0, positions: bool = True) -> dict[str, np.ndarray]:
    """input_ids (and position_ids counting from `start`) for a [batch, seq] token array."""
    tokens = np.asarray(tokens, dtype=np.int64)
    feeds = {"input_ids": tokens}
    if positions:
        pos = np.arange(start, start + tokens.shape[1], dtype=np.int64)
        feeds["position_ids"] = np.broadcast_to(pos, tokens.shape).copy()
    return feeds
