"""Constants and helpers the compare tests share (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CI_BASELINE = ROOT / "tests" / "baselines" / "ci-compare.json"
TINY_SPATIAL = str(ROOT / "tests" / "spatial" / "tiny-spatial.toml")
# tiny-llama on a tiny model-as-hardware chip (fits at 64 and 4096 tokens, not at 16384) and on
# the H100 preset: real simulations that take milliseconds.
TINY_MATRIX = ["--targets", TINY_SPATIAL, "h100-sxm", "--models", "tiny-llama", "--contexts", "64,4096,16384"]


def matrix_args(baseline: dict) -> list[str]:
    """The command line that reproduces a baseline's comparison (its matrix and settings)."""
    m, s = baseline["matrix"], baseline["settings"]
    args = ["--targets", *m["targets"], "--models", *m["models"], "--contexts", *map(str, m["contexts"]),
            "--batches", *map(str, m["batches"]), "--gen-len", str(s["gen_len"]), "--precision", s["precision"],
            "--kv-precision", s["kv_precision"]]
    if s["prompt_len"] is not None:
        args += ["--prompt-len", str(s["prompt_len"])]
    return args
