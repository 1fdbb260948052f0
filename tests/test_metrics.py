"""harness.metrics.classification: every number equals scikit-learn / scipy on random predictions, including
classes that are never predicted; intervals are deterministic and sensible."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import sklearn.metrics as skm
from scipy.stats import binomtest, sem

from harness.metrics import classification
from harness.metrics.classification import (
    Z95,
    compute_metrics,
    confusion_matrix,
    macro_bootstrap,
    macro_f1,
    per_class,
    wilson_interval,
)


def _random_case(seed: int, n: int, k: int, never: int | None = None):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, size=n)
    probs = rng.dirichlet(np.ones(k), size=n)
    if never is not None:  # this class is never the argmax
        probs[:, never] *= 1e-3
        probs /= probs.sum(axis=1, keepdims=True)
    return gold, probs


def test_doctests_pass():
    result = doctest.testmod(classification)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize(
    ("seed", "n", "k", "never"),
    [(0, 200, 2, None), (1, 57, 2, 1), (2, 300, 3, 2), (3, 40, 4, 0), (4, 9, 3, 1), (5, 1000, 5, None)],
)
def test_compute_metrics_equals_scikit_learn(seed, n, k, never):
    gold, probs = _random_case(seed, n, k, never)
    labels = tuple(f"c{i}" for i in range(k))
    pred = probs.argmax(axis=1)
    if never is not None:
        assert never not in pred
    m = compute_metrics(gold, probs, labels)
    ids = list(range(k))
    assert m["n"] == n
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(gold, pred))
    p, r, f, _ = skm.precision_recall_fscore_support(gold, pred, labels=ids, average="macro", zero_division=0)
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx((p, r, f))
    p, r, f, s = skm.precision_recall_fscore_support(gold, pred, labels=ids, average=None, zero_division=0)
    for i, name in enumerate(labels):
        pc = m["per_class"][name]
        assert (pc["precision"], pc["recall"], pc["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert pc["support"] == s[i]
    assert m["confusion_matrix"] == skm.confusion_matrix(gold, pred, labels=ids).tolist()
    assert m["loss"] == pytest.approx(skm.log_loss(gold, probs, labels=ids))
    assert m["pred_distribution"] == pytest.approx({name: float(np.mean(pred == i)) for i, name in enumerate(labels)})
    if never is not None:
        assert m["per_class"][labels[never]]["precision"] == 0.0 and m["pred_distribution"][labels[never]] == 0.0


def test_confusion_matrix_rows_gold_columns_pred_with_unseen_labels():
    gold, pred = np.array([0, 0, 1, 2]), np.array([1, 1, 1, 0])
    cm = confusion_matrix(gold, pred, 4)
    assert cm.tolist() == skm.confusion_matrix(gold, pred, labels=[0, 1, 2, 3]).tolist()
    assert cm.shape == (4, 4) and cm[3].sum() == 0 and cm[:, 3].sum() == 0


def test_per_class_is_zero_where_undefined():
    pc = per_class(np.array([[3, 0], [2, 0]]))  # class 1 never predicted and never right
    assert pc["precision"].tolist() == [0.6, 0.0] and pc["recall"].tolist() == [1.0, 0.0]
    assert pc["f1"][1] == 0.0 and pc["support"].tolist() == [3, 2]


def test_macro_f1_hand_case_and_equal_to_per_class_mean():
    # gold 0 0 1 1, pred 0 1 1 1: F1(0) = 2*1/(2+1) = 2/3, F1(1) = 2*2/(2+3) = 4/5, macro = 11/15
    assert float(macro_f1(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))) == pytest.approx(11 / 15)
    stack = np.random.default_rng(0).multinomial(40, np.full(9, 1 / 9), size=200).reshape(200, 3, 3)
    stack[0] = [[5, 0, 0], [3, 0, 0], [0, 0, 0]]  # a label never predicted, one never seen nor predicted
    np.testing.assert_allclose(macro_f1(stack), per_class(stack)["f1"].mean(axis=-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (1, 1), (77, 100), (3, 7), (500, 1000), (999, 1000), (0, 1)])
def test_wilson_interval_equals_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_interval_of_nothing_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_accuracy_and_loss_intervals():
    gold, probs = _random_case(7, 120, 2)
    m = compute_metrics(gold, probs, ("a", "b"))
    correct = int((probs.argmax(1) == gold).sum())
    ci = binomtest(correct, 120).proportion_ci(method="wilson")
    assert m["ci95"]["accuracy"] == pytest.approx([ci.low, ci.high])
    losses = -np.log(probs[np.arange(120), gold])
    half = Z95 * sem(losses)
    assert m["ci95"]["loss"] == pytest.approx([losses.mean() - half, losses.mean() + half])
    single = compute_metrics(gold[:1], probs[:1], ("a", "b"))
    assert single["ci95"]["loss"][0] == single["ci95"]["loss"][1] == pytest.approx(single["loss"])
    assert math.isfinite(compute_metrics(np.array([0]), np.array([[0.0, 1.0]]), ("a", "b"))["loss"])


def test_macro_bootstrap_is_seeded_and_brackets_the_estimate():
    gold, probs = _random_case(8, 400, 3)
    cm = confusion_matrix(gold, probs.argmax(1), 3)
    first, again = macro_bootstrap(cm, seed=0), macro_bootstrap(cm, seed=0)
    assert first == again and macro_bootstrap(cm, seed=1) != first
    point = {f"{k}_macro": float(v.mean()) for k, v in per_class(cm).items() if k != "support"}
    for key, (lo, hi) in first.items():
        assert 0.0 <= lo < point[key] < hi <= 1.0
        assert hi - lo < 0.25
    perfect = macro_bootstrap(np.diag([30, 20]))
    assert all(v == (1.0, 1.0) for v in perfect.values())
    m = compute_metrics(gold, probs, ("a", "b", "c"))
    assert {k: tuple(v) for k, v in m["ci95"].items() if k.endswith("_macro")} == first


def test_metrics_are_json_plain():
    import json

    gold, probs = _random_case(9, 20, 2)
    m = compute_metrics(gold, probs, ["neg", "pos"])
    assert json.loads(json.dumps(m)) == m
    assert set(m) >= {"n", "accuracy", "precision_macro", "recall_macro", "f1_macro", "loss", "ci95", "per_class",
                      "confusion_matrix", "pred_distribution"}
