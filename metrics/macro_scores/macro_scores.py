"""Macro scores: accuracy, macro precision/recall/F1 and Matthews correlation, as an `evaluate` module.

A worked example of a local Hugging Face `evaluate` module for Tenser: name its folder in a task's
`metrics` field or with `tenser run -T metrics=metrics/macro_scores`, and Tenser computes it from
the run's recorded predictions (label ids in the task's label order). It is plain numpy, written
independently of Tenser's scikit-learn metrics, so the test suite can check one against the other.
Copy this folder to write your own: `_info` describes the inputs, `_compute` returns a dict of numbers.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy, macro-averaged precision, recall and F1, and the Matthews correlation coefficient."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): gold label ids.
Returns:
    accuracy, precision_macro, recall_macro, f1_macro, mcc (floats; 0 where undefined).
Examples:
    >>> metric = evaluate.load("metrics/macro_scores")  # doctest: +SKIP
    >>> metric.compute(predictions=[0, 1, 1, 1], references=[0, 0, 1, 1])["f1_macro"]  # doctest: +SKIP
    0.7333333333333334
"""


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroScores(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):  # type: ignore[no-untyped-def]
        pred, gold = np.asarray(predictions), np.asarray(references)
        k = int(max(pred.max(), gold.max())) + 1
        cm = np.zeros((k, k))
        np.add.at(cm, (gold, pred), 1)
        tp, predicted, support = np.diag(cm), cm.sum(0), cm.sum(1)
        precision, recall = _divide(tp, predicted), _divide(tp, support)
        f1 = _divide(2 * precision * recall, precision + recall)
        n, correct = cm.sum(), tp.sum()
        cov = correct * n - predicted @ support  # Gorodkin's multiclass MCC
        denom = np.sqrt((n * n - predicted @ predicted) * (n * n - support @ support))
        return {"accuracy": float(correct / n), "precision_macro": float(precision.mean()),
                "recall_macro": float(recall.mean()), "f1_macro": float(f1.mean()),
                "mcc": float(cov / denom) if denom > 0 else 0.0}
