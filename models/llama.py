"""Dense GQA decoder (Llama 3.x): RMSNorm, llama3-scaled RoPE, GQA attention with KV cache, SwiGLU.

`LlamaGraph` is also the skeleton the attention variants (sliding window, block-sparse,
compaction, gated memory, Engram) subclass: they replace `attention` or `layer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import onnx
from onnx import TensorProto

from . import _blocks as nn
from ._config import DTYPE_BYTES, DType, WeightSource, check_form, require, require_positive
from ._graph import Dim, GraphBuilder, init_unit_normal


@dataclass(frozen=True, kw_only=True)
class Llama3RopeScaling:
    """`rope_scaling` of a Llama 3.x config.json (rope_type "llama3")."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int

    def __post_init__(self) -> None:
        require(self.factor >= 1, self, "factor", "must be >= 1")
        require(self.low_freq_factor > 0, self, "low_freq_factor", "must be > 0")
        require(
            self.high_freq_factor > self.low_freq_factor, self, "high_freq_factor", "must exceed low_freq_factor"
        )
        require_positive(self, "original_max_position_embeddings")


@dataclass(frozen=True, kw_only=True)
class LlamaConfig:
    """Hyper-parameters of a Llama-style dense decoder, named as in HF config.json."""

    name: str
    source: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_context: int
    rope_theta: float = 500000.0
    rope_scaling: Llama3RopeScaling | None = None
    tie_embeddings: bool = False
    rms_norm_eps: float = 1e-5
    dtype: DType = "bfloat16"
    weights: WeightSource = "described"
    seed: int = 0

    def __post_init__(self) -> None:
        require_positive(
            self, "vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
            "intermediate_size", "max_context",
        )
        hidden, heads = self.hidden_size, self.num_heads
        require(hidden % heads == 0, self, "num_heads", f"must divide hidden_size {hidden}")
        require(heads % self.num_kv_heads == 0, self, "num_kv_heads", f"must divide num_heads {heads}")
        require((self.hidden_size // self.num_heads) % 2 == 0, self, "num_heads", "head_dim must be even for RoPE")
        require(self.rope_theta > 0, self, "rope_theta", "must be > 0")
        require(self.rms_norm_eps > 0, self, "rms_norm_eps", "must be > 0")
        require(self.dtype in DTYPE_BYTES, self, "dtype", f"must be one of {sorted(DTYPE_BYTES)}")
        require(self.weights in ("random", "described"), self, "weights", "must be 'random' or 'described'")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def attention_parameters(self) -> int:
        q_and_o = 2 * self.hidden_size * self.num_heads * self.head_dim
        k_and_v = 2 * self.hidden_size * self.num_kv_heads * self.head_dim
        return q_and_o + k_and_v

    def layer_parameters(self) -> int:
        mlp = 3 * self.hidden_size * self.intermediate_size
        return self.attention_parameters() + mlp + 2 * self.hidden_size

    def parameter_count(self) -> int:
        embed = self.vocab_size * self.hidden_size
        lm_head = 0 if self.tie_embeddings else embed
        return embed + lm_head + self.num_layers * self.layer_parameters() + self.hidden_size

    def kv_bytes_per_layer_token(self) -> int:
        return 2 * self.num_kv_heads * self.head_dim * self.dtype_bytes

    def kv_bytes_per_token(self) -> int:
        return self.num_layers * self.kv_bytes_per_layer_token()

    def state_bytes(self) -> int:
        return 0


def llama3_inv_freq(config: LlamaConfig) -> np.ndarray:
    """RoPE inverse frequencies with the llama3 long-context rescaling (HF rope_type 'llama3')."""
    dim = config.head_dim
    inv_freq = 1.0 / config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    scaling = config.rope_scaling
    if scaling is None:
        return inv_freq
    context = scaling.original_max_position_embeddings
    low_freq_wavelen = context / scaling.low_freq_factor
    high_freq_wavelen = context / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return np.where(medium, smoothed, scaled)


class LlamaGraph:
    """Builds the prefill or decode graph of a Llama-style decoder.

    prefill: input_ids/position_ids [batch, seq] -> logits [batch, seq, vocab] and
    present.{i}.key/value [batch, kv_heads, seq, head_dim] (from an empty cache).
    decode: one token plus past_key_values.{i}.key/value [batch, kv_heads, past_len, head_dim]
    -> logits [batch, 1, vocab] and present.{i}.* [batch, kv_heads, past_len + 1, head_dim].
    `weights` (HF names, [in, out] layout) replaces the config's seeded or described ones.
    """

    def __init__(self, config: LlamaConfig, form: str, weights: Mapping[str, np.ndarray] | None = None) -> None:
        check_form(form)
        self.config = config
        self.form = form
        self.decode = form == "decode"
        self.g = GraphBuilder(
            config.name, float_type=config.dtype, weights=config.weights, seed=config.seed, given_weights=weights
        )
        self.seq: Dim = 1 if self.decode else "seq"
        self._shared: dict[object, str] = {}

    # ---- skeleton -------------------------------------------------------------------------
    def build(self) -> onnx.ModelProto:
        g, c = self.g, self.config
        self.input_ids = g.input("input_ids", TensorProto.INT64, ["batch", self.seq])
        self.position_ids = g.input("position_ids", TensorProto.INT64, ["batch", self.seq])
        self.add_inputs()
        with g.scope("model.rotary_emb", absolute=True):
            self.cos, self.sin = nn.rope_cos_sin(g, self.position_ids, llama3_inv_freq(c))
        with g.scope("model.embed_tokens"):
            embed = g.param("model.embed_tokens.weight", [c.vocab_size, c.hidden_size], init_unit_normal)
            hidden = g.op("Gather", embed, self.input_ids, axis=0)
        for i in range(c.num_layers):
            with g.scope(f"model.layers.{i}"):
                hidden = self.layer(i, hidden)
        with g.scope("model.norm"):
            hidden = nn.rms_norm(g, hidden, "model.norm.weight", c.hidden_size, c.rms_norm_eps)
        with g.scope("lm_head"):
            if c.tie_embeddings:
                head = g.op("Transpose", embed, perm=[1, 0])
            else:
                head = g.param("lm_head.weight", [c.hidden_size, c.vocab_size])
            g.op("MatMul", hidden, head, out="logits")
        g.output("logits", g.float_type, ["batch", self.seq, c.vocab_size], first=True)
        return g.model(doc=f"{c.name} ({self.form}); config source: {c.source}")

    def add_inputs(self) -> None:
        """Hook for graph inputs beyond input_ids/position_ids that are not per-layer."""

    def layer(self, i: int, hidden: str) -> str:
        g, c = self.g, self.config
        p = f"model.layers.{i}"
        x = nn.rms_norm(g, hidden, f"{p}.input_layernorm.weight", c.hidden_size, c.rms_norm_eps)
        with g.scope("self_attn"):
            hidden = g.op("Add", hidden, self.attention(i, x))
        x = nn.rms_norm(g, hidden, f"{p}.post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps)
        with g.scope("mlp"):
            return g.op("Add", hidden, nn.swiglu_mlp(g, x, f"{p}.mlp", c.hidden_size, c.intermediate_size))

    # ---- attention pieces (variants override some of these) -------------------------------
    def attention(self, i: int, x: str) -> str:
        q, k, v = self.qkv(i, x)
        keys, values = self.kv_cache(i, k, v)
        mask = None if self.decode else self.shared("causal", self.causal_mask)
        return self.out_proj(i, self.attend(q, keys, values, mask))

    def qkv(self, i: int, x: str, rotate: bool = True) -> tuple[str, str, str]:
        """Projections to [b, heads, s, d] (q) and [b, kv_heads, s, d] (k, v); RoPE on q and k."""
        g, c = self.g, self.config
        p = f"model.layers.{i}.self_attn"
        d, kv_width = c.head_dim, c.num_kv_heads * c.head_dim
        q = nn.split_heads(g, nn.linear(g, x, f"{p}.q_proj.weight", c.hidden_size, c.hidden_size), c.num_heads, d)
        k = nn.split_heads(g, nn.linear(g, x, f"{p}.k_proj.weight", c.hidden_size, kv_width), c.num_kv_heads, d)
        v = nn.split_heads(g, nn.linear(g, x, f"{p}.v_proj.weight", c.hidden_size, kv_width), c.num_kv_heads, d)
        if rotate:
            q = nn.apply_rope(g, q, self.cos, self.sin, d)
            k = nn.apply_rope(g, k, self.cos, self.sin, d)
        return q, k, v

    def kv_cache(self, i: int, k: str, v: str) -> tuple[str, str]:
        """Unbounded cache: decode appends to past_key_values.{i}; prefill returns the new K/V."""
        g, c = self.g, self.config
        past_shape = ["batch", c.num_kv_heads, "past_len", c.head_dim]
        present_len: Dim = "past_len + 1" if self.decode else "seq"
        present = []
        for kind, new in (("key", k), ("value", v)):
            name = f"present.{i}.{kind}"
            if self.decode:
                past = g.input(f"past_key_values.{i}.{kind}", g.float_type, past_shape)
                g.op("Concat", past, new, axis=2, out=name)
            else:
                g.op("Identity", new, out=name)
            g.output(name, g.float_type, ["batch", c.num_kv_heads, present_len, c.head_dim])
            present.append(name)
        return present[0], present[1]

    def attend(self, q: str, keys: str, values: str, mask: str | None) -> str:
        """softmax(q k^T / sqrt(d) + mask) v with the KV heads repeated for GQA: [b, heads, s, d]."""
        g, c = self.g, self.config
        n_rep = c.num_heads // c.num_kv_heads
        keys = nn.repeat_kv(g, keys, c.num_kv_heads, n_rep, c.head_dim)
        values = nn.repeat_kv(g, values, c.num_kv_heads, n_rep, c.head_dim)
        scores = nn.attention_scores(g, q, keys, c.head_dim)
        if mask is not None:
            scores = g.op("Add", scores, mask)
        return g.op("MatMul", nn.softmax(g, scores), values)

    def out_proj(self, i: int, o: str) -> str:
        g, c = self.g, self.config
        merged = nn.merge_heads(g, o, c.hidden_size)
        return nn.linear(g, merged, f"model.layers.{i}.self_attn.o_proj.weight", c.hidden_size, c.hidden_size)

    # ---- graph-wide tensors built once ------------------------------------------------------
    def shared(self, key: object, make: Callable[[], str]) -> str:
        """Build a graph-wide tensor (a mask) once, at top-level scope, on first use."""
        if key not in self._shared:
            with self.g.scope("model.masks", absolute=True):
                self._shared[key] = make()
        return self._shared[key]

    def seq_len(self) -> str:
        return self.shared("seq_len", lambda: nn.dim_of(self.g, self.input_ids, 1))

    def causal_mask(self) -> str:
        """Additive [s, s] causal mask for prefill."""
        return nn.additive_mask(self.g, nn.causal_masked(self.g, self.seq_len()))


def build(config: LlamaConfig, form: str, weights: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """The graph of `config` in `form`; `weights` (name -> [in, out] array) if given, else the config's."""
    return LlamaGraph(config, form, weights).build()


C = TypeVar("C", bound=LlamaConfig)


def derive(base: LlamaConfig, config_type: type[C], **changes: object) -> C:
    """A `config_type` config that keeps every Llama field of `base` except `changes`."""
    fields: dict[str, object] = {name: getattr(base, name) for name in LlamaConfig.__dataclass_fields__}
    fields.update(changes)
    return config_type(**fields)


LLAMA3_ROPE_8K = Llama3RopeScaling(
    factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192
)

LLAMA31_8B = LlamaConfig(
    name="llama3.1-8b",
    source="meta-llama/Llama-3.1-8B config.json; REFERENCE.md 'Llama 3.1 8B'",
    vocab_size=128256,
    hidden_size=4096,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    intermediate_size=14336,
    max_context=131072,
    rope_scaling=LLAMA3_ROPE_8K,
)

# Llama 3.2 1B ties its LM head to the embedding (tie_word_embeddings: true); we tie too, so
# the parameter count matches the published 1,235,814,400 and the head is Transpose(embed).
LLAMA32_1B = LlamaConfig(
    name="llama3.2-1b",
    source="meta-llama/Llama-3.2-1B config.json (rope factor 32, tie_word_embeddings true)",
    vocab_size=128256,
    hidden_size=2048,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    intermediate_size=8192,
    max_context=131072,
    rope_scaling=Llama3RopeScaling(
        factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192
    ),
    tie_embeddings=True,
)

LLAMA31_70B = LlamaConfig(
    name="llama3.1-70b",
    source="meta-llama/Llama-3.1-70B config.json",
    vocab_size=128256,
    hidden_size=8192,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    intermediate_size=28672,
    max_context=131072,
    rope_scaling=LLAMA3_ROPE_8K,
)

# Small enough for onnxruntime in milliseconds; original context 64 puts some RoPE
# frequencies in each llama3 band (kept, smoothed, divided by factor) for head_dim 16.
TINY_LLAMA = LlamaConfig(
    name="tiny-llama",
    source="tiny test config (Llama 3.1 layout)",
    vocab_size=256,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=128,
    max_context=256,
    rope_theta=10000.0,
    rope_scaling=Llama3RopeScaling(
        factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64
    ),
    dtype="float32",
    weights="random",
)

PRESETS: tuple[LlamaConfig, ...] = (LLAMA31_8B, LLAMA32_1B, LLAMA31_70B, TINY_LLAMA)
