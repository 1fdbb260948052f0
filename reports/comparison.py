"""Comparing each run with the baseline: pairing examples by `id`, the paired tests
(McNemar on accuracy, bootstrap on macro F1), the headline table rows (one per headline
metric of `harness.metric_catalog`) and the key findings written in plain words. Paired
statistics need the same set of ids, the same labels, the same examples behind the ids
(`reports.identity`: the same data, or the same text per id) and the same gold label per id;
otherwise `Comparison.reason` says why they were not computed and the page shows the runs
side by side without tests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import metric_catalog as catalog
from harness.metric_catalog import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from reports import formatting as fmt
from reports.identity import data_problem
from reports.sources import Run
from reports.stats import Bootstrap, McNemar, mcnemar, paired_bootstrap_f1

ALPHA = 0.05
NO_CHANGE = {"value": "", "tone": "flat", "test": "", "verdict": "", "significant": None}


@dataclass(frozen=True, eq=False)
class Comparison:
    """One run against the baseline; `other_pred` is in baseline order and label indices."""

    base: Run
    other: Run
    reason: str | None  # why paired statistics were not computed; None when paired
    other_pred: np.ndarray | None = None
    order: np.ndarray | None = None  # other's row for each baseline example
    mcnemar: McNemar | None = None
    bootstrap: Bootstrap | None = None

    @property
    def paired(self) -> bool:
        return self.reason is None


def compare(base: Run, other: Run, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Comparison:
    """Pair `other` with `base` by id and run the paired tests when the pairing holds."""
    reason = pairing_problem(base, other)
    if reason:
        return Comparison(base, other, reason)
    row = {i: k for k, i in enumerate(other.ids)}
    order = np.array([row[i] for i in base.ids], dtype=int)
    to_base = np.array([base.labels.index(label) for label in other.labels], dtype=int)
    other_pred = to_base[other.pred[order]]
    other_correct = other_pred == base.gold
    test = mcnemar(base.correct, other_correct)
    boot = paired_bootstrap_f1(base.gold, base.pred, other_pred, len(base.labels), resamples=resamples, seed=seed)
    return Comparison(base, other, None, other_pred, order, test, boot)


def pairing_problem(base: Run, other: Run) -> str | None:
    """Why two runs cannot be paired example by example, or None when they can."""
    if set(base.labels) != set(other.labels):
        return f"the runs use different labels ({', '.join(base.labels)} versus {', '.join(other.labels)})"
    for run in (base, other):
        dupes = [i for i, n in Counter(run.ids).items() if n > 1]
        if dupes:
            return f"{run.role} repeats example ids (e.g. {dupes[0]!r}), so examples cannot be matched"
    different_data = data_problem(base, other)
    if different_data:
        return different_data
    base_ids, other_ids = set(base.ids), set(other.ids)
    if base_ids != other_ids:
        shared = len(base_ids & other_ids)
        return (
            f"the runs scored different examples ({len(base_ids - other_ids):,} ids only in {base.role}, "
            f"{len(other_ids - base_ids):,} only in {other.role}, {shared:,} shared); "
            "paired tests need the same set of ids"
        )
    gold = dict(zip(other.ids, (other.labels[g] for g in other.gold)))
    differ = sum(gold[i] != base.labels[g] for i, g in zip(base.ids, base.gold))
    if differ:
        return f"the gold label differs on {differ:,} shared ids, so the runs did not read the same data"
    return None


def headline_rows(runs: list[Run], comparisons: list[Comparison]) -> list[dict[str, Any]]:
    """Rows of the headline table: one value cell per run, one change cell per comparison."""
    rows = [_metric_row(m, runs, comparisons) for m in catalog.headline()]
    examples = [{"value": fmt.count(int(r.metrics.get("n", len(r.predictions)))), "ci": ""} for r in runs]
    rows.append({"key": "n", "name": "Examples", "cells": examples, "changes": [dict(NO_CHANGE) for _ in comparisons]})
    return rows


def _metric_row(m: catalog.Metric, runs: list[Run], comparisons: list[Comparison]) -> dict[str, Any]:
    ci95 = [r.metrics.get("ci95", {}).get(m.key) for r in runs]
    cells = [{"value": fmt.num(r.metrics[m.key], m.digits), "ci": fmt.interval(ci, m.digits)} for r, ci in zip(runs, ci95)]
    return {"key": m.key, "name": m.label, "cells": cells, "changes": [_change(m, c) for c in comparisons]}


def _change(m: catalog.Metric, comp: Comparison) -> dict[str, Any]:
    delta = comp.other.metrics[m.key] - comp.base.metrics[m.key]
    tone = "flat" if abs(delta) < 5e-4 else ("better" if m.better(delta) else "worse")
    # Colour is kept for changes a test calls significant; untested changes stay neutral.
    cell = {"value": fmt.signed(delta, m.digits), "tone": "flat", "test": "", "verdict": "", "significant": None}
    if m.paired_test is None:
        return cell
    if not comp.paired:
        return {**cell, "test": "not tested: different examples"}
    significant, test = _accuracy_test(comp) if m.paired_test == "mcnemar" else _f1_test(comp)  # macro-F1 bootstrap
    verdict = "significant at 5%" if significant else "not significant at 5%"
    return {**cell, "tone": tone if significant else "flat", "test": test, "verdict": verdict, "significant": significant}


def _accuracy_test(comp: Comparison) -> tuple[bool, str]:
    t = comp.mcnemar
    assert t is not None  # set whenever the comparison is paired
    return t.p_value < ALPHA, f"McNemar {'exact' if t.method == 'exact' else 'χ²'}, {fmt.p_value(t.p_value)}"


def _f1_test(comp: Comparison) -> tuple[bool, str]:
    b = comp.bootstrap
    assert b is not None  # set whenever the comparison is paired
    return not (b.low <= 0 <= b.high), f"bootstrap 95% CI {fmt.interval((b.low, b.high), sign=True)}"


def findings(runs: list[Run], comparisons: list[Comparison]) -> list[str]:
    """The key results as sentences, one or two per comparison."""
    if len(runs) == 1:
        m = runs[0].metrics
        return [
            f"Accuracy {fmt.num(m['accuracy'])} {fmt.interval(m.get('ci95', {}).get('accuracy'))} and macro F1 "
            f"{fmt.num(m['f1_macro'])} on {len(runs[0].predictions):,} examples (95% intervals from the run)."
        ]
    return [sentence for comp in comparisons for sentence in _comparison_findings(comp)]


def _comparison_findings(comp: Comparison) -> list[str]:
    a, b = comp.base, comp.other
    acc = f"{fmt.num(a.metrics['accuracy'])} → {fmt.num(b.metrics['accuracy'])}"
    f1 = f"{fmt.num(a.metrics['f1_macro'])} → {fmt.num(b.metrics['f1_macro'])}"
    d_acc = fmt.signed(b.metrics["accuracy"] - a.metrics["accuracy"])
    d_f1 = fmt.signed(b.metrics["f1_macro"] - a.metrics["f1_macro"])
    if not comp.paired:
        return [
            f"{b.role} versus {a.role}: accuracy {acc} ({d_acc}), macro F1 {f1} ({d_f1}). "
            "Paired statistics not computed (see the note above); these differences are descriptive only."
        ]
    t, boot = comp.mcnemar, comp.bootstrap
    assert t is not None and boot is not None
    method = "exact binomial" if t.method == "exact" else "chi-square, continuity-corrected"
    acc_word = _verdict(t.p_value < ALPHA)
    f1_word = _verdict(not (boot.low <= 0 <= boot.high))
    return [
        f"{b.role} versus {a.role}, accuracy {acc} ({d_acc}): of the same {len(a.predictions):,} examples, "
        f"{t.c:,} went from wrong to right and {t.b:,} from right to wrong; McNemar's test ({method}) gives "
        f"{fmt.p_value(t.p_value)}, so the change is {acc_word}.",
        f"{b.role} versus {a.role}, macro F1 {f1} ({d_f1}): the 95% paired bootstrap interval "
        f"{fmt.interval((boot.low, boot.high), sign=True)} ({boot.resamples:,} resamples) "
        f"{'excludes' if f1_word.startswith('sig') else 'includes'} zero, so the change is {f1_word}.",
    ]


def _verdict(significant: bool) -> str:
    return "significant at the 5% level" if significant else "not significant at the 5% level"
