"""Inference: the one path from encoded inputs to label probabilities.

Evaluation (`harness.scoring.runner`), calibration, few-shot, prompt selection, fine-tuning's
validation, the benchmark and the demo all reach the model through `predict`. It sorts
inputs by length (longest first, so a batch too large shows at once and the batch plan
halves), batches them by the backend's plan, hands each batch's probabilities to a callback,
and returns them in the original order together with what the backend's scorer recorded
(mixed precision). Results do not depend on batch size. Devices, padding and out-of-memory
handling belong to the backend (`harness.backends.base`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from harness.backends.base import Backend, BatchPlan, BatchTooLarge, LabelScorer
from harness.errors import UserError
from harness.scoring.encoding import Encoded, Encoder, Inputs, label_token_ids
from tasks import Task
from tasks.kinds import get_kind

__all__ = ["BatchPlan", "NonFiniteScores", "Predicted", "make_encoder", "predict", "predict_texts"]
OnBatch = Callable[[list[int], np.ndarray], None]


class NonFiniteScores(UserError):
    """The model gave NaN or infinite scores; `positions` are the inputs' indices."""

    def __init__(self, message: str, positions: list[int]) -> None:
        super().__init__(message, mentions=("dtype",))
        self.positions = positions


def make_encoder(task: Task, loaded: Backend) -> Encoder:
    """The task's encoder, capped at the model's context (room kept for multi-token label words)."""
    limit = min(task.max_tokens or loaded.context_length, loaded.context_length)
    reserve = 0
    if get_kind(task.kind).prompted:
        reserve = max(len(ids) for ids in label_token_ids(task, loaded.tokenizer)) - 1
    return Encoder(task, loaded.tokenizer, limit, reserve=reserve)


@dataclass(frozen=True)
class Predicted:
    """`predict`'s answer: probabilities [n, n_labels] in input order, and how they were made."""

    probs: np.ndarray
    plan: BatchPlan  # the batch plan in force at the end (after any out-of-memory halving)
    precision: dict[str, Any] = field(default_factory=dict)  # mixed-precision statistics; {} when plain
    prefix: dict[str, Any] = field(default_factory=dict)  # the shared prefix run once; {} when not applicable


def predict(
    task: Task,
    loaded: Backend,
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
    scorer: LabelScorer = loaded.scorer(task, shift=shift, n_inputs=len(encoded))
    plan = loaded.plan(batch_size)
    order = sorted(range(len(encoded)), key=lambda i: -encoded[i].n_tokens)
    lengths = [encoded[i].n_tokens for i in order]
    out = np.zeros((len(encoded), len(task.labels)), dtype=np.float64)
    with tqdm(total=len(encoded), unit="ex", desc=f"scoring {task.name}", disable=not progress,
              dynamic_ncols=True) as bar:  # closed (a newline on stderr) also when scoring fails
        scorer.prepare([encoded[i] for i in order], bar.set_postfix_str)
        pos = 0
        while pos < len(order):
            idx = order[pos : plan.end(lengths, pos)]
            try:
                probs = scorer.probs([encoded[i] for i in idx])
            except BatchTooLarge:
                plan = plan.halve()
                continue
            out[idx] = _accept(idx, probs, on_batch)
            pos += len(idx)
            bar.update(len(idx))
    account = scorer.account(len(encoded))
    return Predicted(out, plan, account.get("mixed_precision", {}), account.get("prefix_cache", {}))


def _accept(idx: list[int], probs: np.ndarray, on_batch: OnBatch | None) -> np.ndarray:
    """Hand a batch's finite rows to `on_batch`; then NaN/inf rows raise, never becoming predictions."""
    finite = np.isfinite(probs).all(axis=1)
    if on_batch is not None and finite.any():
        on_batch([i for i, ok in zip(idx, finite) if ok], probs[finite])
    if not finite.all():
        bad = [i for i, ok in zip(idx, finite) if not ok]
        raise NonFiniteScores(f"the model produced NaN/inf scores for {len(bad)} input(s); try {{dtype}} float32", bad)
    return probs


def predict_texts(task: Task, loaded: Backend, texts: Sequence[Inputs], *, batch_size: int | str = "auto"
                  ) -> np.ndarray:
    """Probabilities for raw inputs (texts, or each field's text) through the task's own encoder (no progress bar)."""
    return predict(task, loaded, make_encoder(task, loaded).encode_many(texts), batch_size=batch_size,
                   progress=False).probs
