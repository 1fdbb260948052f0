"""A regression gate for CI: is the AFTER run non-inferior to the BEFORE run on the same examples?

Paired non-inferiority: with the 95% interval of (after - before), the gate passes when its
lower bound is above -margin, i.e. after is at worst `margin` below before at 95% confidence
(the two-sided 95% interval, a one-sided test at 2.5%, as in the ICH E9 / FDA non-inferiority
guidance). Accuracy uses the paired normal interval of `reports.power` (Miller 2024); macro F1
uses the paired bootstrap of `reports.stats`. Runs must pair example by example
(`reports.comparison.pairing_problem`); otherwise the gate refuses with a UserError (exit 2).

Several AFTER runs (fine-tunes of one recipe that differ in the training seed) gate on the pooled
lower bound across seeds: the 95% interval of `harness.metrics.seed_stats.seed_gains` for the recipe's
expected accuracy change, which counts seed-to-seed and test-sampling variation (a t-interval over
seeds below 20 seeds). The gate passes when that lower bound is above -margin. Accuracy only.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.metrics import catalog as catalog
from harness.metrics.seed_stats import seed_gains
from harness.store.runs import write_atomic
from reports.comparison import compare
from reports.power import paired_difference
from reports.sources import load_runs


@dataclass(frozen=True)
class GateResult:
    """One gate decision: estimate of (after - before), its 95% lower bound, and the verdict."""

    metric: str
    before: str
    after: str
    n: int
    before_value: float
    after_value: float
    estimate: float
    lower: float
    upper: float
    margin: float
    passed: bool
    method: str
    seeds: int = 1  # AFTER runs pooled (one per training seed)


def check_metric(metric: str) -> None:
    """Refuse a metric the gate cannot test, naming the known ones and the nearest."""
    known = catalog.gated()
    if metric not in known:
        near = difflib.get_close_matches(metric, list(known), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UserError(f"--metric {metric!r} is not gated.{hint} Known: {', '.join(known)}")


def gate(before: str | Path, after: str | Path, *more: str | Path, metric: str = "accuracy",
         margin: float = 0.01) -> GateResult:
    """Paired non-inferiority of `after` (pooled with `more` seeds) against `before` on `metric`."""
    check_metric(metric)
    if not 0 <= margin < 1:
        raise UserError(f"--margin {margin}: give the largest acceptable drop as a fraction in [0, 1), e.g. 0.01")
    if more:
        return _pooled(before, [after, *more], metric, margin)
    base, other = load_runs([before, after])
    comp = compare(base, other)
    if comp.reason is not None or comp.other_pred is None:
        raise UserError(f"cannot gate {after} against {before}: {comp.reason}")
    if catalog.get(metric).gate == "paired normal":  # of per-example correctness: accuracy
        diff = paired_difference(base.correct, comp.other_pred == base.gold)
        estimate, low, high = diff.mean, diff.low, diff.high
    else:
        assert comp.bootstrap is not None  # set whenever the comparison is paired
        estimate, low, high = comp.bootstrap.difference, comp.bootstrap.low, comp.bootstrap.high
    return GateResult(metric, str(before), str(after), len(base.gold), float(base.metrics[metric]),
                      float(other.metrics[metric]), estimate, low, high, margin, low > -margin, catalog.gated()[metric])


def _pooled(before: str | Path, afters: list[str | Path], metric: str, margin: float) -> GateResult:
    """The gate on the pooled lower bound of several seeds' accuracy change."""
    if catalog.get(metric).gate != "paired normal":
        raise UserError(f"--metric {metric}: several AFTER runs gate on accuracy only; pass --metric accuracy or "
                        f"one AFTER run")
    if len({Path(a).resolve() for a in afters}) < len(afters):
        raise UserError("AFTER_RUN: a run folder repeats; give each seed's run once")
    runs = load_runs([before, *afters])
    base, correct = runs[0], []
    for other, path in zip(runs[1:], afters):
        comp = compare(base, other)
        if comp.reason is not None or comp.other_pred is None:
            raise UserError(f"cannot gate {path} against {before}: {comp.reason}")
        correct.append(comp.other_pred == base.gold)
    g = seed_gains(baseline=base.correct, finetuned=np.array(correct))
    return GateResult(metric, str(before), ", ".join(map(str, afters)), g.n, g.baseline,
                      float(np.mean(g.accuracies)), g.mean, g.low, g.high, margin, g.low > -margin,
                      f"pooled over {g.seeds} seeds: {g.method}", g.seeds)


def summary_line(r: GateResult) -> str:
    """The one line the gate prints.

    >>> r = GateResult("accuracy", "a", "b", 200, 0.86, 0.87, 0.01, -0.0438, 0.0638, 0.01, False, "paired")
    >>> summary_line(r)
    'gate accuracy: after - before = +0.0100 (n = 200), 95% lower bound -0.0438 vs -0.0100: FAIL (not shown non-inferior)'
    """
    verdict = "PASS (non-inferior)" if r.passed else "FAIL (not shown non-inferior)"
    pooled = f", mean of {r.seeds} seeds, pooled" if r.seeds > 1 else ""
    return (f"gate {r.metric}: after - before = {r.estimate:+.4f} (n = {r.n:,}{pooled}), 95% lower bound {r.lower:+.4f} "
            f"vs {-r.margin:+.4f}: {verdict}")


def write_result(r: GateResult, path: str | Path) -> Path:
    """Save the decision as JSON (the summary line included) and return the path."""
    target = Path(path)
    if target.parent and not target.parent.is_dir():
        raise UserError(f"--out {target}: folder {target.parent} does not exist; create it or choose another path")
    body = {**asdict(r), "verdict": "pass" if r.passed else "fail", "summary": summary_line(r),
            "rule": "pass when the lower bound of the two-sided 95% interval of (after - before) is above -margin"}
    write_atomic(target, json.dumps(body, indent=2) + "\n")
    return target
