"""The layer kind each instruction is tagged with, so time and bytes can be reported per kind.

Recognized ops name their kind; otherwise the node's scope in the exported graph does
(`model.layers.3/self_attn/...`, `.../mlp/...`, `backbone.layers.0/mixer/...`). Ops sitting
directly in a layer scope between the blocks are the decomposed norms.
"""

from __future__ import annotations

import re

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op

LAYER_KINDS = ("embed", "norm", "attention", "rope", "mlp", "lm_head", "ssm", "collective", "other")
_SCOPES = (
    ("lm_head", "lm_head"), ("embed", "embed"), ("rotary", "rope"), ("rope", "rope"), ("mixer", "ssm"),
    ("ssm", "ssm"), ("mamba", "ssm"), ("mlp", "mlp"), ("ffn", "mlp"), ("feed_forward", "mlp"), ("attn", "attention"),
    ("attention", "attention"), ("norm", "norm"),
)
_NORM_OPS = {Op.CAST, Op.POW, Op.REDUCE_MEAN, Op.ADD, Op.SQRT, Op.RECIPROCAL, Op.MUL, Op.DIV, Op.SUB}
_LAYER_SCOPE = re.compile(r"layers?[._]\d+/[A-Za-z]+_\d+$")


def layer_kind(graph: Graph, node: Node) -> str:
    if node.op == Op.ATTENTION:
        return "attention"
    if node.op == Op.ROTARY_EMBEDDING:
        return "rope"
    if node.op in (Op.RMS_NORMALIZATION, Op.LAYER_NORMALIZATION):
        return "norm"
    name = node.name.lower()
    for word, kind in _SCOPES:
        if word in name:
            return kind
    if node.op == Op.GATHER and node.inputs[0] in graph.constants:
        return "embed"
    if _LAYER_SCOPE.search(node.name) and node.op in _NORM_OPS:
        return "norm"
    if node.op in (Op.MATMUL, Op.GEMM) and graph.outputs and node.outputs[0] == graph.outputs[0]:
        return "lm_head"
    return "other"
