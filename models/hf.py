"""Hugging Face Llama checkpoints as builder inputs: config.json -> LlamaConfig, state dict -> weights.

    >>> config = llama_config_from_hf(hf_config_dict, name="my-llama")
    >>> proto = llama.build(config, "prefill", weights=llama_weights_from_hf(state_dict))

Only what the dense Llama graph can express is accepted; anything else (biases, another
activation, a head_dim that is not hidden_size / num_heads, another RoPE type) is a ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._config import ConfigError, DType, WeightSource
from .llama import Llama3RopeScaling, LlamaConfig

# transformers.LlamaConfig defaults for the keys a config.json may leave out.
HF_DEFAULT_ROPE_THETA = 10000.0
HF_DEFAULT_RMS_NORM_EPS = 1e-6

_HF = "HF LlamaConfig"


def _unsupported(field: str, value: Any, reason: str) -> ConfigError:
    return ConfigError(_HF, field, value, reason)


def _rope(hf: Mapping[str, Any]) -> tuple[float, Llama3RopeScaling | None]:
    """rope_theta and llama3 scaling from transformers 5 `rope_parameters` (theta inside) or
    transformers 4 top-level `rope_theta` plus `rope_scaling` (`rope_type`, formerly `type`)."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    theta = float(params.get("rope_theta", hf.get("rope_theta", HF_DEFAULT_ROPE_THETA)))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        return theta, None
    if rope_type != "llama3":
        raise _unsupported("rope_type", rope_type, "only 'default' and 'llama3' RoPE are built")
    scaling = Llama3RopeScaling(
        factor=float(params["factor"]),
        low_freq_factor=float(params["low_freq_factor"]),
        high_freq_factor=float(params["high_freq_factor"]),
        original_max_position_embeddings=int(params["original_max_position_embeddings"]),
    )
    return theta, scaling


def llama_config_from_hf(
    hf: Mapping[str, Any],
    *,
    name: str,
    source: str = "Hugging Face LlamaConfig",
    dtype: DType = "float32",
    weights: WeightSource = "random",
) -> LlamaConfig:
    """The LlamaConfig of an HF `LlamaConfig.to_dict()` / config.json (model_type "llama")."""
    for field in ("attention_bias", "mlp_bias"):
        if hf.get(field, False):
            raise _unsupported(field, hf[field], "the graph has no projection biases")
    if hf.get("hidden_act", "silu") != "silu":
        raise _unsupported("hidden_act", hf["hidden_act"], "the MLP is SwiGLU (silu)")
    theta, scaling = _rope(hf)
    config = LlamaConfig(
        name=name,
        source=source,
        vocab_size=int(hf["vocab_size"]),
        hidden_size=int(hf["hidden_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=int(hf["num_attention_heads"]),
        num_kv_heads=int(hf.get("num_key_value_heads") or hf["num_attention_heads"]),
        intermediate_size=int(hf["intermediate_size"]),
        max_context=int(hf["max_position_embeddings"]),
        rope_theta=theta,
        rope_scaling=scaling,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        rms_norm_eps=float(hf.get("rms_norm_eps", HF_DEFAULT_RMS_NORM_EPS)),
        dtype=dtype,
        weights=weights,
    )
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim != config.head_dim:
        raise _unsupported("head_dim", head_dim, f"the graph uses hidden_size / num_heads = {config.head_dim}")
    return config


def llama_weights_from_hf(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF parameters (Linear weights [out, in]) in the builder's layout (MatMul weights [in, out]).

    Names are unchanged; the embedding ([vocab, hidden], gathered by row) and the norm gains
    keep their layout.
    """
    return {
        name: np.ascontiguousarray(array.T) if _is_linear(name) else np.asarray(array)
        for name, array in state_dict.items()
    }


def _is_linear(name: str) -> bool:
    return name == "lm_head.weight" or name.endswith("_proj.weight")
