"""`--dtype mixed`: bfloat16 speed with float32 answers.

The weights stay float32 and every batch is scored under bfloat16 autocast. Rounding moves
each label score a little, so a prediction can only differ from a float32 run where the
top two labels are closer than that movement. Those near-ties are scored again in float32.

How far bf16 moves the scores is measured on the run itself: before the main pass, a
sample of inputs spread over the length range is scored both ways, and the largest change
in any difference between two labels' scores, times `SAFETY`, is the near-tie threshold.
The sample's float32 scores are used as they are. The benchmark's agreement check against
an fp32 one-at-a-time reference is what verifies the bound; `tenser bench --dtype mixed`.

Decisions are judged on what the run finally compares: log-softmax scores plus, for a
calibrated zero-shot task, its per-label correction.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from harness.encoding import Encoded
from harness.scorers import Scorer

SAMPLE = 16  # inputs scored both ways to measure bf16's error
SAFETY = 4.0  # threshold = SAFETY x the largest error seen in the sample
FLOOR = 1e-3  # never a smaller threshold, in case the sample saw no error at all


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on `device` when `dtype` is set; nothing otherwise."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


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
    """Scores in bf16 under autocast; rows whose top two labels are within `threshold` again in fp32."""

    def __init__(self, scorer: Scorer, device: torch.device, dtype: torch.dtype,
                 shift: np.ndarray | None = None) -> None:
        self.inner, self.device, self.dtype, self.shift = scorer, device, dtype, shift
        self.method = scorer.method
        self.exact: dict[int, torch.Tensor] = {}  # fp32 scores already known, by id() of the Encoded
        self.threshold = FLOOR
        self.sample_error = 0.0
        self.rescored = 0
        self.sampled = 0

    def calibrate(self, sample: list[Encoded]) -> None:
        """Measure bf16's error on `sample` (one input per forward) and set the threshold."""
        if not sample:
            return
        fast = torch.cat([self._fast([e]) for e in sample])
        exact = torch.cat([self.inner.score([e]).float() for e in sample])
        self.exact.update((id(e), row) for e, row in zip(sample, exact))
        self.sampled = len(sample)
        self.sample_error = pair_error(decision_scores(fast, None), decision_scores(exact, None))
        self.threshold = max(SAFETY * self.sample_error, FLOOR)

    def score(self, batch: list[Encoded]) -> torch.Tensor:
        rows: list[torch.Tensor | None] = [self.exact.pop(id(e), None) for e in batch]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            fast = self._fast([batch[i] for i in todo])
            near = (top_gap(decision_scores(fast, self.shift)) < self.threshold).nonzero().flatten().tolist()
            for i, row in zip(todo, fast):
                rows[i] = row
            if near:
                again = [todo[k] for k in near]
                for i, row in zip(again, self.inner.score([batch[i] for i in again]).float()):
                    rows[i] = row
                self.rescored += len(again)
        return torch.stack([row for row in rows if row is not None])

    def _fast(self, batch: list[Encoded]) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            return self.inner.score(batch).float()

    def record(self, log: dict[str, Any], n: int) -> None:
        """Add this pass to `log` (a model's running account of what mixed precision did)."""
        log["compute_dtype"] = str(self.dtype).removeprefix("torch.")
        log["scored"] = log.get("scored", 0) + n
        log["sampled_fp32"] = log.get("sampled_fp32", 0) + self.sampled
        log["rescored_fp32"] = log.get("rescored_fp32", 0) + self.rescored
        log["sample_error"] = max(log.get("sample_error", 0.0), round(self.sample_error, 6))
        log["threshold"] = max(log.get("threshold", 0.0), round(self.threshold, 6))


def spread_sample(lengths_order: list[int], n: int = SAMPLE) -> list[int]:
    """`n` positions spread evenly over a length-sorted order (short and long inputs both)."""
    if len(lengths_order) <= n:
        return list(lengths_order)
    step = len(lengths_order) / n
    return [lengths_order[int(k * step)] for k in range(n)]
