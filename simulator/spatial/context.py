"""How many cached tokens a decode step of a model holds when the sequence is `context` tokens long.

Dense, sparse, hybrid and Engram models cache every token (past_len = context); a hybrid's
windowed layers hold min(context, window) of them. GRU-Mem caches
only the open chunk (at most chunk_size - 1 tokens; the rest lives in fixed memory slots), a
compacted model caches what came after its compacted prefix, and an SSM caches nothing that
grows. Models given as ONNX files are taken as dense. Also the resident state a decode graph
does not show (GRU-Mem's slot memory kept between chunks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContextModel:
    kind: str                     # "dense", "chunked", "compacted" or "recurrent"
    window: int = 0               # sliding-window layers' buffer (their cache inputs have this many slots)
    chunk_size: int = 0
    compacted_len: int = 0
    hidden_state_bytes: int = 0   # resident per user but not a decode-graph input (model dtype)

    @property
    def unbounded(self) -> bool:
        """The cache stops growing: any context fits once the bounded state does."""
        return self.kind in ("chunked", "recurrent")

    def past_len(self, context):
        """Cached tokens seen by the decode step after `context` tokens (int or numpy array)."""
        c = np.asarray(context)
        if self.kind == "chunked":
            # Worst case inside a chunk: the open chunk is full but one token.
            out = np.minimum(c, self.chunk_size - 1)
        elif self.kind == "compacted":
            out = np.maximum(c - self.compacted_len, 0)
        else:
            out = c
        return int(out) if out.ndim == 0 else out

    def context_for(self, past_len: int) -> int | None:
        """The sequence length whose decode step caches `past_len` tokens (None: any length)."""
        if self.unbounded:
            return None
        return past_len + (self.compacted_len if self.kind == "compacted" else 0)

    def window_fill(self, past_len: int) -> float:
        """Share of a windowed layer's fixed buffer holding real tokens (1 for other layers' fixed state)."""
        return min(past_len, self.window) / self.window if self.window else 1.0

    def describe(self) -> str:
        if self.window:
            return f"dense, with {self.window}-token windows on the sliding-window layers"
        if self.kind == "chunked":
            return f"chunked: the cache holds the open chunk (< {self.chunk_size} tokens) plus fixed memory"
        if self.kind == "compacted":
            return f"compacted: the first {self.compacted_len} tokens live in fixed compacted slots"
        if self.kind == "recurrent":
            return "recurrent: fixed-size state, nothing grows with the context"
        return "dense: every token's K/V stays cached"


def context_model(model_name: str, grows_with_context: bool) -> ContextModel:
    """The context model of a registered model name; ONNX files are dense (or recurrent)."""
    if not grows_with_context:
        return ContextModel("recurrent", hidden_state_bytes=_hidden_state_bytes(model_name))
    config = _config(model_name)
    if config is None:
        return ContextModel("dense")
    from models.compaction import CompactionConfig
    from models.grumem import GruMemConfig
    from models.sliding import SlidingConfig

    if isinstance(config, GruMemConfig):
        return ContextModel("chunked", chunk_size=config.chunk_size,
                            hidden_state_bytes=_hidden_state_bytes(model_name))
    if isinstance(config, CompactionConfig):
        return ContextModel("compacted", compacted_len=config.compacted_len)
    if isinstance(config, SlidingConfig):
        # Below the window a windowed layer holds only the tokens seen so far: SRAM is allocated
        # at run time, so the fixed ring buffer of the graph need not be reserved in full.
        return ContextModel("dense", window=config.sliding_window)
    return ContextModel("dense")


def _config(model_name: str):
    try:
        import models

        return models.get_config(model_name)
    except (ImportError, ValueError):
        return None


def _hidden_state_bytes(model_name: str) -> int:
    """GRU-Mem's slot memory: `models.state_bytes` counts it, the decode graph's inputs do not."""
    config = _config(model_name)
    if config is None:
        return 0
    from models.grumem import GruMemConfig

    if isinstance(config, GruMemConfig):
        return config.num_layers * config.memory_slots * config.hidden_size * config.dtype_bytes
    return 0
