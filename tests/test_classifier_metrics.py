"""Tests for `harness.metrics.reviewer`: the reviewer metrics equal scikit-learn's on fixtures (binary
and three labels, with tied scores), the weighted bootstrap formulas equal scikit-learn's
`sample_weight`, intervals bracket the estimate, and compute_metrics records them."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn import metrics as skm

from harness.metrics import reviewer
from harness.metrics.classification import compute_metrics
from harness.metrics.reviewer import reviewer_metrics, weighted_metrics


def test_doctests_pass() -> None:
    result = doctest.testmod(reviewer)
    assert result.attempted > 0 and result.failed == 0


def _fixture(k: int, n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[gold]
    probs = np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2)  # rounding makes ties
    return gold, probs / probs.sum(1, keepdims=True)


def _sklearn(gold: np.ndarray, probs: np.ndarray, w: np.ndarray | None = None) -> dict[str, float]:
    k = probs.shape[1]
    pred = probs.argmax(1)
    out = {
        "mcc": skm.matthews_corrcoef(gold, pred, sample_weight=w),
        "kappa": skm.cohen_kappa_score(gold, pred, sample_weight=w),
        "balanced_accuracy": skm.balanced_accuracy_score(gold, pred, sample_weight=w),
        "brier": skm.brier_score_loss(gold, probs[:, 1] if k == 2 else probs, sample_weight=w, labels=list(range(k))),
    }
    if k == 2:
        out["roc_auc"] = skm.roc_auc_score(gold, probs[:, 1], sample_weight=w)
        out["pr_auc"] = skm.average_precision_score(gold, probs[:, 1], sample_weight=w)
    else:
        out["roc_auc"] = skm.roc_auc_score(gold, probs, multi_class="ovr", average="macro", sample_weight=w)
        out["pr_auc"] = skm.average_precision_score(np.eye(k)[gold], probs, average="macro", sample_weight=w)
        out["top2_accuracy"] = skm.top_k_accuracy_score(gold, probs, k=2, sample_weight=w)
    return out


@pytest.mark.parametrize("k", [2, 3])
def test_point_estimates_equal_scikit_learn(k: int) -> None:
    gold, probs = _fixture(k)
    got = reviewer_metrics(gold, probs, samples=50)
    expected = _sklearn(gold, probs)
    assert set(expected) == set(got) - {"ci95"}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("k", [2, 3])
def test_weighted_formulas_equal_scikit_learn_sample_weight(k: int) -> None:
    gold, probs = _fixture(k, seed=1)
    weights = np.random.default_rng(2).integers(0, 4, (3, len(gold))).astype(float)
    got = weighted_metrics(gold, probs, weights)
    for row, w in enumerate(weights):
        for key, value in _sklearn(gold, probs, w).items():
            assert got[key][row] == pytest.approx(value, abs=1e-9), (key, row)


def test_intervals_bracket_the_estimate_and_are_seeded() -> None:
    gold, probs = _fixture(2, n=400)
    a, b = reviewer_metrics(gold, probs, seed=3), reviewer_metrics(gold, probs, seed=3)
    assert a == b
    for key, (low, high) in a["ci95"].items():
        assert low <= a[key] <= high, key
        assert high - low < 0.2


def test_top2_only_with_more_than_two_labels() -> None:
    assert "top2_accuracy" not in reviewer_metrics(*_fixture(2), samples=10)
    assert "top2_accuracy" in reviewer_metrics(*_fixture(4), samples=10)


def test_a_label_never_seen_leaves_aucs_undefined() -> None:
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    m = reviewer_metrics(np.zeros(3, dtype=int), probs, samples=20)
    assert m["roc_auc"] is None and m["pr_auc"] is None and m["ci95"]["roc_auc"] is None
    assert m["brier"] == pytest.approx(np.mean(probs[:, 1] ** 2))


def test_compute_metrics_records_them_with_intervals() -> None:
    gold, probs = _fixture(2, n=120)
    m = compute_metrics(gold, probs, ("negative", "positive"))
    for key in ("mcc", "kappa", "balanced_accuracy", "brier", "roc_auc", "pr_auc"):
        assert isinstance(m[key], float) and len(m["ci95"][key]) == 2
    assert m["auc_averaging"] == "binary, positive label 'positive'"
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(gold, probs[:, 1]))
