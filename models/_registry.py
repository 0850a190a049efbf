"""The registry of named model configs and the config-type -> graph builder dispatch."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import onnx

from . import compaction, engram, grumem, llama, mamba2, sliding, sparse
from ._config import check_form

# Every Llama variant subclasses LlamaConfig.
ModelConfig = llama.LlamaConfig | mamba2.Mamba2Config

# Exact config type -> builder (subclasses of LlamaConfig each have their own graph).
_BUILDERS: MappingProxyType[type, Callable[..., onnx.ModelProto]] = MappingProxyType({
    llama.LlamaConfig: llama.build,
    sliding.SlidingConfig: sliding.build,
    sparse.SparseConfig: sparse.build,
    compaction.CompactionConfig: compaction.build,
    grumem.GruMemConfig: grumem.build,
    engram.EngramConfig: engram.build,
    mamba2.Mamba2Config: mamba2.build,
})

_PRESETS = (
    llama.PRESETS + sliding.PRESETS + sparse.PRESETS + compaction.PRESETS
    + grumem.PRESETS + engram.PRESETS + mamba2.PRESETS
)
_CONFIGS: MappingProxyType[str, ModelConfig] = MappingProxyType({c.name: c for c in _PRESETS})
assert len(_CONFIGS) == len(_PRESETS), "duplicate model name in presets"


class UnknownModelError(ValueError):
    """Asked for a model name that is not registered; the message lists the known names."""


def list_models() -> list[str]:
    return list(_CONFIGS)


def get_config(name: str) -> ModelConfig:
    try:
        return _CONFIGS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(_CONFIGS)}") from None


def build_from_config(config: ModelConfig, form: str = "decode") -> onnx.ModelProto:
    """Build a graph for any config (a preset or a `dataclasses.replace` of one)."""
    check_form(form)
    try:
        builder = _BUILDERS[type(config)]
    except KeyError:
        raise TypeError(f"no graph builder for config type {type(config).__name__}") from None
    return builder(config, form)
