"""The backend seam: what the scoring path needs from a model (`Backend`, `LabelScorer`, `BatchPlan`)
and the inputs it scores (`Encoded` token ids, the label words' ids). The registry that picks a
backend by the name's prefix is `harness.backends.registry`.

A `Backend` is a loaded model that returns label probabilities. Everything torch-specific (devices, dtypes,
out-of-memory halving, the mixed-precision check) stays behind the Hugging Face backend;
`harness.scoring.inference.predict` only sorts, batches and hands batches back.

Adding a backend: write a class that meets `Backend` and `LabelScorer`, and a loader
`(name, kind, **options) -> Backend`, then `registry.register_backend("PREFIX", loader)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from harness.errors import UserError
from tasks import Task


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


def fixed_plan(batch_size: int | str) -> BatchPlan:
    """A whole number of examples per batch; anything else but 'auto' is a user error."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"{{batch_size}} {batch_size!r}: give a positive whole number or 'auto'", param="batch_size")
    return BatchPlan(batch_size, None)


class BatchTooLarge(Exception):
    """A batch did not fit (out of memory); `predict` halves its plan and tries again."""


class LabelScorer(Protocol):
    """A backend's scorer for one task: probabilities over the task's labels per encoded input."""

    @property
    def method(self) -> str: ...  # results.json `scoring.method`

    @property
    def label_tokens(self) -> list[list[int]] | None: ...  # each label word's token ids, when words are scored

    def prepare(self, ordered: list[Encoded], status: Callable[[str], None]) -> None:
        """Before the pass, with all inputs longest first (mixed precision measures its error here)."""

    def probs(self, batch: list[Encoded]) -> np.ndarray:
        """[len(batch), n_labels] float64 probabilities; raises BatchTooLarge when the batch does not fit."""

    def account(self, n: int) -> dict[str, Any]:
        """What results.json records about how the `n` inputs were scored, by section (`mixed_precision`,
        `prefix_cache`; {} when nothing to say)."""


class Backend(Protocol):
    """A loaded model as the scoring path sees it."""

    @property
    def info(self) -> dict[str, Any]: ...  # results.json `model`

    @property
    def tokenizer(self) -> Any: ...  # a Hugging Face-style tokenizer (__call__ with offsets, decode)

    @property
    def context_length(self) -> int: ...

    @property
    def identity(self) -> str | None: ...  # what pins the weights (cache and job keys); None: nothing does

    @property
    def precision(self) -> str: ...  # float32, bfloat16, float16, mixed, ...

    @property
    def device_type(self) -> str: ...  # cpu, cuda, mps, ... (scores may differ by device)

    @property
    def compiled(self) -> bool: ...  # recorded so that --resume loads it the same way

    def scorer(self, task: Task, *, shift: np.ndarray | None = None, n_inputs: int = 0) -> LabelScorer:
        """The scorer for `task`'s kind; `shift` is the calibration the predictions are judged with."""

    def plan(self, batch_size: int | str) -> BatchPlan:
        """`--batch-size` (a number or 'auto') as a batch plan for this backend."""

    def runtime(self, batch_size: int | str) -> dict[str, Any]:
        """Device, dtype, hardware and library versions for results.json `runtime`."""


Inputs = str | Mapping[str, str]  # one text (a one-field task), or each input column's text


@dataclass(frozen=True)
class Encoded:
    """Token ids for one input, its length, whether it was cut to fit, and which field was cut."""

    ids: list[int]
    truncated: bool
    cut: str = ""  # the input column that gave way; "" when none did

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


def answer_word(word: str) -> str:
    """A label word as the start of the assistant's answer: without its leading whitespace."""
    return word.lstrip()


def label_words(task: Task) -> tuple[str, ...]:
    """The words scored for each label: as given, or as answers under a chat template."""
    return tuple(answer_word(w) for w in task.label_words) if task.chat_template else task.label_words


def label_token_ids(task: Task, tokenizer: Any) -> list[list[int]]:
    """Token ids of each label word; a word that tokenizes to nothing is a user error."""
    out = []
    for label, word in zip(task.labels, label_words(task)):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"task {task.name!r}: label word {word!r} for {label!r} tokenizes to nothing; pick another")
        out.append(list(ids))
    return out
