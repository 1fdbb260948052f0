"""The demo's models: each loaded checkpoint with its task and encoder, scored through
`harness.inference` (`make_encoder` + `predict`), the same inference path as `tenser run`, with
the task's few-shot demonstrations (`harness.prompting`) and calibration
(`harness.calibration.for_task`) prepared once, as `tenser run` prepares them.

Requests run in parallel threads; each model has a lock, so one model scores one request at
a time (a fast tokenizer is not safe to share across threads, and parallel torch calls on
one CPU only compete for the same cores). The two models still work on different requests
at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness import calibration, prompting
from harness.backends import Backend
from harness.encoding import Encoder
from harness.inference import make_encoder, predict
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
    loaded: Backend
    encoder: Encoder
    shift: np.ndarray | None = None  # the task's calibration correction, as `tenser run` computes it
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, role: Role, loaded: Backend, task: Task, *, train_data: str | None = None,
               seed: int = 0) -> Predictor:
        """Build the predictor as `tenser run --seed SEED --train-data TRAIN_DATA` prepares a job:
        demonstrations (drawn once), calibration correction, encoder."""
        task, _ = prompting.add_demonstrations(task, loaded, train_data=train_data, seed=seed, exclude=set())
        shift, _ = calibration.for_task(task, loaded)
        return cls(role, task, loaded, make_encoder(task, loaded), shift)

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
            probs = predict(self.task, self.loaded, encoded, batch_size="auto", progress=False, shift=self.shift).probs
            if self.shift is not None:
                probs = calibration.apply(probs, self.shift)
            prompts = [self.encoder.decode(e) for e in encoded]
        return [self._answer(p, prompt, e.n_tokens, e.truncated) for p, prompt, e in zip(probs, prompts, encoded)]

    def _answer(self, probs: np.ndarray, prompt: str, n_tokens: int, truncated: bool) -> Answer:
        labels = self.task.labels
        return Answer(labels[int(np.argmax(probs))], {lab: float(p) for lab, p in zip(labels, probs)},
                      prompt, n_tokens, truncated)
