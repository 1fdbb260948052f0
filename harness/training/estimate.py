"""What a job costs before it runs: the planned work and a time estimate from a short timed warm-up.

The warm-up runs the real model on real encoded inputs on the chosen device: a few full training
steps on batches shaped like the training batches (collation, forward, backward, gradient clipping
and an AdamW step at learning rate 0, so the weights stay as they are), a few validation forwards at
the Trainer's evaluation batch size, and a few scoring forwards of typical test inputs. Each is
timed after one discarded repeat; the median counts and the fastest and slowest give the range,
widened by the machine's load (other processes sharing the cores). `tenser finetune` and
`tenser compare` print the plan and the estimate, and a long CPU job asks for `--yes` first.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.errors import UserError

CPU_LIMIT_S = 3600.0  # a CPU job estimated beyond this asks for --yes
WARMUP_STEPS = 5  # timed after one discarded repeat (allocations, lazy init); the median counts
BUSY_WIDENING = 2.0  # the most a busy machine widens the slow end of the range
MAX_GRAD_NORM = 1.0  # the Trainer's default clipping, part of every step


@dataclass(frozen=True)
class Timing:
    """Seconds per unit of work: the median of the timed repeats, and the fastest and slowest."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, times: Sequence[float]) -> Timing:
        ranked = sorted(times) or [0.0]
        return cls(ranked[len(ranked) // 2], ranked[0], ranked[-1])

    def scaled(self, factor: float) -> Timing:
        return Timing(self.median * factor, self.low * factor, self.high * factor)


@dataclass(frozen=True)
class Costs:
    """The measured unit costs: a training step, a validation example, a scored example, a model load."""

    step: Timing
    val: Timing  # per validation example, at the Trainer's evaluation batch size
    score: Timing  # per scored example, one at a time
    load_s: float = 0.0  # loading the model and encoding the data once (compare loads models again)


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
    n_score: int = 0  # examples scored outside training (compare: test examples x models, checks)
    fine_tunes: int = 1  # compare --seeds: K fine-tunes of this size
    n_cached: int = 0  # of n_score, examples the score cache already holds (not counted)
    loads: int = 0  # model loads after the estimate (compare: each fine-tune and each scoring phase)

    @property
    def steps(self) -> int:
        return self.epochs * -(-self.n_train // self.batch_size)


@dataclass(frozen=True)
class Around:
    """`compare`'s work besides its fine-tunes: scored examples (some already cached), model loads."""

    n_score: int = 0
    n_cached: int = 0
    fine_tunes: int = 1
    loads: int = 0
    load_s: float = 0.0  # one load as timed before the estimate


def warmup_optimizer(net: Any, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over the trainable weights, as the Trainer builds it, at learning rate 0: the step does
    all its work (moments, decay, update) and leaves every weight as it was."""
    params = [p for p in net.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=0.0, weight_decay=weight_decay, fused=device.type == "cuda" or None)


def time_train_step(net: Any, make_batch: Callable[[], dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer,
                    device: torch.device, repeats: int = WARMUP_STEPS) -> Timing:
    """Seconds per full training step: the data loader's collation, forward, backward, clipping, the
    optimizer step; the first of `repeats + 1` discarded. Weights unchanged (see `warmup_optimizer`)."""
    was_training = net.training
    params = [p for group in optimizer.param_groups for p in group["params"]]
    net.train()
    times = []
    try:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            batch = make_batch()
            out = net(**{k: v.to(device) for k, v in batch.items()})
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
    finally:
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    return Timing.of(times)


def time_eval(net: Any, batch: dict[str, torch.Tensor], device: torch.device, repeats: int = 3) -> Timing:
    """Seconds per validation example: no-grad forwards (with the loss) of one evaluation batch."""
    n = len(next(iter(batch.values())))
    times = []
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                net(**{k: v.to(device) for k, v in batch.items()})
                _sync(device)
                if i:
                    times.append((time.perf_counter() - t0) / max(n, 1))
    finally:
        net.train(was_training)
    return Timing.of(times)


def time_forward(net: Any, inputs: Sequence[list[int]], device: torch.device) -> Timing:
    """Seconds to score one input (a no-grad forward, one input at a time), over `inputs` after the first."""
    times = []
    with torch.no_grad():
        for i, ids in enumerate(inputs):
            t0 = time.perf_counter()
            net(input_ids=torch.tensor([ids], device=device))
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
    return Timing.of(times)


def machine_load() -> tuple[float, int]:
    """The 1-minute load average and the cores this process may use ((0, cores) where unknown)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        return os.getloadavg()[0], cores
    except OSError:
        return 0.0, cores


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


def seconds(plan: Plan, step: float, val: float, score: float, load_s: float) -> float:
    """The job's seconds at these unit costs."""
    train = plan.fine_tunes * plan.steps * step
    # Per epoch, each validation example twice: the Trainer's batched eval_loss, then Tenser's scoring of it.
    validation = plan.fine_tunes * plan.epochs * plan.n_val * (val + score)
    return train + validation + (plan.n_score - plan.n_cached) * score + plan.loads * load_s


def likely_range(plan: Plan, costs: Costs, load: tuple[float, int]) -> tuple[float, float, float]:
    """The estimate and its likely range: the fastest and slowest timed repeats, the slow end widened
    on a busy machine by its load over its cores, at most 2x (the repeats already ran under that load;
    other jobs coming and going move it further)."""
    c = costs
    mid = seconds(plan, c.step.median, c.val.median, c.score.median, c.load_s)
    low = seconds(plan, c.step.low, c.val.low, c.score.low, c.load_s)
    busy = min(BUSY_WIDENING, max(1.0, load[0] / load[1]))
    high = seconds(plan, c.step.high, c.val.high, c.score.high, c.load_s) * busy
    return mid, min(low, mid), max(high, mid)


def report(plan: Plan, costs: Costs, *, yes: bool, what: str = "fine-tune", hint: str = "{limit} N",
           load: tuple[float, int] | None = None) -> float:
    """Print the plan and the estimate on stderr; refuse a long CPU job without `yes`. Returns seconds."""
    load = load or machine_load()
    total, low, high = likely_range(plan, costs, load)
    share = f"{plan.trainable / max(plan.total, 1):.1%}"
    busy = " (busy: the other jobs' load slows this one)" if load[0] > load[1] else ""
    scored = (f"; {plan.n_score:,} examples scored outside training"
              + (f", {plan.n_cached:,} of them already in the score cache and not counted" if plan.n_cached else "")
              if plan.n_score else "")
    loads = f"; {plan.loads} model loads of {costs.load_s:.1f} s" if plan.loads else ""
    lines = [
        f"plan: {what} on {plan.device}: {plan.n_train:,} training examples x {plan.epochs} epoch(s) = {plan.steps:,} "
        f"steps of {plan.batch_size}, {plan.n_val:,} validation examples per epoch; {plan.trainable:,} of "
        f"{plan.total:,} parameters trained ({share})"
        + (f"; x {plan.fine_tunes} training seeds" if plan.fine_tunes > 1 else ""),
        f"estimate: {duration(total)}, likely {duration(low)} to {duration(high)} ({costs.step.median:.2f} s per "
        f"training step with its optimizer step (timed {costs.step.low:.2f} to {costs.step.high:.2f} s), "
        f"{costs.val.median:.3f} s per validation example, {costs.score.median:.2f} s per scored example, measured "
        f"on this device just now at the median input length, scaled to the mean; machine load {load[0]:.1f} on "
        f"{load[1]} cores{busy}{scored}{loads})",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
    if plan.device.startswith("cpu") and total > CPU_LIMIT_S and not yes:
        raise TooLong(f"this {what} would take about {duration(total)} on the CPU; pass {{yes}} to run it anyway, "
                      f"or make it smaller ({hint}, {{epochs}} 1, {{max_length}} 256, {{train_layers}} 2)",
                      mentions=("yes", "limit", "epochs", "max_length", "train_layers"))
    return total
