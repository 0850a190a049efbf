"""Tensor types and constants (weights that are either described only or materialized)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.shapes import Dim, Shape, numel, shape_is_static, shape_str


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Dim:
        return numel(self.shape)

    @property
    def nbytes(self) -> Dim:
        return self.dtype.bytes_for(self.numel)

    @property
    def is_static(self) -> bool:
        return shape_is_static(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}"


@dataclass(frozen=True)
class ExternalLocation:
    """Where a described-only weight's bytes live (an ONNX external-data reference)."""

    path: Path
    offset: int
    length: int | None

    def __str__(self) -> str:
        return f"{self.path.name}@{self.offset}+{self.length if self.length is not None else '?'}"


@dataclass(frozen=True, eq=False)
class Constant:
    """A named constant tensor: `data` is a numpy array, or None when only described.

    A described-only constant says where its bytes live (`location`) so a functional run can
    load them on demand; compiling, inspecting and simulating never need them.
    """

    name: str
    type: TensorType
    data: np.ndarray | None = None
    location: ExternalLocation | None = None
    is_parameter: bool = True
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data is None and self.location is None:
            raise ValueError(f"constant {self.name!r} has neither data nor an external location")
        if not self.type.is_static:
            raise ValueError(f"constant {self.name!r} has a symbolic shape {shape_str(self.type.shape)}")
        if self.data is not None and tuple(self.data.shape) != tuple(self.type.shape):
            raise ValueError(
                f"constant {self.name!r}: data shape {self.data.shape} != declared {shape_str(self.type.shape)}"
            )

    @property
    def is_materialized(self) -> bool:
        return self.data is not None

    def value(self) -> np.ndarray:
        """The array, reading external bytes on first use (functional runs only)."""
        if self.data is not None:
            return self.data
        if "array" not in self._cache:
            self._cache["array"] = _read_external(self)
        return self._cache["array"]


class MissingWeightsError(RuntimeError):
    pass


def _read_external(const: Constant) -> np.ndarray:
    loc = const.location
    assert loc is not None
    if not loc.path.exists():
        raise MissingWeightsError(
            f"weight {const.name!r} is described only: its bytes live in {loc.path}, which does not exist "
            "(inspect and simulate work without them; a functional run needs the file)"
        )
    count = int(np.prod(const.type.shape, dtype=np.int64))
    dtype = const.type.dtype
    if dtype.bits % 8:
        raise MissingWeightsError(f"weight {const.name!r}: reading packed {dtype} external data is not supported")
    with open(loc.path, "rb") as f:
        f.seek(loc.offset)
        raw = f.read(loc.length if loc.length is not None else count * dtype.bits // 8)
    return np.frombuffer(raw, dtype=dtype.numpy, count=count).reshape(const.type.shape).copy()
