"""Named ONNX model builders for Tessera: the long-context model family.

    >>> import models
    >>> models.list_models()[:2]
    ['llama3.1-8b', 'llama3.2-1b']
    >>> proto = models.build_model("tiny-llama", form="prefill")

Every model has a "prefill" form (symbolic `batch`, `seq`, from an empty cache) and a
"decode" form (one new token; KV cache or recurrent state in, updated state out) named like
Hugging Face optimum exports. Tiny configs carry seeded random fp32 weights; full-size
configs carry described-only bf16 initializers (external data that is never written).
"""

from __future__ import annotations

import onnx

from . import compaction, engram, grumem, hf, llama, mamba2, sliding, sparse
from ._config import FORMS, ConfigError, check_form
from ._registry import ModelConfig, UnknownModelError, build_from_config, get_config, list_models

__all__ = [
    "FORMS",
    "ConfigError",
    "ModelConfig",
    "UnknownModelError",
    "build_from_config",
    "build_model",
    "get_config",
    "kv_bytes_per_token",
    "list_models",
    "parameter_count",
    "state_bytes",
    "compaction",
    "engram",
    "grumem",
    "hf",
    "llama",
    "mamba2",
    "sliding",
    "sparse",
]


def build_model(name: str, form: str = "decode") -> onnx.ModelProto:
    """Build the named model's graph in `form` ("prefill" or "decode")."""
    check_form(form)
    return build_from_config(get_config(name), form)


def parameter_count(config: ModelConfig) -> int:
    """Parameters implied by the config; equals the graph's initializer element count."""
    return config.parameter_count()


def kv_bytes_per_token(config: ModelConfig) -> int:
    """Bytes per sequence per unit of `past_len` in the decode graph's state inputs.

    Dense: K and V of every layer. Windowed layers, SSM state, compacted prefix and memory
    slots do not grow with context and count in `state_bytes` instead.
    """
    return config.kv_bytes_per_token()


def state_bytes(config: ModelConfig) -> int:
    """Bytes per sequence of state that does not grow with context.

    The decode graph's state inputs without a `past_len` dim (window caches, SSM and conv
    states, compacted K/V/bias, memory K/V, n-gram token ids), plus for GRU-Mem the slot
    memory kept between chunks.
    """
    return config.state_bytes()
