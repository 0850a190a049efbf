"""The programmable target's instruction set and its binary encoding.

One instruction is 256 bits: eight little-endian 32-bit words, fields packed from bit 0 up in
the order listed in `FIELDS`. Every instruction starts with the same 24-bit header:

    opcode:4  engine:4  wait0:4  wait1:4  signal0:4  signal1:4

Engines run their instructions in program order (one queue each, as in VTA and Gemmini):
LOAD and STORE are DMA engines between HBM and SRAM, GEMM is a systolic (sub-)array, VECTOR
the vector unit, LINK the chip-to-chip collective engine. Dependencies between queues are
counting semaphores 1..15 (0 = none): an instruction waits until each named `wait` semaphore
is positive and decrements it, and increments each `signal` semaphore when it completes.

LOOP repeats the next `body` instructions `count` times; in iteration i every address field
reads `base + i * stride` (each address has its own stride field). Loops do not nest.

Addresses are byte addresses. SRAM addresses are 32 bits, HBM addresses 40 bits.
The integer subset (what `isa_subset = "integer"` presets and the RTL implement): DMA_LOAD,
DMA_STORE, GEMM with precision int8 (int32 accumulators), VECTOR ops on int32 (ADD, MUL,
MAX, SHIFT, REQUANT, REDUCE_SUM, REDUCE_MAX, COPY), LOOP, HALT. Float programs add
VECTOR_2D (strided and broadcast operands), DMA_GATHER (rows of HBM by an index vector in
SRAM), GEMM_STRIDED (GEMM operands with row pitches) and VECTOR_GATHER (rows of an SRAM table
by an index vector), new opcodes that leave the integer subset's encodings as they were.

Selection ops (VECTOR only, numbers 32..35): TOPK, SCAN_SUM, REDUCE_PROD and ARGMAX work along
one axis of their operand. SCAN_SUM, REDUCE_PROD and ARGMAX read src_a as [outer, row_len,
inner] with inner = max(imm, 1) (imm is the axis's stride in elements: a non-trailing axis needs
no transpose) and length = outer * row_len * inner; TOPK reads rows of `row_len` and takes
k = imm. `shift` holds their flags (TOPK_*, SCAN_*, ARG_*, INDEX_INT64 below). Indices are
written as int64 (INDEX_INT64, ONNX's index type) or int32. See VectorOp for the destinations.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar

INSTRUCTION_BITS = 256
INSTRUCTION_BYTES = INSTRUCTION_BITS // 8
MAX_SEMAPHORE = 15


class Opcode(enum.IntEnum):
    HALT = 0
    DMA_LOAD = 1
    DMA_STORE = 2
    GEMM = 3
    VECTOR = 4
    COLLECTIVE = 5
    LOOP = 6
    VECTOR_2D = 7
    DMA_GATHER = 8
    GEMM_STRIDED = 9
    VECTOR_GATHER = 10


class Engine(enum.IntEnum):
    CONTROL = 0
    LOAD = 1
    STORE = 2
    GEMM = 3
    VECTOR = 4
    LINK = 5


class Precision(enum.IntEnum):
    INT8 = 0
    INT4 = 1
    FP8 = 2
    BF16 = 3
    FP16 = 4
    FP32 = 5
    INT32 = 6
    INT64 = 7  # position ids, hashes: CONVERT and the vector unit's integer ops (float programs)

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def bits(self) -> int:
        return {"INT8": 8, "INT4": 4, "FP8": 8, "BF16": 16, "FP16": 16, "FP32": 32, "INT32": 32, "INT64": 64}[self.name]


class VectorOp(enum.IntEnum):
    """Elementwise ops take `length` elements of src_a (and src_b); reductions reduce each
    row of `row_len` elements to one; REQUANT computes clamp(round_half_up((a * imm) >> shift))
    to int8 (fixed-point scale `imm`, right shift `shift`).

    Float-only ops (13..): MIN, NEG, ABS, LOG, SIN, COS; *_IMM ops take their second operand
    from `imm` read as float32 bits (Vector only: Vector2D has no imm); FILL writes imm;
    CONVERT reads src_a as the Precision numbered `imm` and writes `precision`; comparisons
    write 1.0 or 0.0; SELECT writes src_b where src_a != 0 and keeps dst elsewhere (dst is
    read: a three-operand op without a third address). See simulator/programmable/functional.py.

    Integer lanes (float programs; the integer subset keeps its int32 ops as they are): int8
    (bools as 0 / 1 bytes), int32 and int64 run COPY, ADD, SUB, MUL (wrapping), MAX, MIN, NEG,
    ABS, the comparisons and SELECT (writing 1 / 0), *_IMM and FILL (imm read as a signed 32-bit
    integer), REDUCE_SUM, REDUCE_MAX, IDIV (29: a / b truncated toward zero, ONNX integer Div;
    a / 0 = 0) and IMOD (30: a - floor(a / b) * b, the divisor's sign, ONNX Mod fmod=0; a mod
    0 = 0). CONVERT also writes integers (float to integer truncates toward zero, integers
    wrap). VECTOR_2D runs the same ops, float or integer, except those taking `imm`.

    Selection ops (32..35; see the module docstring for their [outer, row_len, inner] view):
    TOPK writes each row's k = imm largest (TOPK_LARGEST) or smallest elements, sorted (largest
    first, or smallest first), ties in ascending index order as ONNX TopK specifies: their values
    to dst (TOPK_VALUES) and their indices to src_b (TOPK_INDICES; src_b is a second destination
    here). SCAN_SUM writes the running sum along the axis to dst (SCAN_EXCLUSIVE: of the elements
    before, SCAN_REVERSE: from the far end). REDUCE_PROD writes the product along the axis,
    [outer, inner] to dst. ARGMAX writes the index of the largest (ARG_MIN: smallest) element
    along the axis, [outer, inner] to dst; ties go to the first index (ARG_LAST: the last).
    Semantics: simulator/programmable/selection.py; cycles: costs/vector.py.
    """

    COPY = 0
    ADD = 1
    MUL = 2
    MAX = 3
    SHIFT = 4
    REQUANT = 5
    REDUCE_SUM = 6
    REDUCE_MAX = 7
    EXP = 8
    RSQRT = 9
    RECIPROCAL = 10
    SILU = 11
    SUB = 12
    MIN = 13
    NEG = 14
    ABS = 15
    LOG = 16
    SIN = 17
    COS = 18
    ADD_IMM = 19
    MUL_IMM = 20
    MAX_IMM = 21
    MIN_IMM = 22
    FILL = 23
    CONVERT = 24
    CMP_EQ = 25
    CMP_LT = 26
    CMP_LE = 27
    SELECT = 28
    IDIV = 29
    IMOD = 30
    TOPK = 32
    SCAN_SUM = 33
    REDUCE_PROD = 34
    ARGMAX = 35


SELECTION_OPS = frozenset({VectorOp.TOPK, VectorOp.SCAN_SUM, VectorOp.REDUCE_PROD, VectorOp.ARGMAX})
# Flags of the selection ops, in the `shift` field.
TOPK_LARGEST = 1        # the k largest (else the k smallest)
TOPK_VALUES = 2         # write the values to dst
TOPK_INDICES = 4        # write the indices to src_b
SCAN_EXCLUSIVE = 1      # element i holds the sum of the elements before it
SCAN_REVERSE = 2        # sum from the end of the axis
ARG_LAST = 1            # ties go to the last index (ONNX select_last_index)
ARG_MIN = 2             # the smallest element (ArgMin)
INDEX_INT64 = 8         # indices are int64 (else int32)


def f32_bits(value: float) -> int:
    """The `imm` field of a *_IMM or FILL op: `value` as float32 bits."""
    return int(struct.unpack("<I", struct.pack("<f", float(value)))[0])


def bits_f32(bits: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", int(bits) & 0xFFFFFFFF))[0])


INTEGER_VECTOR_OPS = frozenset({VectorOp.COPY, VectorOp.ADD, VectorOp.MUL, VectorOp.MAX, VectorOp.SHIFT,
                                VectorOp.REQUANT, VectorOp.REDUCE_SUM, VectorOp.REDUCE_MAX, VectorOp.SUB})


class CollectiveKind(enum.IntEnum):
    ALL_REDUCE = 0
    ALL_GATHER = 1
    REDUCE_SCATTER = 2


@dataclass(frozen=True)
class Instruction:
    """Common header; subclasses add their fields. `FIELDS` lists (name, bits) in encoding order."""

    OPCODE: ClassVar[Opcode]
    ENGINE: ClassVar[Engine]
    FIELDS: ClassVar[tuple[tuple[str, int], ...]]

    wait: tuple[int, ...] = field(default=(), kw_only=True)
    signal: tuple[int, ...] = field(default=(), kw_only=True)
    comment: str = field(default="", kw_only=True, compare=False)

    def __post_init__(self) -> None:
        for kind, sems in (("wait", self.wait), ("signal", self.signal)):
            if len(sems) > 2:
                raise ValueError(f"{type(self).__name__}: at most 2 {kind} semaphores, got {sems}")
            for s in sems:
                if not 1 <= s <= MAX_SEMAPHORE:
                    raise ValueError(f"{type(self).__name__}: {kind} semaphore {s} outside 1..{MAX_SEMAPHORE}")
        for name, bits in self.FIELDS:
            value = int(getattr(self, name))
            if not 0 <= value < (1 << bits):
                raise ValueError(f"{type(self).__name__}.{name} = {value} does not fit {bits} bits")

    @property
    def engine(self) -> Engine:
        return self.ENGINE


@dataclass(frozen=True)
class DmaLoad(Instruction):
    """Copy `rows` rows of `row_bytes` from HBM (row pitch `hbm_row_stride`) into SRAM (dense)."""

    OPCODE: ClassVar[Opcode] = Opcode.DMA_LOAD
    ENGINE: ClassVar[Engine] = Engine.LOAD
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("hbm_addr", 40), ("hbm_loop_stride", 40), ("sram_addr", 32), ("sram_loop_stride", 32),
        ("rows", 24), ("row_bytes", 24), ("hbm_row_stride", 32),
    )
    hbm_addr: int = 0
    sram_addr: int = 0
    rows: int = 1
    row_bytes: int = 0
    hbm_row_stride: int = 0
    hbm_loop_stride: int = 0
    sram_loop_stride: int = 0

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes


@dataclass(frozen=True)
class DmaStore(DmaLoad):
    """Copy `rows` rows of `row_bytes` from SRAM (dense) to HBM (row pitch `hbm_row_stride`)."""

    OPCODE: ClassVar[Opcode] = Opcode.DMA_STORE
    ENGINE: ClassVar[Engine] = Engine.STORE


@dataclass(frozen=True)
class Gemm(Instruction):
    """C[m,n] (+)= A[m,k] @ B[k,n] on SRAM operands, row-major, on one (sub-)array.

    `split` is log2 of the array split (0 = whole array): every array divides along K into
    2**split sub-arrays of rows/2**split x cols, and `subarray` names the one (in every array)
    that runs this instruction; instructions on different sub-arrays may run concurrently.
    Cycle counts: simulator/programmable/costs/systolic.py, the contract the RTL matches.
    Integer GEMMs accumulate in int32; C holds `acc_precision` elements.
    """

    OPCODE: ClassVar[Opcode] = Opcode.GEMM
    ENGINE: ClassVar[Engine] = Engine.GEMM
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("a_addr", 32), ("a_loop_stride", 24), ("b_addr", 32), ("b_loop_stride", 24),
        ("c_addr", 32), ("c_loop_stride", 24), ("m", 16), ("n", 16), ("k", 16),
        ("precision", 3), ("acc_precision", 3), ("accumulate", 1), ("split", 3), ("subarray", 3),
    )
    a_addr: int = 0
    b_addr: int = 0
    c_addr: int = 0
    m: int = 1
    n: int = 1
    k: int = 1
    precision: Precision = Precision.INT8
    acc_precision: Precision = Precision.INT32
    accumulate: bool = False
    split: int = 0
    subarray: int = 0
    a_loop_stride: int = 0
    b_loop_stride: int = 0
    c_loop_stride: int = 0

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k


@dataclass(frozen=True)
class GemmStrided(Gemm):
    """GEMM_STRIDED: a GEMM whose operands are row-pitched: A[i, j] at a_addr + (i * lda + j)
    elements, B[i, j] at b_addr + (i * ldb + j), C[i, j] at c_addr + (i * ldc + j) — a tile of
    several rows read from, or written into, a wider row-major matrix (prefill, batch > 1).

    With `transpose_b`, B[i, j] is element j * ldb + i: a weight tile shifts in columns of a
    row-major operand instead of rows (a [n, k] matrix used as its transpose, e.g. new keys
    written into the cache's transposed blocks as I @ K^T).

    The same fields as GEMM (same array schedule and cycles) with the row pitches lda, ldb, ldc
    (elements, 20 bits) in place of the loop strides: its addresses do not move in a LOOP (the
    lowering writes a loop out when they would). 24 + 218 = 242 of the 256 bits.
    """

    OPCODE: ClassVar[Opcode] = Opcode.GEMM_STRIDED
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("a_addr", 32), ("b_addr", 32), ("c_addr", 32), ("m", 16), ("n", 16), ("k", 16),
        ("precision", 3), ("acc_precision", 3), ("accumulate", 1), ("split", 3), ("subarray", 3),
        ("lda", 20), ("ldb", 20), ("ldc", 20), ("transpose_b", 1),
    )
    lda: int = 0
    ldb: int = 0
    ldc: int = 0
    transpose_b: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        b_rows, b_cols = (self.n, self.k) if self.transpose_b else (self.k, self.n)
        for name, rows, least in (("lda", self.m, self.k), ("ldb", b_rows, b_cols), ("ldc", self.m, self.n)):
            if rows > 1 and getattr(self, name) < least:
                raise ValueError(f"GemmStrided.{name} = {getattr(self, name)} is shorter than a row ({least})")
        if self.a_loop_stride or self.b_loop_stride or self.c_loop_stride:
            raise ValueError("GemmStrided has no loop strides: its addresses do not move in a LOOP")


@dataclass(frozen=True)
class Vector(Instruction):
    """dst[i] = op(src_a[i], src_b[i]) for `length` elements of `precision` (see VectorOp)."""

    OPCODE: ClassVar[Opcode] = Opcode.VECTOR
    ENGINE: ClassVar[Engine] = Engine.VECTOR
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("op", 6), ("precision", 3), ("src_a", 32), ("src_b", 32), ("dst", 32), ("length", 24),
        ("row_len", 24), ("imm", 32), ("shift", 6), ("loop_stride", 24),
    )
    op: VectorOp = VectorOp.COPY
    precision: Precision = Precision.INT32
    src_a: int = 0
    src_b: int = 0
    dst: int = 0
    length: int = 1
    row_len: int = 1
    imm: int = 0
    shift: int = 0
    loop_stride: int = 0


@dataclass(frozen=True)
class Vector2D(Instruction):
    """A vector op over a `rows` x `cols` grid with a stride per operand (VECTOR_2D): broadcasts,
    strided slices, concatenation and transposes without a copy first.

    Element (r, c) reads src_a[r * a_row_stride + c * a_col_step] and src_b[r * b_row_stride +
    c * b_col_step] (strides in elements; a step of 0 repeats one value along the row, a row
    stride of 0 repeats one row) and writes dst[r * dst_row_stride + c]; a reduction writes
    dst[r * dst_row_stride]. In loop iteration i every address moves by `loop_stride` bytes,
    except src_b when `b_fixed` (an operand shared by every iteration, e.g. a RoPE table).
    """

    OPCODE: ClassVar[Opcode] = Opcode.VECTOR_2D
    ENGINE: ClassVar[Engine] = Engine.VECTOR
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("op", 6), ("precision", 3), ("src_a", 32), ("src_b", 32), ("dst", 32), ("rows", 20), ("cols", 20),
        ("a_row_stride", 20), ("b_row_stride", 20), ("dst_row_stride", 20), ("a_col_step", 1), ("b_col_step", 1),
        ("loop_stride", 24), ("b_fixed", 1),
    )
    op: VectorOp = VectorOp.COPY
    precision: Precision = Precision.FP32
    src_a: int = 0
    src_b: int = 0
    dst: int = 0
    rows: int = 1
    cols: int = 1
    a_row_stride: int = 0
    b_row_stride: int = 0
    dst_row_stride: int = 0
    a_col_step: int = 1
    b_col_step: int = 1
    loop_stride: int = 0
    b_fixed: bool = False

    @property
    def length(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class DmaGather(Instruction):
    """Indexed DMA (DMA_GATHER): for r < rows, copy `row_bytes` from HBM `hbm_addr + index[r] *
    hbm_row_stride` to SRAM `sram_addr + r * row_bytes`, where index[] holds `rows` signed
    integers (int64 when `index_int64`, else int32) at SRAM `index_addr`. Embedding rows by
    token id, cos/sin rows by position id, KV blocks by block id. Addresses do not move in loops.

    With `table_rows` > 0 the table has that many rows: an index i in [-table_rows, 0) reads row
    i + table_rows (ONNX Gather's negative indices) and one outside [-table_rows, table_rows) is
    an error. 0 (the encoding's old trailing zeros) reads index[r] as it is. 24 + 233 bits.
    """

    OPCODE: ClassVar[Opcode] = Opcode.DMA_GATHER
    ENGINE: ClassVar[Engine] = Engine.LOAD
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("hbm_addr", 40), ("sram_addr", 32), ("index_addr", 32), ("rows", 24), ("row_bytes", 24),
        ("hbm_row_stride", 32), ("index_int64", 1), ("table_rows", 24),
    )
    hbm_addr: int = 0
    sram_addr: int = 0
    index_addr: int = 0
    rows: int = 1
    row_bytes: int = 0
    hbm_row_stride: int = 0
    index_int64: bool = False
    table_rows: int = 0

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes

    @property
    def index_bytes(self) -> int:
        return self.rows * (8 if self.index_int64 else 4)


@dataclass(frozen=True)
class VectorGather(Instruction):
    """An indexed load from SRAM on the vector unit (VECTOR_GATHER): Gather along any axis of a
    table in SRAM by an index vector computed at run time (tiny-sparse's block mask by block id).

    The table at `src` is a dense [outer, axis_len, row_len] array of `precision` elements (the
    gathered axis in the middle; INT8 moves bytes such as bools). For o < outer and j < count,
    dst row (o * count + j) = table row (o, index[j]): dst[(o * count + j) * row_len + e] =
    src[(o * axis_len + index[j]) * row_len + e] for e < row_len. index[] holds `count` signed
    integers (int64 when `index_int64`, else int32) at SRAM `index_addr`; an index i in
    [-axis_len, 0) reads row i + axis_len, one outside [-axis_len, axis_len) is an error.
    Addresses do not move in loops. 24 + 3 + 3 * 32 + 4 * 24 + 1 = 220 of the 256 bits.
    """

    OPCODE: ClassVar[Opcode] = Opcode.VECTOR_GATHER
    ENGINE: ClassVar[Engine] = Engine.VECTOR
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("precision", 3), ("src", 32), ("index_addr", 32), ("dst", 32), ("outer", 24), ("count", 24),
        ("row_len", 24), ("axis_len", 24), ("index_int64", 1),
    )
    precision: Precision = Precision.FP32
    src: int = 0
    index_addr: int = 0
    dst: int = 0
    outer: int = 1
    count: int = 1
    row_len: int = 1
    axis_len: int = 1
    index_int64: bool = False

    @property
    def length(self) -> int:
        """Elements written."""
        return self.outer * self.count * self.row_len

    @property
    def index_bytes(self) -> int:
        return self.count * (8 if self.index_int64 else 4)


@dataclass(frozen=True)
class Collective(Instruction):
    """A collective over `chips` chips on `nbytes` of SRAM at `sram_addr` (in place)."""

    OPCODE: ClassVar[Opcode] = Opcode.COLLECTIVE
    ENGINE: ClassVar[Engine] = Engine.LINK
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("kind", 2), ("precision", 3), ("sram_addr", 32), ("nbytes", 32), ("chips", 8),
    )
    kind: CollectiveKind = CollectiveKind.ALL_REDUCE
    precision: Precision = Precision.BF16
    sram_addr: int = 0
    nbytes: int = 0
    chips: int = 1


@dataclass(frozen=True)
class Loop(Instruction):
    OPCODE: ClassVar[Opcode] = Opcode.LOOP
    ENGINE: ClassVar[Engine] = Engine.CONTROL
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = (("body", 16), ("count", 32))
    body: int = 1
    count: int = 1


@dataclass(frozen=True)
class Halt(Instruction):
    OPCODE: ClassVar[Opcode] = Opcode.HALT
    ENGINE: ClassVar[Engine] = Engine.CONTROL
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = ()


INSTRUCTION_CLASSES: dict[Opcode, type[Instruction]] = {
    cls.OPCODE: cls
    for cls in (Halt, DmaLoad, DmaStore, Gemm, Vector, Collective, Loop, Vector2D, DmaGather, GemmStrided,
                VectorGather)
}
_HEADER = (("opcode", 4), ("engine", 4), ("wait0", 4), ("wait1", 4), ("signal0", 4), ("signal1", 4))


def encode(instruction: Instruction) -> bytes:
    """The 32-byte binary form of one instruction."""
    word = 0
    offset = 0
    wait = tuple(instruction.wait) + (0, 0)
    signal = tuple(instruction.signal) + (0, 0)
    header = (int(instruction.OPCODE), int(instruction.ENGINE), wait[0], wait[1], signal[0], signal[1])
    for (_, bits), value in zip(_HEADER, header):
        word |= value << offset
        offset += bits
    for name, bits in instruction.FIELDS:
        word |= int(getattr(instruction, name)) << offset
        offset += bits
    assert offset <= INSTRUCTION_BITS, f"{type(instruction).__name__} uses {offset} bits"
    return word.to_bytes(INSTRUCTION_BYTES, "little")


def decode(blob: bytes) -> Instruction:
    if len(blob) != INSTRUCTION_BYTES:
        raise ValueError(f"an instruction is {INSTRUCTION_BYTES} bytes, got {len(blob)}")
    word = int.from_bytes(blob, "little")
    offset = 0
    header = {}
    for name, bits in _HEADER:
        header[name] = (word >> offset) & ((1 << bits) - 1)
        offset += bits
    try:
        cls = INSTRUCTION_CLASSES[Opcode(header["opcode"])]
    except ValueError:
        raise ValueError(f"unknown opcode {header['opcode']}") from None
    values = {}
    for name, bits in cls.FIELDS:
        raw = (word >> offset) & ((1 << bits) - 1)
        offset += bits
        values[name] = _FIELD_ENUMS.get((cls.__name__, name), _FIELD_ENUMS.get(("*", name), int))(raw)
    wait = tuple(s for s in (header["wait0"], header["wait1"]) if s)
    signal = tuple(s for s in (header["signal0"], header["signal1"]) if s)
    return cls(**values, wait=wait, signal=signal)


_FIELD_ENUMS = {
    ("*", "precision"): Precision,
    ("*", "acc_precision"): Precision,
    ("*", "op"): VectorOp,
    ("*", "kind"): CollectiveKind,
    ("Gemm", "accumulate"): bool,
    ("GemmStrided", "accumulate"): bool,
    ("GemmStrided", "transpose_b"): bool,
    ("Vector2D", "b_fixed"): bool,
    ("DmaGather", "index_int64"): bool,
    ("VectorGather", "index_int64"): bool,
}


def encode_program(instructions: list[Instruction]) -> bytes:
    return b"".join(encode(i) for i in instructions)


def decode_program(blob: bytes) -> list[Instruction]:
    if len(blob) % INSTRUCTION_BYTES:
        raise ValueError(f"program length {len(blob)} is not a multiple of {INSTRUCTION_BYTES}")
    return [decode(blob[i:i + INSTRUCTION_BYTES]) for i in range(0, len(blob), INSTRUCTION_BYTES)]
