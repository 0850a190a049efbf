"""The `tessera` command line: inspect and run, JSON output, one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main


@pytest.fixture
def mlp_path(tmp_path):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = rng.standard_normal((16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Tanh", ["h"], ["a"]),
         helper.make_node("MatMul", ["a", "w2"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["seq", 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path, w1, w2


def test_inspect_json(mlp_path, capsys):
    path, _, _ = mlp_path
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameter_count"] == 8 * 16 + 16 * 4
    assert report["weight_bytes_by_dtype"] == {"float32": (8 * 16 + 16 * 4) * 4}
    assert report["op_counts"] == {"MatMul": 2, "Tanh": 1}
    assert report["symbols"] == ["seq"]
    assert report["matmul_flops"] == "384*seq"
    assert report["weight_bytes_per_step"] == (8 * 16 + 16 * 4) * 4


def test_inspect_bind_evaluates_symbols(mlp_path, capsys):
    path, _, _ = mlp_path
    assert main(["inspect", str(path), "--json", "--bind", "seq=10"]) == 0
    assert json.loads(capsys.readouterr().out)["matmul_flops"] == 3840


def test_run_writes_outputs_keyed_by_name(mlp_path, tmp_path):
    path, w1, w2 = mlp_path
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(3, 8)
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(path), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_allclose(out["y"], np.tanh(x @ w1) @ w2, rtol=1e-5)


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing_input", "missing graph inputs: x"),
        ("bad_npz", "not a readable .npz"),
        ("no_model", "no such file"),
    ],
)
def test_run_errors_are_one_line(mlp_path, tmp_path, capsys, setup, message):
    path, _, _ = mlp_path
    inputs = tmp_path / "in.npz"
    if setup == "missing_input":
        np.savez(inputs, other=np.zeros(3))
    elif setup == "bad_npz":
        inputs.write_text("not a zip")
    else:
        path = tmp_path / "absent.onnx"
        np.savez(inputs, x=np.zeros((1, 8), np.float32))
    code = main(["run", str(path), "--inputs", str(inputs), "--output", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_exits_nonzero_without_traceback(tmp_path):
    exe = shutil.which("tessera") or str(__import__("pathlib").Path(sys.executable).parent / "tessera")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    proc = subprocess.run([exe, "inspect", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("tessera: error: ") and "Traceback" not in proc.stderr


def test_inspect_table_groups_per_layer_values(capsys):
    assert main(["inspect", "tiny-llama"]) == 0
    out = capsys.readouterr().out
    assert "past_key_values.{i}.key (x2): float32[batch,2,past_len,16]" in out
    assert "present.{i}.value (x2)" in out and "past_key_values.0.key" not in out
