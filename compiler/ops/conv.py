"""N-D grouped convolution (ONNX Conv): output-size rule with auto_pad, and an im2col numpy model.

The numpy model gathers every kernel window with `sliding_window_view` and contracts windows
with weights per group in one einsum; a depthwise conv1d (Mamba's short conv) is group = C.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, normalize
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, OpError, register

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _geometry(node: Node, spatial: int, kernel: tuple) -> tuple[list[int], list[int]]:
    """(strides, dilations), defaulting to 1 per spatial axis, checked against the kernel rank."""
    strides = list(node.attr("strides", (1,) * spatial))
    dilations = list(node.attr("dilations", (1,) * spatial))
    for name, values in (("strides", strides), ("dilations", dilations)):
        if len(values) != spatial:
            raise OpError(node, f"{name} {values} has {len(values)} entries for {spatial} spatial axes")
        if any(v < 1 for v in values):
            raise OpError(node, f"{name} {values} must be positive")
    if node.attr("kernel_shape") is not None and tuple(node.attr("kernel_shape")) != tuple(kernel):
        raise OpError(node, f"kernel_shape {node.attr('kernel_shape')} does not match weights {tuple(kernel)}")
    return strides, dilations


def conv_pads(node: Node, in_sizes: tuple, kernel: tuple) -> list[tuple[Dim, Dim]]:
    """(begin, end) padding per spatial axis, resolving auto_pad (SAME_* needs static sizes)."""
    spatial = len(kernel)
    strides, dilations = _geometry(node, spatial, kernel)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in _AUTO_PADS:
        raise OpError(node, f"auto_pad {auto_pad!r} is not one of {list(_AUTO_PADS)}")
    if auto_pad == "VALID":
        return [(0, 0)] * spatial
    if auto_pad == "NOTSET":
        pads = list(node.attr("pads", (0,) * (2 * spatial)))
        if len(pads) != 2 * spatial:
            raise OpError(node, f"pads {pads} needs {2 * spatial} entries (begins then ends)")
        return [(pads[i], pads[i + spatial]) for i in range(spatial)]
    widths = []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
        # SAME keeps ceil(size / stride) outputs; the odd unit of padding goes at the end
        # (SAME_UPPER) or the beginning (SAME_LOWER).
        out = -(-size // s)
        total = (out - 1) * s + (k - 1) * d + 1 - size
        if not isinstance(total, int):
            raise OpError(node, f"auto_pad={auto_pad} with a symbolic input size {size} is not supported")
        total = max(total, 0)
        small, large = total // 2, total - total // 2
        widths.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return widths


def conv_output_sizes(node: Node, in_sizes: tuple, kernel: tuple) -> tuple[Dim, ...]:
    strides, dilations = _geometry(node, len(kernel), kernel)
    if node.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        return tuple(normalize(-(-size // s)) for size, s in zip(in_sizes, strides, strict=True))
    pads = conv_pads(node, in_sizes, kernel)
    sizes = []
    for size, k, s, d, (begin, end) in zip(in_sizes, kernel, strides, dilations, pads, strict=True):
        # `//` is floor division for ints and for sympy dims alike.
        sizes.append(normalize((size + begin + end - (k - 1) * d - 1) // s + 1))
    return tuple(sizes)


def _conv_infer(ctx: InferContext) -> list[TensorType]:
    x, w = ctx.type(0), ctx.type(1)
    if x.rank < 3 or w.rank != x.rank:
        raise ctx.fail(f"expects X (N, C, spatial...) and W of the same rank >= 3, got {x} and {w}")
    if not x.dtype.is_float or w.dtype != x.dtype:
        raise ctx.fail(f"expects float X and W of the same type, got {x.dtype} and {w.dtype}")
    group = ctx.attr("group", 1)
    channels, out_channels = x.shape[1], w.shape[0]
    if isinstance(channels, int) and isinstance(w.shape[1], int) and channels != w.shape[1] * group:
        raise ctx.fail(f"X has {channels} channels but W expects {w.shape[1]} x group {group}")
    if isinstance(out_channels, int) and out_channels % group:
        raise ctx.fail(f"{out_channels} output channels do not split into {group} groups")
    if ctx.has_input(2) and ctx.type(2).shape != (out_channels,):
        raise ctx.fail(f"bias shape {ctx.type(2).shape} is not ({out_channels},)")
    kernel = w.shape[2:]
    if not all(isinstance(k, int) for k in kernel):
        raise ctx.fail(f"kernel size {kernel} must be static")
    out = conv_output_sizes(ctx.node, x.shape[2:], kernel)
    return [TensorType(x.dtype, (x.shape[0], out_channels) + out)]


@register(Op.CONV, infer=_conv_infer)
def run_conv(node: Node, inputs: list) -> list[np.ndarray]:
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    group = node.attr("group", 1)
    kernel = w.shape[2:]
    spatial = len(kernel)
    strides, dilations = _geometry(node, spatial, kernel)
    pads = conv_pads(node, x.shape[2:], kernel)
    # Accumulate in float32 at least (numpy's einsum has no bf16 kernels).
    acc = np.float64 if x.dtype == np.float64 else np.float32
    xa = x.astype(acc)
    # Negative pads crop; positive ones add zeros.
    crop = tuple(slice(max(-b, 0), n - max(-e, 0)) for n, (b, e) in zip(x.shape[2:], pads, strict=True))
    xa = xa[(slice(None), slice(None)) + crop]
    xa = np.pad(xa, [(0, 0), (0, 0)] + [(max(b, 0), max(e, 0)) for b, e in pads])
    reach = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True))
    windows = sliding_window_view(xa, reach, axis=tuple(range(2, 2 + spatial)))
    # windows: (N, C, out'..., reach...); keep every stride-th window and every dilation-th tap.
    take = tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)
    patches = windows[(slice(None), slice(None)) + take]
    n, channels = x.shape[:2]
    patches = patches.reshape((n, group, channels // group) + patches.shape[2:])
    weights = w.astype(acc).reshape((group, w.shape[0] // group) + w.shape[1:])
    out_ix = "pqrstuvw"[:spatial]  # disjoint from the n, g, c, m subscripts
    tap_ix = out_ix.upper()
    y = np.einsum(f"ngc{out_ix}{tap_ix},gmc{tap_ix}->ngm{out_ix}", patches, weights, optimize=True)
    y = y.reshape((n, w.shape[0]) + y.shape[3:])
    if bias is not None:
        y = y + bias.astype(acc).reshape((-1,) + (1,) * spatial)
    return [y.astype(x.dtype)]
