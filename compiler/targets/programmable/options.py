"""What a lowering is asked to do (`LoweringOptions`) and how it fails (`LoweringError`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from simulator.hardware.programmable import PRECISIONS


class LoweringError(ValueError):
    """The graph, options or chip cannot be lowered; the message names the node or field."""


class AddressSpaceError(LoweringError):
    """The memory plan needs more HBM than the ISA's 40-bit addresses reach: the program cannot be
    emitted, but the model is still reported (fits = False, `fits_reason` names the sizes).
    `meta` holds the program meta the lowering had computed (weight and KV bytes, ...)."""

    def __init__(self, message: str, fits_reason: str, meta: Mapping | None = None) -> None:
        super().__init__(message)
        self.fits_reason = fits_reason
        self.meta = dict(meta or {})


@dataclass(frozen=True)
class LoweringOptions:
    """`bindings` give every symbolic dim a size (e.g. {"batch": 1, "past_len": 131072});
    `batch` fills in "batch" when bindings leave it out. `tensor_parallel` defaults to the
    chip's linked chips (`chip.links.chips`)."""

    batch: int = 1
    bindings: Mapping[str, int] = field(default_factory=dict)
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"
    activation_precision: str = "bf16"
    tensor_parallel: int | None = None

    def __post_init__(self) -> None:
        if self.batch <= 0:
            raise LoweringError(f"batch must be positive, got {self.batch}")
        for name in ("weight_precision", "kv_precision", "activation_precision"):
            value = getattr(self, name)
            if value not in PRECISIONS:
                raise LoweringError(f"{name} {value!r} is not a precision; known: {', '.join(PRECISIONS)}")
        if self.tensor_parallel is not None and self.tensor_parallel <= 0:
            raise LoweringError(f"tensor_parallel must be positive, got {self.tensor_parallel}")
        for symbol_name, size in self.bindings.items():
            if int(size) <= 0:
                raise LoweringError(f"binding {symbol_name}={size} must be positive")

    def all_bindings(self) -> dict[str, int]:
        bound = {"batch": self.batch, "batch_size": self.batch}
        bound.update({k: int(v) for k, v in self.bindings.items()})
        return bound
