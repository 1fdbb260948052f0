"""Inference: the one path from encoded inputs to label probabilities.

Evaluation (`harness.runner`), calibration, few-shot, prompt selection, fine-tuning's
validation, the benchmark and the demo all reach the model through `predict`. It sorts
inputs by length (longest first, so an out-of-memory error shows at once and the batch size
halves), pads each batch to its own longest input, and returns probabilities in the original
order together with what mixed precision did. Results do not depend on batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness import precision
from harness.encoding import Encoded, Encoder, Inputs, label_token_ids
from harness.errors import UserError
from harness.models import LoadedModel
from harness.scorers import Scorer, build_scorer
from tasks import Task

# Padded tokens per batch for --batch-size auto on a GPU; it halves on out-of-memory.
GPU_TOKENS = 262144
OnBatch = Callable[[list[int], np.ndarray], None]


class NonFiniteScores(UserError):
    """The model gave NaN or infinite scores; `positions` are the inputs' indices."""

    def __init__(self, message: str, positions: list[int]) -> None:
        super().__init__(message, mentions=("dtype",))
        self.positions = positions


def make_encoder(task: Task, loaded: LoadedModel) -> Encoder:
    """The task's encoder, capped at the model's context (room kept for multi-token label words)."""
    limit = min(task.max_tokens or loaded.context_length, loaded.context_length)
    reserve = 0
    if task.kind == "zeroshot":
        reserve = max(len(ids) for ids in label_token_ids(task, loaded.tokenizer)) - 1
    return Encoder(task, loaded.tokenizer, limit, reserve=reserve)


@dataclass(frozen=True)
class BatchPlan:
    """How inputs are grouped: at most `max_examples` per batch and `max_tokens` padded tokens."""

    max_examples: int
    max_tokens: int | None  # None: a fixed number of examples per batch

    def end(self, lengths: list[int], start: int) -> int:
        """Index after the last input of the batch that begins at `start` (lengths sorted descending)."""
        if self.max_tokens is None:
            return min(len(lengths), start + self.max_examples)
        fit = max(1, self.max_tokens // max(1, lengths[start]))  # the first input is the longest
        return min(len(lengths), start + min(fit, self.max_examples))

    def halve(self) -> BatchPlan:
        if self.max_tokens is None:
            return BatchPlan(max(1, self.max_examples // 2), None)
        return BatchPlan(self.max_examples, max(1, self.max_tokens // 2))

    def describe(self) -> str:
        """What results.json records as the batch size actually used."""
        if self.max_tokens is None:
            return f"{self.max_examples} examples"
        return f"up to {self.max_examples} examples and {self.max_tokens} padded tokens"


def plan_batches(batch_size: int | str, device: torch.device) -> BatchPlan:
    """A fixed number of examples, or `auto`: a padded-token budget suited to the device.

    Auto starts large on GPUs and halves on out-of-memory, so it settles on the largest
    batch that fits.
    """
    if batch_size == "auto":
        # On a CPU a batch is no cheaper per token than one input, and padding is pure waste:
        # one review at a time measured 1.5x faster than a 4,096-token budget (BENCHMARKS.md).
        return BatchPlan(1024, GPU_TOKENS) if device.type == "cuda" else BatchPlan(1, None)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"{{batch_size}} {batch_size!r}: give a positive whole number or 'auto'", param="batch_size")
    return BatchPlan(batch_size, None)


@dataclass(frozen=True)
class Predicted:
    """`predict`'s answer: probabilities [n, n_labels] in input order, and how they were made."""

    probs: np.ndarray
    plan: BatchPlan  # the batch plan in force at the end (after any out-of-memory halving)
    precision: dict[str, Any] = field(default_factory=dict)  # mixed-precision statistics; {} when plain


def predict(
    task: Task,
    loaded: LoadedModel,
    encoded: list[Encoded],
    *,
    batch_size: int | str = "auto",
    on_batch: OnBatch | None = None,
    progress: bool = True,
    shift: np.ndarray | None = None,
) -> Predicted:
    """Probabilities over the task's labels for encoded inputs, in their order.

    `shift` is the calibration correction the predictions will be judged with (mixed precision
    re-checks near-ties of the corrected scores).
    """
    scorer: Scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    plan = plan_batches(batch_size, loaded.device)
    order = sorted(range(len(encoded)), key=lambda i: -encoded[i].n_tokens)
    checked: precision.CheckedScorer | None = None
    if loaded.fast_body is not None and len(encoded) > precision.SAMPLE:  # fewer: all are the sample: plain fp32
        fast = build_scorer(loaded.model, loaded.tokenizer, task, loaded.fast_body)
        scorer = checked = precision.CheckedScorer(fast, scorer, shift)
    lengths = [encoded[i].n_tokens for i in order]
    out = np.zeros((len(encoded), len(task.labels)), dtype=np.float64)
    with tqdm(total=len(encoded), unit="ex", desc=f"scoring {task.name}", disable=not progress,
              dynamic_ncols=True) as bar:  # closed (a newline on stderr) also when scoring fails
        if checked is not None:
            bar.set_postfix_str(f"measuring bf16 error on {precision.SAMPLE} inputs")
            checked.calibrate([encoded[i] for i in precision.spread_sample(order)])
            bar.set_postfix_str("")
        pos = 0
        while pos < len(order):
            idx = order[pos : plan.end(lengths, pos)]
            try:
                scores = scorer.score([encoded[i] for i in idx])
            except torch.OutOfMemoryError:
                if len(idx) == 1:
                    raise
                plan = plan.halve()
                torch.cuda.empty_cache()
                continue
            out[idx] = _accept(idx, torch.softmax(scores.double(), dim=-1).cpu().numpy(), on_batch)
            pos += len(idx)
            bar.update(len(idx))
    stats: dict[str, Any] = {}
    if checked is not None:
        checked.record(stats, len(encoded))
        stats["compute_dtype"] = str(loaded.compute).removeprefix("torch.")
    return Predicted(out, plan, stats)


def _accept(idx: list[int], probs: np.ndarray, on_batch: OnBatch | None) -> np.ndarray:
    """Hand a batch's finite rows to `on_batch`; then NaN/inf rows raise, never becoming predictions."""
    finite = np.isfinite(probs).all(axis=1)
    if on_batch is not None and finite.any():
        on_batch([i for i, ok in zip(idx, finite) if ok], probs[finite])
    if not finite.all():
        bad = [i for i, ok in zip(idx, finite) if not ok]
        raise NonFiniteScores(f"the model produced NaN/inf scores for {len(bad)} input(s); try {{dtype}} float32", bad)
    return probs


def predict_texts(task: Task, loaded: LoadedModel, texts: Sequence[Inputs], *, batch_size: int | str = "auto"
                  ) -> np.ndarray:
    """Probabilities for raw inputs (texts, or each field's text) through the task's own encoder (no progress bar)."""
    return predict(task, loaded, make_encoder(task, loaded).encode_many(texts), batch_size=batch_size,
                   progress=False).probs
