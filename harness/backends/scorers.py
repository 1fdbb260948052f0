"""Scorers: for each input, one score per label. The one contract every task kind meets.

- `ZeroShotScorer`: log P(label word | prompt) from a causal LM, at the last prompt
  position only (the LM head runs on one position per example, not the whole sequence).
  Multi-token label words are scored by the sum of their tokens' log-probs. With
  `share_prefix`, the tokens every input begins with are run once (`Prefix`, below).
- `ClassifierScorer`: the logits of a sequence-classification head at the last real token.

Batches are right-padded. Causal attention means real tokens never see the padding after
them, so no attention mask is needed and positions stay 0..n-1 (GPT-2's absolute position
embeddings make left padding change answers). The last real token is found from the known
lengths, never by searching for the pad id, so a literal EOS inside a review is harmless.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from harness.backends.base import Encoded, label_token_ids
from harness.errors import UserError
from tasks import Task


class Scorer(Protocol):
    """Scores a batch of encoded inputs: returns a [batch, n_labels] float32 tensor."""

    method: str
    label_tokens: list[list[int]] | None  # each label word's token ids, when the scorer reads words

    def score(self, batch: list[Encoded]) -> torch.Tensor: ...


def _pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad `seqs` into one tensor; also return each sequence's length."""
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s)
    return ids.to(device), lengths.to(device)


def _hidden_at(base: Any, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Final hidden states at `positions` ([batch, k]) from the model body."""
    return _gather(base(input_ids=ids, use_cache=False).last_hidden_state, positions)


def _gather(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(hidden.shape[0], device=hidden.device).unsqueeze(1)
    return hidden[rows, positions]


def _head(head: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The output layer on the scored positions, in the head's dtype whatever the body's.

    With a bf16 body (`--dtype mixed`) the head stays float32: bf16 logits would be rounded
    (a step of 0.125 for logits of 16 to 32), the largest part of bf16's error in label
    scores. The head runs on one position per input, so full precision costs nothing.
    """
    return head(hidden.to(head.weight.dtype))


# --- Shared-prefix scoring -------------------------------------------------------------------------
# Few-shot demonstrations, a fixed instruction and a chat header come before every input of a
# zero-shot job. `common_prefix` finds the longest token-id prefix all inputs share (ids, never
# strings: a BPE merge at the boundary cannot change what is scored); `Prefix` runs the body over it
# once and keeps each layer's keys and values. A batch then feeds only its own tokens: positions
# continue after the prefix (`position_ids`, for GPT-2's absolute and Llama's rotary positions
# alike), and each attention layer sees the prefix's keys and values, expanded across the batch,
# before its own. Right padding and causal attention keep real tokens from seeing padding, as
# without the prefix. `_PrefixLayer.update` returns prefix + new keys and values without storing
# them, so one state serves every batch and a forward holds one layer's concatenation at a time:
# the padded tokens of a batch, prefix included, which `BatchPlan` already counts (each input's
# full length) against `--batch-size auto`'s GPU budget.
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


class ZeroShotScorer:
    """Scores labels by the log-probability of their words after the prompt."""

    def __init__(self, model: Any, tokenizer: Any, task: Task, body: Any = None) -> None:
        self.model, self.task = model, task
        self.body = body if body is not None else model.base_model
        self.pad_id = int(tokenizer.pad_token_id)
        self.label_ids = label_token_ids(task, tokenizer)
        self.label_tokens: list[list[int]] | None = self.label_ids
        self.multi_token = any(len(ids) > 1 for ids in self.label_ids)
        words = "summed log-probs of multi-token label words" if self.multi_token else "single-token label words"
        self.method = f"zeroshot: log P(label word | prompt) at the last prompt position ({words})"
        config = model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        # Some heads scale their logits (Cohere multiplies, Granite divides): keep their distribution.
        self.scale = float(getattr(config, "logit_scale", None) or 1.0) / float(getattr(config, "logits_scaling", None) or 1.0)
        self.prefix: Prefix | None = None  # the shared prefix's cached state (`Prefix`)

    def share_prefix(self, ids: list[int]) -> bool:
        """Score batches beginning with `ids` from the body's state after them; False where the layers cannot share it."""
        prefix = Prefix(self.body, ids)
        self.prefix = prefix if prefix.usable else None
        return self.prefix is not None

    @torch.inference_mode()
    def score(self, batch: list[Encoded]) -> torch.Tensor:
        if not self.multi_token:
            flat = [ids[0] for ids in self.label_ids]
            return self._logprobs([e.ids for e in batch], [[len(e.ids) - 1] for e in batch])[:, 0, flat]
        columns = []
        for word in self.label_ids:
            seqs = [e.ids + word[:-1] for e in batch]
            steps = [[len(e.ids) - 1 + k for k in range(len(word))] for e in batch]
            lp = self._logprobs(seqs, steps)  # [batch, len(word), vocab]
            target = torch.tensor(word, device=lp.device).expand(len(batch), -1).unsqueeze(-1)
            columns.append(lp.gather(-1, target).squeeze(-1).sum(-1))
        return torch.stack(columns, dim=1)

    def _logprobs(self, seqs: list[list[int]], steps: list[list[int]]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        prefix = self.prefix
        if prefix is not None and all(s[: len(prefix)] == prefix.ids for s in seqs):
            ids, _ = _pad([s[len(prefix) :] for s in seqs], self.pad_id, device)
            hidden = _gather(prefix.hidden(ids), torch.tensor(steps, device=device) - len(prefix))
        else:  # no prefix, or inputs that do not begin with it
            ids, _ = _pad(seqs, self.pad_id, device)
            hidden = _hidden_at(self.body, ids, torch.tensor(steps, device=device))
        logits = _head(self.model.get_output_embeddings(), hidden).float()
        logits = logits * self.scale
        if self.softcap:  # e.g. Gemma 2 caps its logits; keep the model's own distribution
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return torch.log_softmax(logits, dim=-1)


class ClassifierScorer:
    """Scores labels by a sequence-classification head's logits."""

    method = "classifier: sequence-classification head logits at the last real token"
    label_tokens: list[list[int]] | None = None

    def __init__(self, model: Any, tokenizer: Any, task: Task, body: Any = None) -> None:
        _check_head_labels(model, task)
        self.model = model
        self.body = body if body is not None else model.base_model
        self.pad_id = int(tokenizer.pad_token_id)
        # Decoder-style heads (GPT-2, Llama, ...) are a linear `score` layer on the last token;
        # run it ourselves on that one position. Other models get the standard forward.
        self.head = getattr(model, "score", None)

    @torch.inference_mode()
    def score(self, batch: list[Encoded]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        ids, lengths = _pad([e.ids for e in batch], self.pad_id, device)
        if self.head is not None:
            hidden = _hidden_at(self.body, ids, (lengths - 1).unsqueeze(1))[:, 0]
            return _head(self.head, hidden).float()
        mask = (torch.arange(ids.shape[1], device=device) < lengths.unsqueeze(1)).long()
        return self.model(input_ids=ids, attention_mask=mask).logits.float()


def _check_head_labels(model: Any, task: Task) -> None:
    """A head must have one output per task label, in the task's order where it names them."""
    n = int(getattr(model.config, "num_labels", len(task.labels)))
    if n != len(task.labels):
        raise UserError(
            f"the model's classification head has {n} outputs but task {task.name!r} has {len(task.labels)} "
            f"labels ({', '.join(task.labels)}); use a checkpoint fine-tuned for this task"
        )
    names = [str((getattr(model.config, "id2label", None) or {}).get(i, "")).lower() for i in range(n)]
    wanted = [label.lower() for label in task.labels]
    if sorted(names) == sorted(wanted) and names != wanted:
        raise UserError(
            f"the model's head orders its labels {names} but task {task.name!r} orders them {wanted}; "
            f"use a checkpoint fine-tuned with the task's label order"
        )


# One scorer per task kind (the rows of `tasks.kinds.KINDS`).
SCORERS: dict[str, type[ZeroShotScorer] | type[ClassifierScorer]] = {
    "zeroshot": ZeroShotScorer, "classifier": ClassifierScorer,
}


def build_scorer(model: Any, tokenizer: Any, task: Task, body: Any = None) -> Scorer:
    """The scorer for the task's kind; `body` replaces the model's own (e.g. a bf16 copy)."""
    return SCORERS[task.kind](model, tokenizer, task, body)
