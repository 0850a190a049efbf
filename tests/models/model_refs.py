"""Naive numpy references for the models/ graphs, written from the math, one sequence at a time.

Nothing here reads a graph: the only things taken from models/ are configs (sizes) and the
weights themselves (initializer arrays, by parameter name). Attention is computed per query
over an explicit set of visible keys; recurrences step token by token. fp64 throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Weights = dict[str, np.ndarray]


# ---- basic pieces ------------------------------------------------------------------------------
def rms_norm(x: np.ndarray, gain: np.ndarray | None, eps: float) -> np.ndarray:
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if gain is None else y * gain


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(x))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def llama3_frequencies(head_dim: int, theta: float, scaling: object | None) -> np.ndarray:
    """Per-pair RoPE frequency, applying the llama3 rule pair by pair (Meta's reference code)."""
    freqs = []
    for pair in range(head_dim // 2):
        freq = theta ** (-2.0 * pair / head_dim)
        if scaling is not None:
            wavelength = 2 * math.pi / freq
            old = scaling.original_max_position_embeddings
            if wavelength < old / scaling.high_freq_factor:
                pass  # high frequency: unchanged
            elif wavelength > old / scaling.low_freq_factor:
                freq = freq / scaling.factor
            else:
                smooth = (old / wavelength - scaling.low_freq_factor) / (
                    scaling.high_freq_factor - scaling.low_freq_factor
                )
                freq = (1 - smooth) * freq / scaling.factor + smooth * freq
        freqs.append(freq)
    return np.array(freqs)


def rope(x: np.ndarray, positions: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """x [heads, s, d]: rotate pair (m, m + d/2) by angle position * freqs[m] (HF layout)."""
    half = x.shape[-1] // 2
    angle = positions[:, None] * freqs[None, :]  # [s, d/2]
    cos, sin = np.cos(angle), np.sin(angle)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def attend_one(q: np.ndarray, keys: np.ndarray, values: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """One query vector over the given keys: softmax(q.k / sqrt(d) + bias) . v."""
    logits = keys @ q / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias
    return softmax(logits) @ values


# ---- the Llama-layout decoder -----------------------------------------------------------------
# attention(layer, q [H, s, d], k [KV, s, d], v [KV, s, d], x_normed [s, hidden]) -> [H, s, d]
Attention = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def causal_visible(s: int) -> Callable[[int, int], list[int]]:
    return lambda head, i: list(range(i + 1))


def attention_over(visible: Callable[[int, int], list[int]], n_rep: int) -> Attention:
    """Attention where query i of head h sees keys visible(h, i) of KV head h // n_rep."""

    def attention(layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(q)
        for h in range(q.shape[0]):
            for i in range(q.shape[1]):
                cols = visible(h, i)
                out[h, i] = attend_one(q[h, i], k[h // n_rep, cols], v[h // n_rep, cols])
        return out

    return attention


def decoder(
    w: Weights,
    cfg: object,
    tokens: np.ndarray,
    positions: np.ndarray,
    attention: Attention,
    before_layer: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Llama forward for one sequence: logits [s, vocab] and per-layer post-RoPE (K, V)."""
    hidden_size, heads, kv_heads = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads
    d = hidden_size // heads
    s = len(tokens)
    freqs = llama3_frequencies(d, cfg.rope_theta, cfg.rope_scaling)
    h = w["model.embed_tokens.weight"][tokens]
    caches = []
    for layer in range(cfg.num_layers):
        p = f"model.layers.{layer}"
        if before_layer is not None:
            h = before_layer(layer, h)
        x = rms_norm(h, w[f"{p}.input_layernorm.weight"], cfg.rms_norm_eps)
        q = (x @ w[f"{p}.self_attn.q_proj.weight"]).reshape(s, heads, d).transpose(1, 0, 2)
        k = (x @ w[f"{p}.self_attn.k_proj.weight"]).reshape(s, kv_heads, d).transpose(1, 0, 2)
        v = (x @ w[f"{p}.self_attn.v_proj.weight"]).reshape(s, kv_heads, d).transpose(1, 0, 2)
        q, k = rope(q, positions, freqs), rope(k, positions, freqs)
        caches.append((k, v))
        o = attention(layer, q, k, v, x).transpose(1, 0, 2).reshape(s, hidden_size)
        h = h + o @ w[f"{p}.self_attn.o_proj.weight"]
        x = rms_norm(h, w[f"{p}.post_attention_layernorm.weight"], cfg.rms_norm_eps)
        gate = silu(x @ w[f"{p}.mlp.gate_proj.weight"])
        h = h + (gate * (x @ w[f"{p}.mlp.up_proj.weight"])) @ w[f"{p}.mlp.down_proj.weight"]
    h = rms_norm(h, w["model.norm.weight"], cfg.rms_norm_eps)
    head = w["model.embed_tokens.weight"].T if cfg.tie_embeddings else w["lm_head.weight"]
    return h @ head, caches


def dense(w: Weights, cfg: object, tokens: np.ndarray) -> tuple[np.ndarray, list]:
    n_rep = cfg.num_heads // cfg.num_kv_heads
    return decoder(w, cfg, tokens, np.arange(len(tokens)), attention_over(causal_visible(len(tokens)), n_rep))


# ---- sliding window ---------------------------------------------------------------------------
def sliding(w: Weights, cfg: object, tokens: np.ndarray) -> tuple[np.ndarray, list]:
    """Each layer's window from cfg.layer_window (None = full): query i sees i-W < j <= i."""
    n_rep = cfg.num_heads // cfg.num_kv_heads

    def attention(layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        window = cfg.layer_window(layer)
        if window is None:
            return attention_over(causal_visible(q.shape[1]), n_rep)(layer, q, k, v, x)
        visible = lambda head, i: [j for j in range(i + 1) if i - j < window]  # noqa: E731
        return attention_over(visible, n_rep)(layer, q, k, v, x)

    return decoder(w, cfg, tokens, np.arange(len(tokens)), attention)


# ---- block-sparse -----------------------------------------------------------------------------
def chosen_blocks(q_pooled: np.ndarray, k_pooled: np.ndarray, candidates: list[int], own: int, top_k: int) -> set[int]:
    """The top_k candidate key blocks by pooled score, plus the query's own block."""
    scores = {n: float(q_pooled @ k_pooled[n]) for n in candidates}
    best = sorted(candidates, key=lambda n: -scores[n])[:top_k]
    return set(best) | {own}


def block_means(x: np.ndarray, block: int) -> np.ndarray:
    """x [t, d] -> [ceil(t/block), d], each block averaged over the tokens it holds."""
    return np.stack([x[start : start + block].mean(axis=0) for start in range(0, len(x), block)])


def sparse(w: Weights, cfg: object, tokens: np.ndarray, prefill_len: int | None = None) -> tuple[np.ndarray, list]:
    """Rows before prefill_len: prefill semantics over tokens[:prefill_len] (query blocks pooled,
    top-k causal key blocks plus the own block). Later rows: decode semantics (the row's own
    query scores the pooled blocks of the cache up to and including itself)."""
    n_rep, block = cfg.num_heads // cfg.num_kv_heads, cfg.block_size
    prefill_len = len(tokens) if prefill_len is None else prefill_len

    def attention(layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(q)
        for h in range(q.shape[0]):
            g = h // n_rep
            q_pooled = block_means(q[h, :prefill_len], block)
            k_pooled = block_means(k[g, :prefill_len], block)
            for i in range(q.shape[1]):
                own = i // block
                if i < prefill_len:
                    keep = chosen_blocks(q_pooled[own], k_pooled, list(range(own + 1)), own, cfg.top_k)
                else:
                    cache_pooled = block_means(k[g, : i + 1], block)
                    keep = chosen_blocks(q[h, i], cache_pooled, list(range(own + 1)), own, cfg.top_k)
                cols = [j for j in range(i + 1) if j // block in keep]
                out[h, i] = attend_one(q[h, i], k[g, cols], v[g, cols])
        return out

    return decoder(w, cfg, tokens, np.arange(len(tokens)), attention)


# ---- compaction -------------------------------------------------------------------------------
def compacted(
    w: Weights, cfg: object, tokens: np.ndarray, positions: np.ndarray, prefix: list[tuple[np.ndarray, ...]]
) -> tuple[np.ndarray, list]:
    """Queries see every compacted key (with its bias) then the new tokens causally.

    prefix[layer] = (keys [KV, t, d], values [KV, t, d], bias [KV, t]).
    """
    n_rep = cfg.num_heads // cfg.num_kv_heads

    def attention(layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        ck, cv, cb = prefix[layer]
        out = np.zeros_like(q)
        for h in range(q.shape[0]):
            g = h // n_rep
            for i in range(q.shape[1]):
                keys = np.concatenate([ck[g], k[g, : i + 1]])
                values = np.concatenate([cv[g], v[g, : i + 1]])
                bias = np.concatenate([cb[g], np.zeros(i + 1)])
                out[h, i] = attend_one(q[h, i], keys, values, bias)
        return out

    return decoder(w, cfg, tokens, positions, attention)


# ---- gated recurrent memory -------------------------------------------------------------------
def grumem_chunk(
    w: Weights, cfg: object, tokens: np.ndarray, memory: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], list]:
    """One chunk: logits, updated memory per layer, and per-layer (memory K, memory V)."""
    heads, kv_heads = cfg.num_heads, cfg.num_kv_heads
    n_rep, d, slots = heads // kv_heads, cfg.hidden_size // heads, cfg.memory_slots
    new_memory: list[np.ndarray] = []
    memory_kv: list[tuple[np.ndarray, np.ndarray]] = []

    def attention(layer: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        p = f"model.layers.{layer}"
        m = memory[layer]
        m_normed = rms_norm(m, w[f"{p}.memory.norm.weight"], cfg.rms_norm_eps)
        mq = (m_normed @ w[f"{p}.self_attn.q_proj.weight"]).reshape(slots, heads, d).transpose(1, 0, 2)
        mk = (m_normed @ w[f"{p}.self_attn.k_proj.weight"]).reshape(slots, kv_heads, d).transpose(1, 0, 2)
        mv = (m_normed @ w[f"{p}.self_attn.v_proj.weight"]).reshape(slots, kv_heads, d).transpose(1, 0, 2)
        memory_kv.append((mk, mv))
        out = np.zeros_like(q)
        read = np.zeros_like(mq)
        for h in range(heads):
            g = h // n_rep
            for i in range(q.shape[1]):
                keys = np.concatenate([mk[g], k[g, : i + 1]])
                values = np.concatenate([mv[g], v[g, : i + 1]])
                out[h, i] = attend_one(q[h, i], keys, values)
            for slot in range(slots):
                read[h, slot] = attend_one(mq[h, slot], np.concatenate([mk[g], k[g]]), np.concatenate([mv[g], v[g]]))
        read = read.transpose(1, 0, 2).reshape(slots, heads * d) @ w[f"{p}.self_attn.o_proj.weight"]
        gates = sigmoid(np.concatenate([m_normed, read], axis=-1) @ w[f"{p}.memory.gate_proj.weight"]
                        + w[f"{p}.memory.gate_proj.bias"])
        update, forget = gates[:, :heads, None], gates[:, heads:, None]
        mixed = forget * m.reshape(slots, heads, d) + update * read.reshape(slots, heads, d)
        new_memory.append(mixed.reshape(slots, heads * d))
        return out

    logits, caches = decoder(w, cfg, tokens, np.arange(len(tokens)), attention)
    return logits, new_memory, memory_kv


# ---- Engram -----------------------------------------------------------------------------------
def ngram_index(tokens: np.ndarray, t: int, multipliers: tuple[int, ...], size: int) -> int:
    """(sum_j token[t-j] * a_j) mod size in Python ints; tokens before 0 count as id 0."""
    total = sum(int(tokens[t - j]) * a if t - j >= 0 else 0 for j, a in enumerate(multipliers))
    return total % size


def engram(w: Weights, cfg: object, tokens: np.ndarray, multipliers: Callable) -> tuple[np.ndarray, list]:
    """Dense decoder with the gated n-gram memory added before attention in engram layers."""
    n_rep = cfg.num_heads // cfg.num_kv_heads

    def before_layer(layer: int, h: np.ndarray) -> np.ndarray:
        if layer not in cfg.engram_layers:
            return h
        p = f"model.layers.{layer}.engram"
        rows = []
        for t in range(len(tokens)):
            parts = []
            for order, head, size in cfg.tables():
                row = ngram_index(tokens, t, multipliers(layer, order, head), size)
                parts.append(w[f"{p}.tables.{order}gram.{head}.weight"][row])
            rows.append(np.concatenate(parts))
        e = np.stack(rows)
        key, value = e @ w[f"{p}.key_proj.weight"], e @ w[f"{p}.value_proj.weight"]
        h_normed = rms_norm(h, w[f"{p}.hidden_norm.weight"], cfg.rms_norm_eps)
        k_normed = rms_norm(key, w[f"{p}.key_norm.weight"], cfg.rms_norm_eps)
        gate = sigmoid((h_normed * k_normed).sum(-1, keepdims=True) / math.sqrt(cfg.hidden_size))
        return h + gate * value

    return decoder(
        w, cfg, tokens, np.arange(len(tokens)), attention_over(causal_visible(len(tokens)), n_rep), before_layer
    )


# ---- Mamba-2, as a plain recurrence -----------------------------------------------------------
def mamba2(w: Weights, cfg: object, tokens: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Token-by-token Mamba-2: logits [s, vocab], final SSM states, final conv inputs per layer."""
    heads, p_dim, n, groups = cfg.nheads, cfg.headdim, cfg.d_state, cfg.ngroups
    d_inner, conv_dim, width = cfg.d_inner, cfg.conv_dim, cfg.d_conv
    h = w["backbone.embedding.weight"][tokens]
    ssm_states, conv_states = [], []
    for layer in range(cfg.n_layer):
        p = f"backbone.layers.{layer}.mixer"
        x_all = rms_norm(h, w[f"backbone.layers.{layer}.norm.weight"], cfg.norm_eps) @ w[f"{p}.in_proj.weight"]
        taps = w[f"{p}.conv1d.weight"][:, 0, :]  # [conv_dim, width]
        a = -np.exp(w[f"{p}.A_log"])
        state = np.zeros((heads, p_dim, n))
        window = np.zeros((conv_dim, width))
        out = np.zeros_like(h)
        for t in range(len(tokens)):
            z = x_all[t, :d_inner]
            xbc_in = x_all[t, d_inner : d_inner + conv_dim]
            dt = softplus(x_all[t, d_inner + conv_dim :] + w[f"{p}.dt_bias"])  # [heads]
            window = np.concatenate([window[:, 1:], xbc_in[:, None]], axis=1)
            xbc = silu((window * taps).sum(-1) + w[f"{p}.conv1d.bias"])
            x = xbc[:d_inner].reshape(heads, p_dim)
            b = xbc[d_inner : d_inner + groups * n].reshape(groups, n)
            c = xbc[d_inner + groups * n :].reshape(groups, n)
            y = np.zeros((heads, p_dim))
            for head in range(heads):
                group = head // (heads // groups)
                state[head] = state[head] * np.exp(dt[head] * a[head]) + dt[head] * np.outer(x[head], b[group])
                y[head] = state[head] @ c[group] + w[f"{p}.D"][head] * x[head]
            gated = (y.reshape(d_inner) * silu(z)).reshape(groups, d_inner // groups)
            gated = rms_norm(gated, None, cfg.norm_eps).reshape(d_inner) * w[f"{p}.norm.weight"]
            out[t] = gated @ w[f"{p}.out_proj.weight"]
        h = h + out
        ssm_states.append(state)
        conv_states.append(window)
    h = rms_norm(h, w["backbone.norm_f.weight"], cfg.norm_eps)
    head = w["backbone.embedding.weight"].T if cfg.tie_embeddings else w["lm_head.weight"]
    return h @ head, ssm_states, conv_states
