"""`--dtype mixed`: bfloat16 speed with float32 answers.

The model body is scored by a bfloat16 copy of it, the output layer in float32 (see
`harness.backends.scorers`). Rounding moves each label score a little, so a prediction can only
differ from a float32 run where the top two labels are closer than that movement. Those
near-ties are scored again by the float32 model. (A bf16 copy, not autocast: autocast casts
every weight on every forward; on a CPU scoring one review at a time, GPT-2-small's 200-review
zero-shot pass took 88.9 s under autocast against 67.0 s with the copy.)

How far bf16 moves the scores is measured on the run itself: before the main pass, a
sample of inputs spread over the length range is scored both ways, and the largest change
in any difference between two labels' scores, times `SAFETY`, is the near-tie threshold.
The sample's float32 scores are used as they are. The benchmark's agreement check against
an fp32 one-at-a-time reference is what verifies the bound; `tenser bench --dtype mixed`.

Decisions are judged on what the run finally compares: log-softmax scores plus, for a
calibrated zero-shot task, its per-label correction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from harness.backends.base import Encoded
from harness.backends.scorers import Scorer

SAMPLE = 16  # inputs scored both ways to measure bf16's error
SAFETY = 4.0  # threshold = SAFETY x the largest error seen in the sample
FLOOR = 1e-3  # never a smaller threshold, in case the sample saw no error at all


def decision_scores(scores: torch.Tensor, shift: np.ndarray | None) -> torch.Tensor:
    """What the prediction is the argmax of: log-softmax scores less the calibration correction."""
    out = torch.log_softmax(scores.double(), dim=-1)
    return out - torch.as_tensor(shift, dtype=out.dtype, device=out.device) if shift is not None else out


def top_gap(decision: torch.Tensor) -> torch.Tensor:
    """Per row, how far the best label is ahead of the second."""
    top2 = decision.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def pair_error(fast: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest change, over rows and label pairs, in the difference of two labels' scores."""
    d = (fast - exact).double()
    return float((d.max(dim=-1).values - d.min(dim=-1).values).max()) if len(d) else 0.0


class CheckedScorer:
    """Scores with `fast`; rows whose top two labels are within `threshold` again with `exact`."""

    def __init__(self, fast: Scorer, exact: Scorer, shift: np.ndarray | None = None) -> None:
        self.fast, self.inner, self.shift = fast, exact, shift
        self.method, self.label_tokens = exact.method, exact.label_tokens
        self.exact: dict[int, tuple[Encoded, torch.Tensor]] = {}  # fp32 scores known: id(input) -> (input, scores)
        self.threshold = FLOOR
        self.sample_error = 0.0
        self.rescored = 0
        self.sampled = 0

    def calibrate(self, sample: list[Encoded]) -> None:
        """Measure bf16's error on `sample` (one input per forward) and set the threshold."""
        if not sample:
            return
        fast = torch.cat([self.fast.score([e]).float() for e in sample])
        exact = torch.cat([self.inner.score([e]).float() for e in sample])
        self.exact.update((id(e), (e, row)) for e, row in zip(sample, exact))
        self.sampled = len(sample)
        self.sample_error = pair_error(decision_scores(fast, None), decision_scores(exact, None))
        # No finite measure (bf16 gave NaN/inf on the sample): check every input in fp32.
        self.threshold = max(SAFETY * self.sample_error, FLOOR) if math.isfinite(self.sample_error) else math.inf

    def score(self, batch: list[Encoded]) -> torch.Tensor:
        rows = [self._known(e) for e in batch]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            fast = self.fast.score([batch[i] for i in todo]).float()
            near = (top_gap(decision_scores(fast, self.shift)) < self.threshold).nonzero().flatten().tolist()
            for i, row in zip(todo, fast):
                rows[i] = row
            if near:
                again = [todo[k] for k in near]
                for i, row in zip(again, self.inner.score([batch[i] for i in again]).float()):
                    rows[i] = row
                self.rescored += len(again)
        for e in batch:  # only now: a batch that ran out of memory comes back, halved
            self.exact.pop(id(e), None)
        return torch.stack([row for row in rows if row is not None])

    def _known(self, e: Encoded) -> torch.Tensor | None:
        known = self.exact.get(id(e))
        return known[1] if known is not None and known[0] is e else None

    def record(self, log: dict[str, Any], n: int) -> None:
        """Add this pass to `log` (a model's running account of what mixed precision did)."""
        log["scored"] = log.get("scored", 0) + n
        log["sampled_fp32"] = log.get("sampled_fp32", 0) + self.sampled
        log["rescored_fp32"] = log.get("rescored_fp32", 0) + self.rescored
        log["sample_error"] = max(log.get("sample_error", 0.0), round(self.sample_error, 6))
        log["threshold"] = max(log.get("threshold", 0.0), round(self.threshold, 6))


def merge(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Two passes' statistics as one: counts add, error and threshold keep the larger.

    >>> merge({"scored": 2, "threshold": 0.1}, {"scored": 3, "threshold": 0.2, "compute_dtype": "bfloat16"})
    {'scored': 5, 'threshold': 0.2, 'compute_dtype': 'bfloat16'}
    """
    out = dict(total)
    for key, value in part.items():
        if key in ("scored", "sampled_fp32", "rescored_fp32"):
            out[key] = out.get(key, 0) + value
        elif key in ("sample_error", "threshold"):
            out[key] = max(out.get(key, 0.0), value)
        else:
            out[key] = value
    return out


def spread_sample(lengths_order: list[int], n: int = SAMPLE) -> list[int]:
    """`n` positions spread evenly over a length-sorted order (short and long inputs both)."""
    if len(lengths_order) <= n:
        return list(lengths_order)
    step = len(lengths_order) / n
    return [lengths_order[int(k * step)] for k in range(n)]
