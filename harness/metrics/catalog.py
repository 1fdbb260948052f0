"""The one metric catalog: for every metric a run records in results.json, its key, its label in
the report, which way is better, how its 95% interval is computed, the report's paired test of a
change, whether `tenser gate` may use it, and where the report shows it. harness and reports both
read it (numpy-free, no torch), and every list of metrics in the report derives from it, so a new
headline metric is its computation plus one row here (README, "Adding a metric"). The lists are
read when called, not at import, so a row added here reaches every table.

>>> [m.key for m in headline()]
['accuracy', 'precision_macro', 'recall_macro', 'f1_macro', 'loss']
>>> get("brier").better(-0.01), list(gated())
(True, ['accuracy', 'f1_macro'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BOOTSTRAP_RESAMPLES = 2000  # macro-score intervals, the paired macro-F1 bootstrap and its gate
BOOTSTRAP_SEED = 0  # fixed so the same predictions always give the same interval
REVIEWER_RESAMPLES = 1000  # the secondary metrics' bootstrap: each resample reweighs every example

Tier = Literal["headline", "secondary"]
Interval = Literal["wilson", "normal", "confusion bootstrap", "example bootstrap"]
# Each paired test and gate method measures one metric: McNemar and the paired normal interval compare
# per-example correctness (accuracy); the paired bootstrap redraws confusion counts for macro F1.
PairedTest = Literal["mcnemar", "macro-F1 bootstrap"]
GateMethod = Literal["paired normal", "paired bootstrap"]

INTERVALS: dict[Interval, str] = {
    "wilson": "Wilson score interval",
    "normal": "normal interval of the mean (±1.96 SE)",
    "confusion bootstrap": f"bootstrap of the confusion matrix, {BOOTSTRAP_RESAMPLES:,} multinomial resamples",
    "example bootstrap": f"bootstrap of examples, {REVIEWER_RESAMPLES:,} weighted resamples",
}
GATE_METHODS: dict[GateMethod, str] = {
    "paired normal": "paired normal interval (Miller 2024)",
    "paired bootstrap": f"paired bootstrap, {BOOTSTRAP_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}",
}


@dataclass(frozen=True)
class Metric:
    """One row of the catalog."""

    key: str  # the key under results.json "metrics" (and "ci95")
    label: str  # its name in the report's tables
    tier: Tier  # headline: the headline table and chart, required of every run; secondary: shown when recorded
    higher_is_better: bool = True
    interval: Interval = "confusion bootstrap"  # how harness computes its 95% interval
    paired_test: PairedTest | None = None  # the report's significance test of a change; None: change shown untested
    gate: GateMethod | None = None  # the interval `tenser gate --metric KEY` uses; None: not gated
    short: str = ""  # the headline chart's tick label, when shorter than `label`
    recalibration: bool = False  # also in the calibrated run's raw-versus-calibrated table
    digits: int = 3  # decimals in the tables

    def better(self, delta: float) -> bool:
        """Whether a change of `delta` (after - before) is an improvement."""
        return delta > 0 if self.higher_is_better else delta < 0


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "Accuracy", "headline", interval="wilson", paired_test="mcnemar", gate="paired normal",
           recalibration=True),
    Metric("precision_macro", "Precision (macro)", "headline", short="Precision"),
    Metric("recall_macro", "Recall (macro)", "headline", short="Recall"),
    Metric("f1_macro", "F1 (macro)", "headline", paired_test="macro-F1 bootstrap", gate="paired bootstrap", short="F1",
           recalibration=True),
    Metric("loss", "Loss", "headline", higher_is_better=False, interval="normal", recalibration=True),
    Metric("mcc", "Matthews correlation", "secondary", interval="example bootstrap"),
    Metric("kappa", "Cohen's kappa", "secondary", interval="example bootstrap"),
    Metric("balanced_accuracy", "Balanced accuracy", "secondary", interval="example bootstrap"),
    Metric("brier", "Brier score (lower is better)", "secondary", higher_is_better=False, interval="example bootstrap"),
    Metric("roc_auc", "ROC-AUC", "secondary", interval="example bootstrap"),
    Metric("pr_auc", "PR-AUC (average precision)", "secondary", interval="example bootstrap"),
    Metric("top2_accuracy", "Top-2 accuracy", "secondary", interval="example bootstrap"),
)


def get(key: str) -> Metric:
    """The catalog row of `key`."""
    rows = [m for m in METRICS if m.key == key]
    if len(rows) != 1:
        raise KeyError(f"metric {key!r} has {len(rows)} catalog rows; it needs exactly one")
    return rows[0]


def headline() -> tuple[Metric, ...]:
    """The headline metrics, in table order."""
    return tuple(m for m in METRICS if m.tier == "headline")


def secondary() -> tuple[Metric, ...]:
    """The secondary metrics, in table order."""
    return tuple(m for m in METRICS if m.tier == "secondary")


def gated() -> dict[str, str]:
    """The metrics `tenser gate` accepts, each with its interval method in words."""
    return {m.key: GATE_METHODS[m.gate] for m in METRICS if m.gate is not None}

