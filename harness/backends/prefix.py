"""Shared-prefix scoring: the tokens every input of a job starts with run through the model once.

Few-shot demonstrations, a fixed instruction and a chat template's header come before every
input of a zero-shot job. `common_prefix` finds the longest token-id prefix they all share (ids,
never strings, so a BPE merge at the boundary cannot change what is scored); `Prefix` runs the
model body over it once and keeps each layer's keys and values. Every batch then feeds only its
inputs' own tokens: positions continue after the prefix (GPT-2's absolute positions and Llama's
rotary ones alike: `position_ids` = prefix length + 0..n-1), and each attention layer sees the
prefix's keys and values, expanded across the batch, before the batch's own. Inputs stay
right-padded, so causal attention alone keeps real tokens from seeing padding, as without the
prefix; the scored position is the last real one less the prefix length.

The cached state is never written to: `_PrefixLayer.update` returns prefix + new keys and
values without storing them, so one state serves every batch, and a forward holds one layer's
concatenation at a time (the padded tokens per batch, prefix included, are what
`--batch-size auto` budgets on a GPU: `BatchPlan` counts each input's full length).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

# Below this many shared tokens the prefix is scored as before: a cached pass adds a second
# forward's overhead and a concatenation per layer, which small prefixes do not pay back. Measured
# with benchmarks/prefix_threshold.py (SmolLM2-135M, fp32, 2-core shared CPU, one input per forward,
# ~34-token inputs after the prefix; ms per input, uncached vs cached): prefix 11: 127.7 vs 128.3,
# 19: 133.9 vs 117.6, 35: 159.5 vs 158.9 (a noisy run), 67: 257.6 vs 159.4. Even at worst the cached
# pass is not slower past ~10 tokens; 16 leaves a margin.
MIN_PREFIX = 16


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """The length of the longest token-id prefix all `seqs` share, leaving each at least one token of its own."""
    if not seqs:
        return 0
    first, shortest = seqs[0], min(len(s) for s in seqs)
    n = shortest - 1  # the last prompt token is scored: it must be in the batch, not in the prefix
    for s in seqs[1:]:
        if s[:n] != first[:n]:  # a list comparison first: most inputs share the whole prefix
            n = next(i for i in range(n) if s[i] != first[i])
    return max(n, 0)


class _PrefixLayer(DynamicLayer):
    """One attention layer's prefix keys and values: every forward sees them first, and they stay as they are."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.keys, self.values, self.device, self.is_initialized = keys, values, keys.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.keys is not None and self.values is not None
        b = key_states.shape[0]
        return (torch.cat([self.keys.expand(b, -1, -1, -1), key_states], dim=-2),
                torch.cat([self.values.expand(b, -1, -1, -1), value_states], dim=-2))


def cache_argument(body: Any) -> str:
    """The forward's name for the cache: `cache` in recent transformers, `past_key_values` before."""
    try:
        params = inspect.signature(body.forward).parameters
    except (TypeError, ValueError):
        return "cache"
    return "past_key_values" if "past_key_values" in params and "cache" not in params else "cache"


class Prefix:
    """The model body's state after `ids`, to score batches that all begin with `ids`."""

    def __init__(self, body: Any, ids: list[int]) -> None:
        self.body, self.ids, self.arg = body, ids, cache_argument(body)
        device = next(body.parameters()).device
        state = DynamicCache(config=getattr(body, "config", None))  # with the config: sliding layers show as such
        with torch.inference_mode():
            body(input_ids=torch.tensor([ids], device=device), use_cache=True, **{self.arg: state})
        # Only plain full-attention layers can be shared this way (no sliding windows, no recurrent state).
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = [
            (layer.keys, layer.values) for layer in state.layers
            if type(layer) is DynamicLayer and layer.keys is not None and layer.values is not None]
        self.usable = bool(self.layers) and len(self.layers) == len(state.layers)

    def __len__(self) -> int:
        return len(self.ids)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states of `ids` ([batch, n], each row the tokens after the prefix, right-padded)."""
        n = len(self.ids)
        state = Cache(layers=[_PrefixLayer(k, v) for k, v in self.layers])
        positions = torch.arange(n, n + ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        out = self.body(input_ids=ids, position_ids=positions, use_cache=True, **{self.arg: state})
        return out.last_hidden_state
