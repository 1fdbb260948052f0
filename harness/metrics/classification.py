"""Classification metrics over a task's labels, from gold ids, predicted ids and probabilities.

Everything is derived from the confusion matrix (rows gold, columns predicted, task label
order), so the numbers equal scikit-learn's (`zero_division=0`). Intervals are 95%:
Wilson for accuracy, a normal interval for the mean loss, and a seeded bootstrap for the
macro scores. Resampling examples with replacement only changes the confusion counts, so
the bootstrap draws confusion matrices from a multinomial: exact, and cheap at any size.
The metrics reviewers add (MCC, kappa, balanced accuracy, Brier, ROC-AUC, PR-AUC, top-2)
come from `harness.metrics.reviewer`, which uses scikit-learn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.metrics.catalog import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from harness.metrics.reviewer import reviewer_metrics

Z95 = 1.959963984540054


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts with rows = gold label, columns = predicted label.

    >>> confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2).tolist()
    [[1, 1], [0, 2]]
    """
    return np.bincount(gold * n_labels + pred, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined), over the last two axes.

    >>> {k: v.round(3).tolist() for k, v in per_class(np.array([[1, 1], [0, 2]])).items()}
    {'precision': [1.0, 0.667], 'recall': [0.5, 1.0], 'f1': [0.667, 0.8], 'support': [2, 2]}
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    predicted, support = cm.sum(axis=-2), cm.sum(axis=-1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for a proportion.

    >>> [round(x, 4) for x in wilson_interval(77, 100)]
    [0.6785, 0.8416]
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def macro_f1(cm: np.ndarray) -> np.ndarray:
    """Macro F1 as 2·TP / (2·TP + FP + FN) per label, of one (K, K) matrix or a stack (..., K, K).

    Equal to the mean of `per_class` F1 up to rounding, and cheaper; the paired bootstrap and the
    gate use it. A label never seen nor predicted counts 0.

    >>> float(macro_f1(np.array([[1, 1], [0, 1]])))
    0.6666666666666666
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    denom = cm.sum(axis=-1) + cm.sum(axis=-2)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=-1)


def macro_bootstrap(cm: np.ndarray, *, seed: int = BOOTSTRAP_SEED,
                    samples: int = BOOTSTRAP_RESAMPLES) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of macro precision, recall and F1 by resampling examples."""
    n = int(cm.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cm.ravel() / n, size=samples).reshape(samples, *cm.shape)
    scores = per_class(draws)
    out = {}
    for key in ("precision", "recall", "f1"):
        lo, hi = np.percentile(scores[key].mean(axis=-1), [2.5, 97.5])
        out[f"{key}_macro"] = (float(lo), float(hi))
    return out


def compute_metrics(gold: np.ndarray, probs: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """All metrics for gold label ids and [n, n_labels] probabilities (prediction = argmax)."""
    gold = np.asarray(gold, dtype=int)
    probs = np.asarray(probs, dtype=float)
    pred = probs.argmax(axis=1)
    k, n = len(labels), len(gold)
    cm = confusion_matrix(gold, pred, k)
    pc = per_class(cm)
    losses = -np.log(np.clip(probs[np.arange(n), gold], 1e-12, None))
    loss, loss_se = float(losses.mean()), float(losses.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    correct = int(np.trace(cm))
    reviewer = reviewer_metrics(gold, probs)
    reviewer_ci = reviewer.pop("ci95")
    return {
        "n": n,
        "accuracy": correct / n,
        "precision_macro": float(pc["precision"].mean()),
        "recall_macro": float(pc["recall"].mean()),
        "f1_macro": float(pc["f1"].mean()),
        "loss": loss,
        "ci95": {
            "accuracy": list(wilson_interval(correct, n)),
            **{key: list(v) for key, v in macro_bootstrap(cm).items()},
            "loss": [loss - Z95 * loss_se, loss + Z95 * loss_se],
            **reviewer_ci,
        },
        **reviewer,
        "auc_averaging": "binary, positive label " + repr(labels[1]) if k == 2 else "one-vs-rest, macro average",
        "per_class": {
            name: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                   "f1": float(pc["f1"][i]), "support": int(pc["support"][i])}
            for i, name in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "pred_distribution": {name: float((pred == i).mean()) for i, name in enumerate(labels)},
    }
