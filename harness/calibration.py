"""Calibration of zero-shot scores: one correction per label, computed once per run.

- contextual (Zhao et al. 2021, "Calibrate Before Use"): put content-free inputs ("N/A",
  "", "[MASK]") through the same prompt, by the same encoder and scorer as real inputs;
  their mean label distribution p_cf re-weights every example: q ∝ p / p_cf.
- pmi (Holtzman et al. 2021, "Surface Form Competition"): subtract each label word's
  log-probability after the domain prompt alone (e.g. "Sentiment:").
Both subtract a per-label log correction from the log-probabilities, then renormalise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from harness import inference
from harness.backends import Backend
from tasks import Task


def apply(probs: np.ndarray, correction: np.ndarray) -> np.ndarray:
    """Renormalised probs / exp(correction), row by row.

    >>> apply(np.array([[0.8, 0.2], [0.5, 0.5]]), np.log([0.8, 0.2])).round(3).tolist()
    [[0.5, 0.5], [0.2, 0.8]]
    """
    logits = np.log(np.clip(probs, 1e-300, None)) - correction
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def domain_prompt(task: Task) -> str:
    """The PMI premise: the task's own, or the prompt's text after {text}, stripped."""
    return task.domain_prompt or task.prompt.split("{text}")[1].strip()


def for_task(task: Task, loaded: Backend, *, batch_size: int | str = "auto"
             ) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """The task's correction and its record, or (None, None) for an uncalibrated task.

    `tenser run` and the demo both call this, so their probabilities agree.
    """
    if task.calibration == "none":  # a zero-shot-only field (tasks.kinds)
        return None, None
    return correction(task, loaded, batch_size=batch_size)


def correction(task: Task, loaded: Backend, *, batch_size: int | str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """The per-label log correction for the task's calibration method, and what to record."""
    if task.calibration == "contextual":
        probs = inference.predict_texts(task, loaded, list(task.content_free), batch_size=batch_size)
        mean = probs.mean(axis=0)
        info = {"content_free": list(task.content_free),
                "content_free_probs": {label: float(p) for label, p in zip(task.labels, mean)},
                "content_free_each": [[float(x) for x in row] for row in probs]}
    else:
        premise = domain_prompt(task)
        before = task.prompt.split("{text}")[0] if task.shots else ""  # keep the demonstrations
        bare = dataclasses.replace(task, prompt=before + "{text}" + premise)
        mean = inference.predict_texts(bare, loaded, [""], batch_size=batch_size)[0]
        info = {"domain_prompt": premise, "domain_probs": {label: float(p) for label, p in zip(task.labels, mean)}}
    return np.log(np.clip(mean, 1e-300, None)), {"method": task.calibration, **info}
