"""The demo's models: each loaded checkpoint with its task and encoder, scored through the
harness runner (`make_encoder` + `predict`), the same inference path as `tenser run`.

Requests run in parallel threads; each model has a lock, so one model scores one request at
a time (a fast tokenizer is not safe to share across threads, and parallel torch calls on
one CPU only compete for the same cores). The two models still work on different requests
at once.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from harness.data import hub_endpoint_reachable, hub_offline
from harness.encoding import Encoder
from harness.models import LoadedModel, ModelKind
from harness.runner import make_encoder, predict
from tasks import Task

Role = Literal["pretrained", "finetuned"]
ROLE_TITLES: dict[Role, str] = {"pretrained": "Pretrained", "finetuned": "Fine-tuned"}


@dataclass(frozen=True)
class Answer:
    """One model's answer for one review: probabilities and what exactly it read."""

    label: str
    probs: dict[str, float]
    prompt: str  # the decoded token ids the model scored (after truncation)
    n_tokens: int
    truncated: bool


@dataclass
class Predictor:
    """A loaded model, its task and encoder, serialised by a lock."""

    role: Role
    task: Task
    loaded: LoadedModel
    encoder: Encoder
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, role: Role, loaded: LoadedModel, task: Task) -> Predictor:
        """Build the predictor; the encoder is made once, as `tenser run` makes it."""
        return cls(role, task, loaded, make_encoder(task, loaded))

    @property
    def title(self) -> str:
        return ROLE_TITLES[self.role]

    @property
    def name(self) -> str:
        return str(self.loaded.info.get("name_or_path", "model"))

    def answer(self, texts: list[str]) -> list[Answer]:
        """Score `texts` (already validated) and return one answer each, in order."""
        with self.lock:
            encoded = self.encoder.encode_many(texts)
            probs = predict(self.task, self.loaded, encoded, batch_size="auto", progress=False)
            prompts = [self.encoder.decode(e) for e in encoded]
        return [self._answer(p, prompt, e.n_tokens, e.truncated) for p, prompt, e in zip(probs, prompts, encoded)]

    def _answer(self, probs: np.ndarray, prompt: str, n_tokens: int, truncated: bool) -> Answer:
        labels = self.task.labels
        return Answer(labels[int(np.argmax(probs))], {lab: float(p) for lab, p in zip(labels, probs)},
                      prompt, n_tokens, truncated)


def model_kind(task: Task) -> ModelKind:
    """How `load_model` must load a model for `task`."""
    return "causal_lm" if task.kind == "zeroshot" else "classifier"


def finetuned_task_name(name: str) -> str:
    """`imdb_classifier` for a saved `...ForSequenceClassification`, else `imdb_zeroshot` (a tuned LM).

    A name whose config cannot be read gets `imdb_classifier`, so that `load_model` reports
    the missing folder or Hub id in its own words.
    """
    archs = _architectures(name)
    if archs is None or any(a.endswith("ForSequenceClassification") for a in archs):
        return "imdb_classifier"
    return "imdb_zeroshot"


def _architectures(name: str) -> list[str] | None:
    config = Path(name).expanduser() / "config.json"
    if config.is_file():
        try:
            return list(json.loads(config.read_text()).get("architectures") or [])
        except (OSError, ValueError, AttributeError):
            return None
    if Path(name).expanduser().exists() or name.startswith((".", "/", "~")):
        return None
    if not hub_offline() and not hub_endpoint_reachable():
        return None  # load_model says the Hub is unreachable
    try:  # a Hub id: read its config only (small), before loading the weights
        from transformers import AutoConfig

        return list(AutoConfig.from_pretrained(name, trust_remote_code=False).architectures or [])
    except (OSError, ValueError, KeyError):
        return None
