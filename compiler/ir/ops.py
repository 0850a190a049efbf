"""The closed set of IR operations. Values are the ONNX op_type names they import from.

Adding an op means adding a member here and registering its type rule and numpy semantics in
`compiler/ops`; nothing else accepts an op that is not listed.
"""

from __future__ import annotations

import enum


class Op(enum.Enum):
    # elementwise arithmetic and math
    ADD = "Add"
    SUB = "Sub"
    MUL = "Mul"
    DIV = "Div"
    POW = "Pow"
    MOD = "Mod"
    MAX = "Max"
    MIN = "Min"
    SUM = "Sum"
    MEAN = "Mean"
    SQRT = "Sqrt"
    RECIPROCAL = "Reciprocal"
    NEG = "Neg"
    EXP = "Exp"
    LOG = "Log"
    TANH = "Tanh"
    SIGMOID = "Sigmoid"
    SOFTPLUS = "Softplus"
    RELU = "Relu"
    GELU = "Gelu"
    ERF = "Erf"
    COS = "Cos"
    SIN = "Sin"
    ABS = "Abs"
    SIGN = "Sign"
    FLOOR = "Floor"
    CEIL = "Ceil"
    ROUND = "Round"
    CLIP = "Clip"
    # comparison and logic
    EQUAL = "Equal"
    GREATER = "Greater"
    LESS = "Less"
    LESS_OR_EQUAL = "LessOrEqual"
    GREATER_OR_EQUAL = "GreaterOrEqual"
    AND = "And"
    OR = "Or"
    XOR = "Xor"
    NOT = "Not"
    IS_NAN = "IsNaN"
    IS_INF = "IsInf"
    WHERE = "Where"
    # contractions
    MATMUL = "MatMul"
    GEMM = "Gemm"
    EINSUM = "Einsum"
    CONV = "Conv"
    # data movement and shapes
    RESHAPE = "Reshape"
    TRANSPOSE = "Transpose"
    CONCAT = "Concat"
    SPLIT = "Split"
    SLICE = "Slice"
    GATHER = "Gather"
    GATHER_ELEMENTS = "GatherElements"
    GATHER_ND = "GatherND"
    SCATTER_ND = "ScatterND"
    SCATTER_ELEMENTS = "ScatterElements"
    EXPAND = "Expand"
    TILE = "Tile"
    UNSQUEEZE = "Unsqueeze"
    SQUEEZE = "Squeeze"
    FLATTEN = "Flatten"
    PAD = "Pad"
    SHAPE = "Shape"
    SIZE = "Size"
    RANGE = "Range"
    CAST = "Cast"
    CAST_LIKE = "CastLike"
    IDENTITY = "Identity"
    DROPOUT = "Dropout"
    CONSTANT = "Constant"
    CONSTANT_OF_SHAPE = "ConstantOfShape"
    TRILU = "Trilu"
    CUMSUM = "CumSum"
    TOPK = "TopK"
    ARGMAX = "ArgMax"
    # reductions
    REDUCE_MEAN = "ReduceMean"
    REDUCE_SUM = "ReduceSum"
    REDUCE_MAX = "ReduceMax"
    REDUCE_MIN = "ReduceMin"
    REDUCE_PROD = "ReduceProd"
    # neural-network blocks
    SOFTMAX = "Softmax"
    LOG_SOFTMAX = "LogSoftmax"
    LAYER_NORMALIZATION = "LayerNormalization"
    RMS_NORMALIZATION = "RMSNormalization"
    ATTENTION = "Attention"
    ROTARY_EMBEDDING = "RotaryEmbedding"

    @classmethod
    def from_onnx(cls, op_type: str) -> Op | None:
        return _BY_ONNX_NAME.get(op_type)

    def __repr__(self) -> str:
        return f"Op.{self.name}"

    def __str__(self) -> str:
        return self.value


_BY_ONNX_NAME = {op.value: op for op in Op}
