"""Mamba-2 (SSD) language model: a stack of Mamba-2 mixers with constant-size recurrent state.

prefill: the SSD "minimal" chunked form (mamba_ssm `ssd_minimal_discrete`): intra-chunk
masked matmuls with segment-sum decay, inter-chunk state passing through a decay matrix over
chunks, all Einsum/CumSum/Exp, no loops. Any `seq` works: the SSD inputs are zero-padded to
whole chunks in-graph (a padded step has dt = 0, a no-op on the state) and the padded outputs
sliced off. It starts from zero state and emits the final SSM state and the conv inputs
decode needs.
decode: one token; h = h * exp(dt * A) + dt * (B x), y = C h + D x per head, and the causal
conv as a shift register. State inputs `past_ssm_state.{i}` [batch, heads, headdim, d_state]
and `past_conv_state.{i}` [batch, conv_dim, d_conv] (HF/mamba_ssm layout: the last d_conv
conv inputs) have no `past_len` dim. The SSD core runs in fp32; states are kept in the model
dtype (mamba_ssm's default inference cache).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from . import _blocks as nn
from ._config import DTYPE_BYTES, DType, WeightSource, check_form, require, require_positive
from ._graph import GraphBuilder, init_unit_normal


@dataclass(frozen=True, kw_only=True)
class Mamba2Config:
    """Mamba-2 hyper-parameters, named as in mamba_ssm (MambaConfig + Mamba2 mixer defaults)."""

    name: str
    source: str
    vocab_size: int
    d_model: int
    n_layer: int
    d_state: int = 128
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64
    ngroups: int = 1
    chunk_size: int = 256
    pad_vocab_size_multiple: int = 16
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    dtype: DType = "bfloat16"
    weights: WeightSource = "described"
    seed: int = 0

    def __post_init__(self) -> None:
        require_positive(
            self, "vocab_size", "d_model", "n_layer", "d_state", "d_conv", "expand", "headdim", "ngroups",
            "chunk_size", "pad_vocab_size_multiple",
        )
        require(self.d_inner % self.headdim == 0, self, "headdim", f"must divide d_inner {self.d_inner}")
        require(self.nheads % self.ngroups == 0, self, "ngroups", f"must divide nheads {self.nheads}")
        require(self.norm_eps > 0, self, "norm_eps", "must be > 0")
        require(self.dtype in DTYPE_BYTES, self, "dtype", f"must be one of {sorted(DTYPE_BYTES)}")
        require(self.weights in ("random", "described"), self, "weights", "must be 'random' or 'described'")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def padded_vocab(self) -> int:
        multiple = self.pad_vocab_size_multiple
        return math.ceil(self.vocab_size / multiple) * multiple

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def layer_parameters(self) -> int:
        in_proj = self.d_model * (2 * self.d_inner + 2 * self.ngroups * self.d_state + self.nheads)
        conv = self.conv_dim * self.d_conv + self.conv_dim
        per_head = 3 * self.nheads  # dt_bias, A_log, D
        return in_proj + conv + per_head + self.d_inner + self.d_inner * self.d_model + self.d_model

    def parameter_count(self) -> int:
        embed = self.padded_vocab * self.d_model
        lm_head = 0 if self.tie_embeddings else embed
        return embed + lm_head + self.n_layer * self.layer_parameters() + self.d_model

    def kv_bytes_per_token(self) -> int:
        return 0

    def state_bytes(self) -> int:
        ssm = self.nheads * self.headdim * self.d_state
        conv = self.conv_dim * self.d_conv
        return self.n_layer * (ssm + conv) * self.dtype_bytes


# ---- initializers with Mamba-2's parameterisation (so the tiny model's dynamics are sane) ----
def _init_a_log(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.log(rng.uniform(1.0, 16.0, shape))


def _init_dt_bias(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), shape))
    return dt + np.log(-np.expm1(-dt))  # inverse softplus


def _init_d(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return 1.0 + 0.1 * rng.standard_normal(shape)


def _init_conv(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) / np.sqrt(shape[-1])


def _init_small(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return 0.1 * rng.standard_normal(shape)


class Mamba2Graph:
    def __init__(self, config: Mamba2Config, form: str) -> None:
        check_form(form)
        self.config = config
        self.form = form
        self.decode = form == "decode"
        self.g = GraphBuilder(config.name, float_type=config.dtype, weights=config.weights, seed=config.seed)
        self.seq = 1 if self.decode else "seq"
        self._shared: dict[object, str] = {}

    def build(self) -> onnx.ModelProto:
        g, c = self.g, self.config
        input_ids = self.input_ids = g.input("input_ids", TensorProto.INT64, ["batch", self.seq])
        with g.scope("backbone.embedding"):
            embed = g.param("backbone.embedding.weight", [c.padded_vocab, c.d_model], init_unit_normal)
            hidden = g.op("Gather", embed, input_ids, axis=0)
        for i in range(c.n_layer):
            with g.scope(f"backbone.layers.{i}"):
                p = f"backbone.layers.{i}"
                x = nn.rms_norm(g, hidden, f"{p}.norm.weight", c.d_model, c.norm_eps)
                with g.scope("mixer"):
                    hidden = g.op("Add", hidden, self.mixer(i, x))
        with g.scope("backbone.norm_f"):
            hidden = nn.rms_norm(g, hidden, "backbone.norm_f.weight", c.d_model, c.norm_eps)
        with g.scope("lm_head"):
            if c.tie_embeddings:
                head = g.op("Transpose", embed, perm=[1, 0])
            else:
                head = g.param("lm_head.weight", [c.d_model, c.padded_vocab])
            g.op("MatMul", hidden, head, out="logits")
        g.output("logits", g.float_type, ["batch", self.seq, c.padded_vocab], first=True)
        return g.model(doc=f"{c.name} ({self.form}); config source: {c.source}")

    # ---- one mixer ----------------------------------------------------------------------------
    def mixer(self, i: int, x: str) -> str:
        g, c = self.g, self.config
        p = f"backbone.layers.{i}.mixer"
        d_in_proj = 2 * c.d_inner + 2 * c.ngroups * c.d_state + c.nheads
        zxbcdt = nn.linear(g, x, f"{p}.in_proj.weight", c.d_model, d_in_proj)
        z, xbc, dt = g.op_multi(
            "Split", zxbcdt, g.const([c.d_inner, c.conv_dim, c.nheads]), n_out=3, axis=-1
        )
        conv_w = g.param(f"{p}.conv1d.weight", [c.conv_dim, 1, c.d_conv], _init_conv)
        conv_b = g.param(f"{p}.conv1d.bias", [c.conv_dim], _init_small)
        xbc = self.conv_step(i, xbc, conv_w, conv_b) if self.decode else self.conv_prefill(i, xbc, conv_w, conv_b)
        xbc = nn.silu(g, xbc)
        xs, b, cc = g.op_multi(
            "Split", xbc, g.const([c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state]), n_out=3, axis=-1
        )
        # dt, A and the SSM run in fp32 (as in mamba_ssm; Softplus has no bf16 kernel either).
        f32 = nn.to_fp32
        dt_bias = g.param(f"{p}.dt_bias", [c.nheads], _init_dt_bias)
        dt = g.op("Softplus", g.op("Add", f32(g, dt), f32(g, dt_bias)))
        a = g.op("Neg", g.op("Exp", f32(g, g.param(f"{p}.A_log", [c.nheads], _init_a_log))))
        heads_x = g.op("Reshape", xs, g.const([0, 0, c.nheads, c.headdim]))  # [b, l, h, p]
        b_heads, c_heads = self.group_to_heads(b), self.group_to_heads(cc)  # [b, l, h, n]
        if self.decode:
            y = self.ssm_step(i, f32(g, heads_x), dt, a, f32(g, b_heads), f32(g, c_heads))
        else:
            y = self.ssd_chunked(i, f32(g, heads_x), dt, a, f32(g, b_heads), f32(g, c_heads))
        skip = g.op("Unsqueeze", g.param(f"{p}.D", [c.nheads], _init_d), g.const([-1]))
        y = g.op("Add", nn.from_fp32(g, y), g.op("Mul", heads_x, skip))
        y = g.op("Reshape", y, g.const([0, 0, c.d_inner]))
        y = self.gated_norm(g.op("Mul", y, nn.silu(g, z)), f"{p}.norm.weight")
        return nn.linear(g, y, f"{p}.out_proj.weight", c.d_inner, c.d_model)

    def gated_norm(self, x: str, weight: str) -> str:
        """RMSNormGated(norm_before_gate=False) on y * silu(z), normalised per group."""
        g, c = self.g, self.config
        grouped = g.op("Reshape", x, g.const([0, 0, c.ngroups, c.d_inner // c.ngroups]))
        normed = g.op("Reshape", nn.rms_norm_no_gain(g, grouped, c.norm_eps), g.const([0, 0, c.d_inner]))
        return g.op("Mul", g.param(weight, [c.d_inner], init=_init_d), normed)

    def group_to_heads(self, x: str) -> str:
        """[b, l, groups*n] -> [b, l, heads, n]: each group's B/C is shared by heads/groups heads."""
        g, c = self.g, self.config
        x = g.op("Reshape", x, g.const([0, 0, c.ngroups, 1, c.d_state]))
        x = g.op("Expand", x, g.const([1, 1, 1, c.nheads // c.ngroups, 1]))
        return g.op("Reshape", x, g.const([0, 0, c.nheads, c.d_state]))

    # ---- causal depthwise conv -----------------------------------------------------------------
    def conv_prefill(self, i: int, xbc: str, weight: str, bias: str) -> str:
        g, c = self.g, self.config
        channels_first = g.op("Transpose", xbc, perm=[0, 2, 1])  # [b, conv_dim, l]
        padded = g.op("Pad", channels_first, g.const([0, 0, c.d_conv, 0, 0, 0]))
        state = f"present_conv_state.{i}"
        g.op("Slice", padded, g.const([-c.d_conv]), g.const([nn.INT64_MAX]), g.const([2]), out=state)
        g.output(state, g.float_type, ["batch", c.conv_dim, c.d_conv])
        # Conv has no bf16 kernel in opset 18; causal_conv1d accumulates in fp32 anyway.
        f32 = nn.to_fp32
        conv = g.op(
            "Conv", f32(g, channels_first), f32(g, weight), f32(g, bias), group=c.conv_dim, pads=[c.d_conv - 1, 0]
        )
        return g.op("Transpose", nn.from_fp32(g, conv), perm=[0, 2, 1])

    def conv_step(self, i: int, xbc: str, weight: str, bias: str) -> str:
        g, c = self.g, self.config
        past = g.input(f"past_conv_state.{i}", g.float_type, ["batch", c.conv_dim, c.d_conv])
        newest = g.op("Transpose", xbc, perm=[0, 2, 1])  # [b, conv_dim, 1]
        older = g.op("Slice", past, g.const([1]), g.const([nn.INT64_MAX]), g.const([2]))
        state = g.op("Concat", older, newest, axis=2, out=f"present_conv_state.{i}")
        g.output(state, g.float_type, ["batch", c.conv_dim, c.d_conv])
        taps = g.op("Reshape", weight, g.const([c.conv_dim, c.d_conv]))
        out = g.op("ReduceSum", g.op("Mul", state, taps), g.const([-1]), keepdims=0)
        return g.op("Unsqueeze", g.op("Add", out, bias), g.const([1]))  # [b, 1, conv_dim]

    # ---- SSM ----------------------------------------------------------------------------------
    def ssm_step(self, i: int, x: str, dt: str, a: str, b: str, cc: str) -> str:
        """One recurrent step on [b, 1, ...] fp32 tensors; returns y [b, 1, h, p]."""
        g, c = self.g, self.config
        shape = ["batch", c.nheads, c.headdim, c.d_state]
        past = nn.to_fp32(g, g.input(f"past_ssm_state.{i}", g.float_type, shape))
        x, dt, b, cc = (g.op("Squeeze", t, g.const([1])) for t in (x, dt, b, cc))
        decay = g.op("Exp", g.op("Mul", dt, a))  # [b, h]
        decay = g.op("Unsqueeze", decay, g.const([2, 3]))
        inject = g.op("Einsum", dt, b, x, equation="bh,bhn,bhp->bhpn")
        state = g.op("Add", g.op("Mul", past, decay), inject)
        self.emit_ssm_state(i, state)
        y = g.op("Einsum", state, cc, equation="bhpn,bhn->bhp")
        return g.op("Unsqueeze", y, g.const([1]))

    def ssd_chunked(self, i: int, x: str, dt: str, a: str, b: str, cc: str) -> str:
        """ssd_minimal_discrete(x*dt, A*dt, B, C) from zero state; returns y [b, l, h, p].

        The sequence is zero-padded to whole chunks first: a padded step has dt = 0, so it
        neither decays nor feeds the state, and its outputs are sliced off.
        """
        g, c = self.g, self.config
        q, h, p, n = c.chunk_size, c.nheads, c.headdim, c.d_state
        x, dt, b, cc = (g.op("Pad", t, self.chunk_padding(rank)) for t, rank in ((x, 4), (dt, 3), (b, 4), (cc, 4)))
        xdt = g.op("Mul", x, g.op("Unsqueeze", dt, g.const([-1])))
        chunks_x = g.op("Reshape", xdt, g.const([0, -1, q, h, p]))  # [b, c, l, h, p]
        chunks_b = g.op("Reshape", b, g.const([0, -1, q, h, n]))
        chunks_c = g.op("Reshape", cc, g.const([0, -1, q, h, n]))
        adt = g.op("Reshape", g.op("Mul", dt, a), g.const([0, -1, q, h]))
        adt = g.op("Transpose", adt, perm=[0, 3, 1, 2])  # [b, h, c, l]
        a_cumsum = g.op("CumSum", adt, g.const(-1))
        # 1. outputs within each chunk (diagonal blocks)
        decay_in_chunk = g.op("Exp", self.segsum(adt, self.static_tril(q)))  # [b, h, c, l, l]
        y_diag = g.op(
            "Einsum", chunks_c, chunks_b, decay_in_chunk, chunks_x, equation="bclhn,bcshn,bhcls,bcshp->bclhp"
        )
        # 2. each chunk's own final state
        a_last = g.op("Slice", a_cumsum, g.const([-1]), g.const([nn.INT64_MAX]), g.const([-1]))
        decay_to_end = g.op("Exp", g.op("Sub", a_last, a_cumsum))
        states = g.op("Einsum", chunks_b, decay_to_end, chunks_x, equation="bclhn,bhcl,bclhp->bchpn")
        # 3. pass states across chunks: zero initial state, decay matrix over chunk boundaries
        states = g.op("Pad", states, g.const([0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))  # [b, c+1, h, p, n]
        chunk_decay = g.op("Pad", g.op("Squeeze", a_last, g.const([-1])), g.const([0, 0, 1, 0, 0, 0]))
        decay_chunks = g.op("Exp", self.segsum(chunk_decay, self.chunk_boundary_tril()))
        new_states = g.op("Einsum", decay_chunks, states, equation="bhzc,bchpn->bzhpn")
        states = g.op("Slice", new_states, g.const([0]), g.const([-1]), g.const([1]))
        last = g.op("Slice", new_states, g.const([-1]), g.const([nn.INT64_MAX]), g.const([1]))
        self.emit_ssm_state(i, g.op("Squeeze", last, g.const([1])))
        # 4. contribution of the carried-in state to each position
        y_off = g.op("Einsum", chunks_c, states, g.op("Exp", a_cumsum), equation="bclhn,bchpn,bhcl->bclhp")
        y = g.op("Reshape", g.op("Add", y_diag, y_off), g.const([0, -1, h, p]))
        return g.op("Slice", y, g.const([0]), self.shared("seq-end", self.seq_end), g.const([1]))

    def emit_ssm_state(self, i: int, state: str) -> None:
        """present_ssm_state.{i} in the model dtype from the fp32 state [b, heads, headdim, d_state]."""
        g, c = self.g, self.config
        name = f"present_ssm_state.{i}"
        if g.float_type == TensorProto.FLOAT:
            g.op("Identity", state, out=name)
        else:
            g.op("Cast", state, to=g.float_type, out=name)
        g.output(name, g.float_type, ["batch", c.nheads, c.headdim, c.d_state])

    def segsum(self, x: str, masks: tuple[str, str]) -> str:
        """segsum(x)[..., i, j] = sum(x[..., j+1 : i+1]) for j <= i, else -inf (stable form)."""
        g = self.g
        strictly_lower, lower = masks
        repeated = g.op("Where", strictly_lower, g.op("Unsqueeze", x, g.const([-1])), g.const(0.0, TensorProto.FLOAT))
        sums = g.op("CumSum", repeated, g.const(-2))
        return g.op("Where", lower, sums, g.const(float("-inf"), TensorProto.FLOAT))

    def static_tril(self, size: int) -> tuple[str, str]:
        """Strictly-lower and lower triangular bool constants [size, size] (within a chunk)."""
        rows, cols = np.indices((size, size))
        strict = self.shared(("tril-strict", size), lambda: self.g.const(rows > cols))
        return strict, self.shared(("tril", size), lambda: self.g.const(rows >= cols))

    def chunk_boundary_tril(self) -> tuple[str, str]:
        """Lower-triangular masks over the chunks + 1 state boundaries (zero initial state first)."""
        return self.shared("chunk-tril-strict", lambda: self.tril(1)), self.shared("chunk-tril", lambda: self.tril(0))

    def tril(self, offset: int) -> str:
        g = self.g
        boundaries = g.op("Add", self.shared("chunks", self.chunk_count), g.const(1))
        idx = nn.index_range(g, boundaries)
        rows = g.op("Unsqueeze", idx, g.const([1]))
        return g.op("GreaterOrEqual", g.op("Sub", rows, g.const(offset)), g.op("Unsqueeze", idx, g.const([0])))

    def chunk_count(self) -> str:
        """ceil(seq / chunk_size) as a scalar."""
        g, q = self.g, self.config.chunk_size
        return g.op("Div", g.op("Add", self.shared("seq", self.seq_len), g.const(q - 1)), g.const(q))

    def chunk_padding(self, rank: int) -> str:
        """Pad amounts that append zeros on axis 1 of a rank-`rank` tensor up to whole chunks."""

        def make() -> str:
            g, q = self.g, self.config.chunk_size
            padded_len = g.op("Mul", self.shared("chunks", self.chunk_count), g.const(q))
            pad = g.op("Unsqueeze", g.op("Sub", padded_len, self.shared("seq", self.seq_len)), g.const([0]))
            # [begin of each axis..., end of each axis...]: only the end of axis 1 is non-zero
            return g.op("Concat", g.const([0] * (rank + 1)), pad, g.const([0] * (rank - 2)), axis=0)

        return self.shared(("chunk-padding", rank), make)

    def seq_len(self) -> str:
        return nn.dim_of(self.g, self.input_ids, 1)

    def seq_end(self) -> str:
        return self.g.op("Unsqueeze", self.shared("seq", self.seq_len), self.g.const([0]))

    def shared(self, key: object, make: Callable[[], str]) -> str:
        """Build a graph-wide tensor (mask, pad amounts) once, at top-level scope, on first use."""
        if key not in self._shared:
            with self.g.scope("backbone.masks", absolute=True):
                self._shared[key] = make()
        return self._shared[key]


def build(config: Mamba2Config, form: str) -> onnx.ModelProto:
    return Mamba2Graph(config, form).build()


# state-spaces/mamba2-2.7b config.json: d_model 2560, n_layer 64, vocab 50277 (padded to a
# multiple of 16), tie_embeddings; mixer = mamba_ssm Mamba2 defaults (d_state 128, d_conv 4,
# expand 2, headdim 64, ngroups 1, chunk_size 256).
MAMBA2_2_7B = Mamba2Config(
    name="mamba2-2.7b",
    source="state-spaces/mamba2-2.7b config.json + mamba_ssm Mamba2 defaults",
    vocab_size=50277,
    d_model=2560,
    n_layer=64,
)

TINY_MAMBA2 = Mamba2Config(
    name="tiny-mamba2",
    source="tiny test config: 8 heads of 16, 2 groups, d_state 16, 4-token chunks",
    vocab_size=250,
    d_model=64,
    n_layer=2,
    d_state=16,
    headdim=16,
    ngroups=2,
    chunk_size=4,
    dtype="float32",
    weights="random",
)

PRESETS: tuple[Mamba2Config, ...] = (MAMBA2_2_7B, TINY_MAMBA2)
