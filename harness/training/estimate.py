"""What a job costs before it runs: the planned work and a time estimate from a short timed warm-up.

The warm-up runs the real model on real encoded inputs on the chosen device: a few training steps
(forward and backward, no optimizer step, so no weight changes) on batches shaped like the
training batches, and a few scoring forwards of typical test inputs. `tenser finetune` and
`tenser compare` print the plan and the estimate, and a long CPU job asks for `--yes` first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.errors import UserError

CPU_LIMIT_S = 3600.0  # a CPU job estimated beyond this asks for --yes
WARMUP_STEPS = 3  # timed after one untimed step (allocations, lazy init); the median counts


@dataclass(frozen=True)
class Plan:
    """The work of one fine-tune (and, for `compare`, the scoring around it)."""

    device: str
    n_train: int
    n_val: int
    epochs: int
    batch_size: int
    trainable: int  # parameters
    total: int
    n_score: int = 0  # examples scored outside training (compare: test examples x models)
    fine_tunes: int = 1  # compare --seeds: K fine-tunes of this size

    @property
    def steps(self) -> int:
        return self.epochs * -(-self.n_train // self.batch_size)


def time_train_step(net: Any, batches: Sequence[dict[str, torch.Tensor]], device: torch.device) -> float:
    """Seconds per training step (forward + backward), the median of the timed steps; weights unchanged."""
    was_training = net.training
    net.train()
    times = []
    try:
        for i, batch in enumerate(batches[: WARMUP_STEPS + 1]):
            t0 = time.perf_counter()
            out = net(**{k: v.to(device) for k, v in batch.items()})
            out.loss.backward()
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
    finally:
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    return _median(times)


def time_forward(net: Any, inputs: Sequence[list[int]], device: torch.device) -> float:
    """Seconds to score one input (a no-grad forward, one input at a time), median over `inputs`."""
    times = []
    with torch.no_grad():
        for i, ids in enumerate(inputs):
            t0 = time.perf_counter()
            net(input_ids=torch.tensor([ids], device=device))
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
    return _median(times)


def typical(features: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """`n` features of about the median length, so the warm-up sees typical inputs."""
    ranked = sorted(features, key=lambda f: len(f["input_ids"]))
    mid = len(ranked) // 2
    start = max(0, mid - n // 2)
    return list(ranked[start : start + n])


def mean_over_median(features: Sequence[dict[str, Any]]) -> float:
    """Mean input length over the median's (the warm-up times median-length inputs).

    >>> mean_over_median([{"input_ids": [0] * n} for n in (10, 10, 40)])
    2.0
    """
    lengths = sorted(len(f["input_ids"]) for f in features)
    if not lengths or not lengths[len(lengths) // 2]:
        return 1.0
    return sum(lengths) / len(lengths) / lengths[len(lengths) // 2]


def _median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2] if times else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def duration(seconds: float) -> str:
    """A readable duration.

    >>> duration(42), duration(754), duration(9000)
    ('42 s', '12 min 34 s', '2 h 30 min')
    """
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class TooLong(UserError):
    """A CPU job the estimate puts over the limit, refused without --yes."""


def report(plan: Plan, step_s: float, score_s: float, *, yes: bool, what: str = "fine-tune",
           hint: str = "{limit} N") -> float:
    """Print the plan and the estimate on stderr; refuse a long CPU job without `yes`. Returns seconds."""
    train_s = plan.fine_tunes * plan.steps * step_s
    # each epoch: the Trainer's eval_loss pass, then Tenser's scoring
    val_s = plan.fine_tunes * 2 * plan.epochs * plan.n_val * score_s
    total = train_s + val_s + plan.n_score * score_s
    share = f"{plan.trainable / max(plan.total, 1):.1%}"
    lines = [
        f"plan: {what} on {plan.device}: {plan.n_train:,} training examples x {plan.epochs} epoch(s) = {plan.steps:,} "
        f"steps of {plan.batch_size}, {plan.n_val:,} validation examples per epoch; {plan.trainable:,} of "
        f"{plan.total:,} parameters trained ({share})"
        + (f"; x {plan.fine_tunes} training seeds" if plan.fine_tunes > 1 else ""),
        f"estimate: {duration(total)} ({step_s:.2f} s per training step, {score_s:.2f} s per scored example, "
        f"measured on this device just now at the median input length, scaled to the mean"
        + (f"; {plan.n_score:,} examples scored before and after" if plan.n_score else "") + ")",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
    if plan.device.startswith("cpu") and total > CPU_LIMIT_S and not yes:
        raise TooLong(f"this {what} would take about {duration(total)} on the CPU; pass {{yes}} to run it anyway, "
                      f"or make it smaller ({hint}, {{epochs}} 1, {{max_length}} 256, {{train_layers}} 2)",
                      mentions=("yes", "limit", "epochs", "max_length", "train_layers"))
    return total
