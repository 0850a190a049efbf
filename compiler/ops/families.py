"""Imports every op family module so each registers its ops."""

from compiler.ops import (  # noqa: F401
    attention,
    cast,
    conv,
    elementwise,
    indexing,
    logic,
    matmul,
    movement,
    nn,
    reduce,
    shape,
)
