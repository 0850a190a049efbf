"""Element types of IR tensors, with their ONNX codes, numpy types and sizes in bits."""

from __future__ import annotations

import enum

import ml_dtypes
import numpy as np
from onnx import TensorProto


class DType(enum.Enum):
    """A closed set of element types; value = (name, ONNX TensorProto code, bits per element)."""

    FLOAT64 = ("float64", TensorProto.DOUBLE, 64)
    FLOAT32 = ("float32", TensorProto.FLOAT, 32)
    FLOAT16 = ("float16", TensorProto.FLOAT16, 16)
    BFLOAT16 = ("bfloat16", TensorProto.BFLOAT16, 16)
    FLOAT8E4M3 = ("float8e4m3", TensorProto.FLOAT8E4M3FN, 8)
    FLOAT8E5M2 = ("float8e5m2", TensorProto.FLOAT8E5M2, 8)
    FLOAT8E4M3FNUZ = ("float8e4m3fnuz", TensorProto.FLOAT8E4M3FNUZ, 8)
    FLOAT8E5M2FNUZ = ("float8e5m2fnuz", TensorProto.FLOAT8E5M2FNUZ, 8)
    FLOAT8E8M0 = ("float8e8m0", TensorProto.FLOAT8E8M0, 8)
    FLOAT4E2M1 = ("float4e2m1", TensorProto.FLOAT4E2M1, 4)
    INT64 = ("int64", TensorProto.INT64, 64)
    INT32 = ("int32", TensorProto.INT32, 32)
    INT16 = ("int16", TensorProto.INT16, 16)
    INT8 = ("int8", TensorProto.INT8, 8)
    INT4 = ("int4", TensorProto.INT4, 4)
    INT2 = ("int2", TensorProto.INT2, 2)
    UINT64 = ("uint64", TensorProto.UINT64, 64)
    UINT32 = ("uint32", TensorProto.UINT32, 32)
    UINT16 = ("uint16", TensorProto.UINT16, 16)
    UINT8 = ("uint8", TensorProto.UINT8, 8)
    UINT4 = ("uint4", TensorProto.UINT4, 4)
    UINT2 = ("uint2", TensorProto.UINT2, 2)
    BOOL = ("bool", TensorProto.BOOL, 8)
    STRING = ("string", TensorProto.STRING, 0)

    @property
    def short_name(self) -> str:
        return self.value[0]

    @property
    def onnx_code(self) -> int:
        return self.value[1]

    @property
    def bits(self) -> int:
        return self.value[2]

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_integer(self) -> bool:
        return self in _INTEGERS

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_TO_NUMPY[self])

    def bytes_for(self, count: int):
        """Storage bytes for `count` elements (sub-byte types packed); works on symbolic counts."""
        return count * self.bits / 8 if self.bits % 8 else count * (self.bits // 8)

    @classmethod
    def from_onnx(cls, code: int) -> DType:
        try:
            return _FROM_ONNX[code]
        except KeyError:
            name = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() else str(code)
            supported = ", ".join(d.short_name for d in cls)
            raise ValueError(f"unsupported ONNX element type {name}; supported: {supported}") from None

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> DType:
        dtype = np.dtype(dtype)
        for member, np_type in _TO_NUMPY.items():
            if np.dtype(np_type) == dtype:
                return member
        if dtype.kind in ("U", "S", "O"):
            return cls.STRING
        raise ValueError(f"numpy dtype {dtype} has no IR element type")

    def __repr__(self) -> str:
        return f"DType.{self.name}"

    def __str__(self) -> str:
        return self.short_name


_FLOATS = {
    DType.FLOAT64, DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT8E4M3, DType.FLOAT8E5M2,
    DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2FNUZ, DType.FLOAT8E8M0, DType.FLOAT4E2M1,
}
_INTEGERS = {
    DType.INT64, DType.INT32, DType.INT16, DType.INT8, DType.INT4, DType.INT2,
    DType.UINT64, DType.UINT32, DType.UINT16, DType.UINT8, DType.UINT4, DType.UINT2,
}
_TO_NUMPY = {
    DType.FLOAT64: np.float64,
    DType.FLOAT32: np.float32,
    DType.FLOAT16: np.float16,
    DType.BFLOAT16: ml_dtypes.bfloat16,
    DType.FLOAT8E4M3: ml_dtypes.float8_e4m3fn,
    DType.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    DType.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    DType.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
    DType.FLOAT8E8M0: ml_dtypes.float8_e8m0fnu,
    DType.FLOAT4E2M1: ml_dtypes.float4_e2m1fn,
    DType.INT64: np.int64,
    DType.INT32: np.int32,
    DType.INT16: np.int16,
    DType.INT8: np.int8,
    DType.INT4: ml_dtypes.int4,
    DType.INT2: ml_dtypes.int2,
    DType.UINT64: np.uint64,
    DType.UINT32: np.uint32,
    DType.UINT16: np.uint16,
    DType.UINT8: np.uint8,
    DType.UINT4: ml_dtypes.uint4,
    DType.UINT2: ml_dtypes.uint2,
    DType.BOOL: np.bool_,
    DType.STRING: np.object_,
}
_FROM_ONNX = {d.onnx_code: d for d in DType}
