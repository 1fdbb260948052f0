"""The classifier metrics reviewers ask for beyond accuracy and F1: Matthews correlation,
Cohen's kappa, balanced accuracy, Brier score, ROC-AUC and PR-AUC (binary: the task's second
label is the positive one; more labels: one-vs-rest, macro-averaged), and top-2 accuracy when
there are more than two labels. Point estimates are scikit-learn's. 95% intervals come from a
seeded bootstrap of examples: each resample is a vector of multinomial example weights, and
the metrics of a weighted sample are computed in numpy for the whole stack of resamples at
once (the weighted formulas equal scikit-learn's with `sample_weight`, which the tests check).
An undefined value (a label never seen, so no ROC curve) is recorded as None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.metrics.catalog import REVIEWER_RESAMPLES

CELL_BUDGET = 2_000_000  # resamples x examples held in memory at once


def reviewer_metrics(gold: np.ndarray, probs: np.ndarray, *, seed: int = 0, samples: int = REVIEWER_RESAMPLES) -> dict[str, Any]:
    """Point estimates (scikit-learn) and bootstrap 95% intervals, keyed like results.json's metrics."""
    gold, probs = np.asarray(gold, dtype=int), np.asarray(probs, dtype=float)
    point = _point(gold, probs)
    draws = _bootstrap(gold, probs, seed=seed, samples=samples)
    ci95 = {}
    for key, values in draws.items():
        finite = values[np.isfinite(values)]
        ci95[key] = None if point[key] is None or len(finite) == 0 else [float(x) for x in np.percentile(finite, [2.5, 97.5])]
    return {**point, "ci95": ci95}


def _point(gold: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    from sklearn import metrics as skm

    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    onehot = np.eye(k)[gold]
    present = [j for j in range(k) if 0 < onehot[:, j].sum() < len(gold)]
    out: dict[str, float | None] = {
        "mcc": float(skm.matthews_corrcoef(gold, pred)),
        "kappa": _finite(skm.cohen_kappa_score(gold, pred, labels=list(range(k)))),
        "balanced_accuracy": _balanced(gold, pred, k),
        "brier": float(np.mean(((probs - onehot) ** 2).sum(axis=1) / (2 if k == 2 else 1))),
        "roc_auc": None,
        "pr_auc": None,
    }
    if k == 2 and len(present) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(gold, probs[:, 1]))
        out["pr_auc"] = float(skm.average_precision_score(gold == 1, probs[:, 1]))
    elif k > 2 and len(present) == k:
        out["roc_auc"] = float(skm.roc_auc_score(gold, probs, multi_class="ovr",
                                                 average="macro", labels=list(range(k))))
        out["pr_auc"] = float(skm.average_precision_score(onehot, probs, average="macro"))
    if k > 2:
        out["top2_accuracy"] = float(skm.top_k_accuracy_score(gold, probs, k=2, labels=list(range(k))))
    return out


def _balanced(gold: np.ndarray, pred: np.ndarray, k: int) -> float:
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():  # a label predicted but never gold: scikit-learn warns, then ignores it
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(gold, pred))


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _bootstrap(gold: np.ndarray, probs: np.ndarray, *, seed: int, samples: int) -> dict[str, np.ndarray]:
    """Every metric over `samples` weighted resamples, drawn in chunks that fit CELL_BUDGET."""
    n, k = probs.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, CELL_BUDGET // max(n, 1))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, samples, chunk):
        weights = rng.multinomial(n, np.full(n, 1 / n), size=min(chunk, samples - start)).astype(float)
        parts.append(weighted_metrics(gold, probs, weights))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def weighted_metrics(gold: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric for every row of `weights` (resamples x examples), as scikit-learn's `sample_weight` would."""
    n, k = probs.shape
    pred = probs.argmax(axis=1)
    cells = np.zeros((n, k * k))
    cells[np.arange(n), gold * k + pred] = 1
    cm = (weights @ cells).reshape(-1, k, k)
    onehot = np.eye(k)[gold]
    brier = ((probs - onehot) ** 2).sum(axis=1) / (2 if k == 2 else 1)
    out = {**confusion_metrics(cm), "brier": weights @ brier / weights.sum(axis=1)}
    columns = [1] if k == 2 else list(range(k))
    curves = [ranking_metrics(onehot[:, j], probs[:, j], weights) for j in columns]
    out["roc_auc"] = np.mean([c[0] for c in curves], axis=0)
    out["pr_auc"] = np.mean([c[1] for c in curves], axis=0)
    if k > 2:
        top2 = np.argsort(probs, axis=1, kind="mergesort")[:, ::-1][:, :2]  # ties broken as scikit-learn does
        out["top2_accuracy"] = weights @ (top2 == gold[:, None]).any(axis=1) / weights.sum(axis=1)
    return out


def confusion_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """MCC (Gorodkin 2004, scikit-learn's multiclass form), kappa and balanced accuracy of (..., K, K) counts.

    >>> m = confusion_metrics(np.array([[[2.0, 1.0], [0.0, 1.0]]]))  # tn 2, fp 1, fn 0, tp 1
    >>> [round(float(m[key][0]), 4) for key in ("mcc", "kappa", "balanced_accuracy")]
    [0.5774, 0.5, 0.8333]
    """
    s = cm.sum(axis=(-2, -1))
    c = np.trace(cm, axis1=-2, axis2=-1)
    t, p = cm.sum(axis=-1), cm.sum(axis=-2)
    tp_ = (t * p).sum(axis=-1)
    denom = np.sqrt((s**2 - (p * p).sum(axis=-1)) * (s**2 - (t * t).sum(axis=-1)))
    mcc = np.divide(c * s - tp_, denom, out=np.zeros_like(denom), where=denom > 0)
    expected = tp_ / s**2
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (c / s - expected) / (1 - expected)
        recall = np.diagonal(cm, axis1=-2, axis2=-1) / t
    balanced = np.nanmean(np.where(t > 0, recall, np.nan), axis=-1)
    return {"mcc": mcc, "kappa": kappa, "balanced_accuracy": balanced}


def ranking_metrics(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ROC-AUC and average precision of one positive class, per row of `weights`; NaN where undefined.

    Examples are sorted once by score; tied scores form one threshold, as in scikit-learn's curves.

    >>> roc, ap = ranking_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), np.ones((1, 4)))
    >>> float(roc[0]), round(float(ap[0]), 4)
    (0.75, 0.8333)
    """
    order = np.argsort(-score, kind="stable")
    s, pos = score[order], y[order].astype(float)
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    w = weights[:, order]
    tps = np.cumsum(w * pos, axis=1)[:, ends]
    fps = np.cumsum(w * (1 - pos), axis=1)[:, ends]
    tps, fps = np.c_[np.zeros(len(w)), tps], np.c_[np.zeros(len(w)), fps]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr, fpr = tps / tps[:, -1:], fps / fps[:, -1:]
        roc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
        precision = tps[:, 1:] / (tps[:, 1:] + fps[:, 1:])
        ap = np.sum(np.diff(tpr, axis=1) * np.nan_to_num(precision), axis=1)
    undefined = (tps[:, -1] == 0) | (fps[:, -1] == 0)
    return np.where(undefined, np.nan, roc), np.where(tps[:, -1] == 0, np.nan, ap)
