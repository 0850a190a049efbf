"""Cost models on small shapes computed by hand, and each one against its roofline."""

from __future__ import annotations

import itertools

import pytest

from compiler.targets.programmable.isa import CollectiveKind, VectorOp
from simulator.programmable.costs import dma, link, systolic, vector
from simulator.programmable.costs.dma import SharedBandwidth
from simulator.programmable.costs.energy import EnergyCounts, energy_breakdown_j, energy_roofline_j


@pytest.mark.parametrize(("m", "n", "k", "split", "cycles"), [
    (8, 8, 8, 0, 8 + 1 * 8 + 16),          # one tile: fill 8, stream 8, drain 8 + 8
    (3, 20, 10, 0, 8 + 5 * 8 + 3 + 16),    # 2 x 3 tiles, m < R so each costs R = 8, the last m = 3
    (3, 20, 10, 1, 4 + 8 * 4 + 3 + 12),    # split 2 ways: R = 4, 3 x 3 tiles
    (100, 8, 8, 0, 8 + 100 + 16),          # m > R: streaming hides the weight loads
    (1, 1, 1, 0, 8 + 1 + 16),
])
def test_systolic_cycles_by_hand_tiny(tiny, m, n, k, split, cycles):
    assert systolic.gemm_cycles(tiny, m, n, k, "int8", split) == cycles


def test_systolic_cycles_by_hand_matx(matx):
    # 256x256 arrays, 4 per chip; split 8 ways -> R = 32. bf16: 128 x 16 tiles over 4 arrays.
    assert systolic.gemm_cycles(matx, 1, 4096, 4096, "bf16", 3) == 32 + 511 * 32 + 1 + (32 + 256)
    # int8 packs two weights per PE: tile K depth 64 -> half the tiles.
    assert systolic.gemm_cycles(matx, 1, 4096, 4096, "int8", 3) == 32 + 255 * 32 + 1 + (32 + 256)
    # prefill-sized: m = 4096 streams dominate; roofline within 1%.
    cycles = systolic.gemm_cycles(matx, 4096, 4096, 4096, "bf16", 0)
    assert cycles == 256 + 64 * 4096 + 512
    assert cycles / systolic.gemm_roofline_cycles(matx, 4096, 4096, 4096, "bf16", 0) < 1.01


def test_systolic_never_beats_roofline(tiny, matx):
    for chip, precision in ((tiny, "int8"), (matx, "bf16"), (matx, "int4")):
        for m, n, k in itertools.product((1, 7, 64, 300), (1, 9, 256, 1000), (1, 33, 512)):
            for split in range(4):
                if (1 << split) not in chip.systolic.split_factors:
                    continue
                detailed = systolic.gemm_cycles(chip, m, n, k, precision, split)
                assert detailed >= systolic.gemm_roofline_cycles(chip, m, n, k, precision, split)


def test_systolic_rejects_bad_split_and_precision(tiny):
    with pytest.raises(systolic.GemmShapeError, match="split_factors"):
        systolic.gemm_cycles(tiny, 8, 8, 8, "int8", 2)
    with pytest.raises(systolic.GemmShapeError, match="no bf16 matrix path"):
        systolic.gemm_cycles(tiny, 8, 8, 8, "bf16", 0)


def test_dma_alone_and_roofline(tiny):
    assert dma.transfer_time_s(tiny, 800) == pytest.approx(1e-7 + 800 / 8e8)
    assert dma.transfer_roofline_s(tiny, 800) == pytest.approx(1e-6)


def test_shared_bandwidth_processor_sharing():
    bw = SharedBandwidth(100.0)              # bytes per second
    bw.add("a", 100, 0.0)
    bw.add("b", 300, 0.0)
    assert bw.next_completion_s() == pytest.approx(2.0)      # both at 50 B/s: a done at 2 s
    assert bw.pop_finished(2.0, force_least=True) == ["a"]
    assert bw.next_completion_s() == pytest.approx(4.0)      # b alone: 200 bytes left at 100 B/s
    bw.add("c", 50, 3.0)                                      # b has 100 left; now 2 share
    assert bw.next_completion_s() == pytest.approx(4.0)      # c: 50 bytes at 50 B/s
    assert bw.pop_finished(4.0, force_least=True) == ["c"]
    assert bw.remaining["b"] == pytest.approx(50.0)
    assert bw.next_completion_s() == pytest.approx(4.5)


def test_vector_costs(matx):
    lanes = matx.vector.lanes                 # 4096 lanes, 1 op, 0.25 transcendental per lane-cycle
    assert vector.vector_cycles(matx, VectorOp.ADD, 4096) == 1
    assert vector.vector_cycles(matx, VectorOp.ADD, 4097) == 2
    assert vector.vector_cycles(matx, VectorOp.EXP, 4096) == 4
    assert vector.vector_cycles(matx, VectorOp.SILU, lanes) == 2 + 8
    for op in VectorOp:
        for length in (1, 100, 4096, 10_000):
            assert vector.vector_cycles(matx, op, length) >= vector.vector_roofline_cycles(matx, op, length)


def test_link_all_reduce_formula(matx):
    """Large buffers go round the ring (bandwidth-optimal); small all-reduces go direct (every
    chip's buffer to every chip, floor(p/2) hops), whichever is faster."""
    bw, hop = matx.links.link_bytes_per_s, matx.links.link_latency_s
    nbytes = 8 * 2**20
    ring = 2 * 7 / 8 * nbytes / bw + 2 * 7 * hop
    assert link.collective_time_s(matx, CollectiveKind.ALL_REDUCE, nbytes, 8) == pytest.approx(ring)
    assert link.collective_cost(matx, CollectiveKind.ALL_REDUCE, nbytes, 8).link_bytes == pytest.approx(
        2 * 7 / 8 * nbytes)
    assert link.collective_time_s(matx, CollectiveKind.ALL_GATHER, nbytes, 8) == pytest.approx(
        7 / 8 * nbytes / bw + 7 * hop)
    small = 4096 * 2          # one token's hidden state in bf16
    direct = link.collective_cost(matx, CollectiveKind.ALL_REDUCE, small, 8)
    assert direct.algorithm == "direct"
    assert direct.time_s == pytest.approx(7 * small / bw + 4 * hop)
    assert direct.time_s < 2 * 7 / 8 * small / bw + 2 * 7 * hop
    assert direct.link_bytes == 7 * small
    assert link.collective_time_s(matx, CollectiveKind.ALL_REDUCE, nbytes, 1) == 0.0
    for kind in CollectiveKind:
        for size in (small, nbytes):
            assert (link.collective_time_s(matx, kind, size, 4)
                    >= link.collective_roofline_s(matx, kind, size, 4))
    # the crossover: direct wins below (2(p-1) - p/2) hops' worth of the extra bytes
    crossover = (14 - 4) * hop / ((7 - 14 / 8) / bw)
    for size in (crossover * 0.9, crossover * 1.1):
        chosen = link.collective_cost(matx, CollectiveKind.ALL_REDUCE, size, 8).algorithm
        assert chosen == ("direct" if size < crossover else "ring")


def test_energy_breakdown(tiny):
    counts = EnergyCounts(macs={"int8": 1e6}, vector_ops=1e3, sram_bytes=1e4, hbm_bytes=1e5, link_bytes=0.0)
    parts = energy_breakdown_j(tiny, counts, 1e-3)
    assert parts["mac"] == pytest.approx(1e6 * 2.0e-12)
    assert parts["static"] == pytest.approx(0.5e-3)
    assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))
    assert parts["total"] >= energy_roofline_j(tiny, counts)
