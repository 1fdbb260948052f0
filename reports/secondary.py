"""The secondary metrics table and the ROC and precision-recall curves. The table shows what
each run recorded in results.json (MCC, kappa, balanced accuracy, Brier, ROC-AUC, PR-AUC,
top-2 accuracy, with their 95% intervals); a run written before these existed shows a dash.
The curves are drawn from the probabilities in predictions.jsonl with scikit-learn: the
positive (second) label for two labels, and the macro average of one-vs-rest curves
(interpolated on a common grid) for more.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.metrics import catalog
from reports import formatting as fmt
from reports.charts import colour, encode, figure
from reports.sources import LoadedRun

GRID = np.linspace(0, 1, 201)


def rows(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """One row per secondary metric some run recorded, a value and interval cell per run."""
    out = []
    for m in catalog.secondary():
        if not any(m.key in r.metrics for r in runs):
            continue
        cells = [{"value": fmt.num(r.metrics.get(m.key), m.digits),
                  "ci": fmt.interval((r.metrics.get("ci95") or {}).get(m.key), m.digits)} for r in runs]
        out.append({"key": m.key, "name": m.label, "cells": cells})
    return out + extra_rows(runs)


def extra_rows(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """One row per number an `evaluate` module recorded (results.json `extra_metrics`), no interval."""
    seen: dict[tuple[str, str], None] = {}
    for r in runs:
        for module, values in (r.results.get("extra_metrics") or {}).items():
            seen.update({(module, k): None for k, v in values.items() if isinstance(v, (int, float))})
    return [{"key": f"{module}:{k}", "name": f"{k} (evaluate: {module})",
             "cells": [{"value": fmt.num(((r.results.get("extra_metrics") or {}).get(module) or {}).get(k)),
                        "ci": fmt.interval(None)} for r in runs]} for module, k in seen]


def averaging(runs: list[LoadedRun]) -> str:
    """How the AUCs were averaged, as the runs recorded it."""
    recorded = {str(r.metrics["auc_averaging"]) for r in runs if "auc_averaging" in r.metrics}
    return "; ".join(sorted(recorded))


def probabilities(run: LoadedRun) -> np.ndarray:
    """The recorded probabilities as an (n, labels) array in task label order."""
    return np.array([[float(p["probs"].get(label, 0.0)) for label in run.labels] for p in run.predictions])


def curves(run: LoadedRun) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(grid, mean TPR over FPR grid, mean precision over recall grid); None when a label never occurs."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    probs = probabilities(run)
    columns = [1] if len(run.labels) == 2 else list(range(len(run.labels)))
    tprs, precisions = [], []
    for j in columns:
        y = run.gold == j
        if y.all() or not y.any():
            return None
        fpr, tpr, _ = roc_curve(y, probs[:, j])
        tprs.append(np.interp(GRID, fpr, tpr))
        precision, recall, _ = precision_recall_curve(y, probs[:, j])
        precisions.append(np.interp(GRID, recall[::-1], precision[::-1]))
    return GRID, np.mean(tprs, axis=0), np.mean(precisions, axis=0)


def curves_chart(runs: list[LoadedRun]) -> str | None:
    """ROC (left) and precision-recall (right) curves, one colour per run; None when no run has both labels."""
    drawn = [(i, run, c) for i, run in enumerate(runs) if (c := curves(run)) is not None]
    if not drawn:
        return None
    with figure(10, 3.6) as fig:
        roc_ax, pr_ax = fig.subplots(1, 2)
        roc_ax.plot([0, 1], [0, 1], color="#BBBBBB", lw=1, ls="--")
        for i, run, (grid, tpr, precision) in drawn:
            auc, ap = run.metrics.get("roc_auc"), run.metrics.get("pr_auc")
            roc_ax.plot(grid, tpr, color=colour(i), lw=1.6, label=f"{run.role} · AUC {fmt.num(auc)}")
            pr_ax.plot(grid, precision, color=colour(i), lw=1.6, label=f"{run.role} · AP {fmt.num(ap)}")
        roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
        pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        roc_ax.set_title("ROC curve", loc="left")
        pr_ax.set_title("Precision-recall curve", loc="left")
        roc_ax.legend(loc="lower right")
        pr_ax.legend(loc="lower left")
        return encode(fig)
