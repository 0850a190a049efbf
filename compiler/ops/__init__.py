"""Op semantics: type rules and numpy definitions, one module per op family."""

from compiler.ops.registry import (
    InferContext,
    OpDef,
    OpError,
    UnsupportedOpError,
    broadcast_shapes,
    opdef,
    register,
    supported_ops,
)

__all__ = [
    "InferContext",
    "OpDef",
    "OpError",
    "UnsupportedOpError",
    "broadcast_shapes",
    "opdef",
    "register",
    "supported_ops",
]
