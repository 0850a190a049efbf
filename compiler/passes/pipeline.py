"""Named passes, runnable alone (`tessera ir MODEL --passes fold-constants,dce`) or in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from compiler.ir.graph import Graph
from compiler.ir.verify import verify
from compiler.passes import dce, fold, recognize_attention, recognize_rmsnorm, recognize_rope

PASSES: dict[str, Callable[[Graph], Graph]] = {
    fold.name: fold.fold_constants,
    dce.name: dce.eliminate_dead_code,
    recognize_rmsnorm.name: recognize_rmsnorm.recognize_rmsnorm,
    recognize_rope.name: recognize_rope.recognize_rope,
    recognize_attention.name: recognize_attention.recognize_attention,
}

# Structure recognition, in this order:
RECOGNIZE_PASSES: tuple[str, ...] = (
    recognize_rmsnorm.name,  # first: norms sit between blocks, and fusing them is independent
    recognize_rope.name,  # before attention, so Q and K arrive as RotaryEmbedding outputs
    recognize_attention.name,  # strips GQA repeats, folds scales and masks into one node
    dce.name,  # drops what the fused nodes replaced (mask and shape helpers left unused)
)


def run_passes(graph: Graph, names: Sequence[str], check: bool = True) -> Graph:
    for pass_name in names:
        if pass_name not in PASSES:
            raise ValueError(f"unknown pass {pass_name!r}; passes: {', '.join(PASSES)}")
        graph = PASSES[pass_name](graph)
        if check:
            verify(graph)
    return graph


def recognize(graph: Graph) -> Graph:
    """Rewrite decomposed RMSNorm, RoPE and attention into the fused ONNX ops (in place)."""
    return run_passes(graph, RECOGNIZE_PASSES)
