"""The Perfetto trace: one track per engine lane, slices that never overlap on a track."""

from __future__ import annotations

import json

from sim_helpers import with_memory

from compiler.targets.programmable.isa import DmaLoad, Gemm, Loop, Vector, VectorOp
from compiler.targets.programmable.program import Program
from simulator.programmable import simulate_program


def test_trace_tracks_and_slices(tiny, tmp_path):
    chip = with_memory(tiny, dma_channels=2)
    p = Program()
    p.emit(DmaLoad(sram_addr=0, rows=1, row_bytes=64, signal=(1,), comment="load x"), "embed")
    p.emit(DmaLoad(sram_addr=64, rows=1, row_bytes=64, signal=(1,)), "embed")
    p.emit(Loop(body=2, count=200), "mlp")
    p.emit(Gemm(m=8, n=8, k=8, c_addr=1024, wait=(1,), signal=(2,)), "mlp")
    p.emit(Vector(op=VectorOp.COPY, length=8, wait=(2,), signal=(1,)), "mlp")
    path = tmp_path / "trace.json"
    result = simulate_program(p, chip, trace_path=path)
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"LOAD", "LOAD 1", "GEMM", "VECTOR"} <= names
    slices = [e for e in events if e["ph"] == "X"]
    assert any(e["name"] == "load x" and e["cat"] == "embed" for e in slices)
    assert any(e["cat"] == "extrapolated" for e in slices)          # the loop's steady state was skipped
    end = max(e["ts"] + e["dur"] for e in slices)
    assert abs(end - result.time_s * 1e6) < 1e-6
    by_track: dict[int, list] = {}
    for e in slices:
        by_track.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        spans.sort()
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:]))
