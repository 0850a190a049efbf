"""The Amaranth instruction layouts decode exactly the bits `isa.encode` writes."""

from compiler.targets.programmable import isa
from rtl.programmable.isa_layout import DmaLayout, GemmLayout, LoopLayout, VectorLayout, field_offsets


def _fields(layout, word: int) -> dict[str, int]:
    """Each member's bits of `word`, by the Amaranth layout's own offsets and widths."""
    assert layout.size == 256
    return {name: (word >> member.offset) & ((1 << member.width) - 1) for name, member in layout}


def test_layouts_match_encoding():
    cases = [
        (DmaLayout, isa.DmaLoad(hbm_addr=0x12_3456_789A, sram_addr=0x1234, rows=7, row_bytes=40, hbm_row_stride=99,
                                hbm_loop_stride=5, sram_loop_stride=6, wait=(3,), signal=(4, 15))),
        (DmaLayout, isa.DmaStore(hbm_addr=1, sram_addr=2, rows=3, row_bytes=4, wait=(1, 2))),
        (GemmLayout, isa.Gemm(a_addr=16, b_addr=1024, c_addr=4096, m=5, n=8, k=24, accumulate=True, split=1,
                              subarray=1, a_loop_stride=8, c_loop_stride=32, signal=(9,))),
        (VectorLayout, isa.Vector(op=isa.VectorOp.REQUANT, src_a=64, src_b=0, dst=512, length=40, row_len=8,
                                  imm=0xDEADBEEF, shift=17, loop_stride=3)),
        (LoopLayout, isa.Loop(body=3, count=100_000)),
    ]
    for layout, ins in cases:
        word = int.from_bytes(isa.encode(ins), "little")
        fields = _fields(layout, word)
        assert fields["opcode"] == ins.OPCODE and fields["engine"] == ins.ENGINE
        assert fields["wait0"] == (ins.wait + (0,))[0] and fields["signal1"] == (ins.signal + (0, 0))[1]
        for name, _ in ins.FIELDS:
            assert fields[name] == int(getattr(ins, name)), (type(ins).__name__, name)
        assert set(field_offsets(type(ins))) <= {n for n, _ in layout}
