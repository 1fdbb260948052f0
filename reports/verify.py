"""A run folder must agree with itself before the report or the gate believes it: each
prediction's probabilities are finite, between 0 and 1, one per task label and sum to 1, its
`pred` is the most probable label, predictions.jsonl holds as many records as results.json
counts, and the headline metrics recomputed from the predictions equal the recorded ones
(`metrics_raw` too, from `raw_probs`, for calibrated runs). An edited, truncated or damaged
folder is refused with one line naming the file and the mismatch, instead of a report that
contradicts itself or a traceback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.metrics import confusion_matrix, per_class
from harness.runs import RESULTS

SUM_TOLERANCE = 1e-3  # probabilities are stored from float32 softmaxes, a rounding off 0, 1 or a sum of 1
METRIC_TOLERANCE = 1e-6  # recorded metrics are computed from these very records, in float64
REDO = "re-run the evaluation"


def check_record(p: dict[str, Any], labels: tuple[str, ...], where: str) -> None:
    """One prediction's `probs` (and `raw_probs` when recorded) are a distribution and `pred` its top label."""
    for key in ("probs", "raw_probs"):
        if key == "probs" or isinstance(p.get(key), dict):
            check_distribution(p[key], labels, f"{where}: {key}")
    probs = p["probs"]
    if probs[p["pred"]] < max(probs.values()) - 1e-9:
        top = max(probs, key=probs.__getitem__)
        raise UserError(f"{where}: pred {p['pred']!r} is not the most probable label ({top!r} is, "
                        f"{probs[top]:.4g} > {probs[p['pred']]:.4g}); the file was edited, {REDO}")


def check_distribution(probs: dict[str, Any], labels: tuple[str, ...], where: str) -> None:
    """`probs` gives each task label a finite probability in [0, 1], and they sum to 1."""
    if sorted(probs) != sorted(labels):
        raise UserError(f"{where} must give a probability for each task label ({', '.join(labels)}), "
                        f"got {', '.join(map(str, probs))}; {REDO}")
    values = list(probs.values())
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise UserError(f"{where} holds a value that is not a finite number ({probs!r:.120}); {REDO}")
    if not all(-SUM_TOLERANCE <= v <= 1 + SUM_TOLERANCE for v in values):
        raise UserError(f"{where} must hold probabilities between 0 and 1, got {probs!r:.120}; {REDO}")
    if abs(sum(values) - 1) > SUM_TOLERANCE:
        raise UserError(f"{where} must sum to 1, but they sum to {sum(values):.4g}; {REDO}")


def check_metrics(path: Path, results: dict[str, Any], predictions: list[dict[str, Any]],
                  labels: tuple[str, ...], gold: np.ndarray) -> None:
    """predictions.jsonl (at `path`) and results.json agree: the count, and the headline metrics recomputed."""
    n = results["metrics"].get("n")
    if isinstance(n, int) and n != len(predictions):
        raise UserError(f"{path}: holds {len(predictions):,} predictions but {RESULTS} records n = {n:,}; "
                        f"the folder is truncated or was edited, {REDO}")
    raw = isinstance(results.get("metrics_raw"), dict)
    sections = [("metrics", "probs")] + ([("metrics_raw", "raw_probs")] if raw else [])
    for section, key in sections:
        if key == "raw_probs" and not all(isinstance(p.get(key), dict) for p in predictions):
            continue  # the calibration section says raw_probs are missing
        probs = np.array([[float(p[key][x]) for x in labels] for p in predictions])
        recorded = results[section]
        for name, value in recompute(gold, probs).items():
            stored = recorded.get(name)
            if isinstance(stored, (int, float)) and not abs(float(stored) - value) <= METRIC_TOLERANCE:
                raise UserError(f"{path}: {key} give {section}.{name} {value:.4f} but {RESULTS} records "
                                f"{float(stored):.4f}; one of the two files was edited, {REDO}")


def recompute(gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The headline metrics of gold label ids and [n, labels] probabilities, as harness records them."""
    pred = probs.argmax(axis=1)
    scores = per_class(confusion_matrix(gold, pred, probs.shape[1]))
    losses = -np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, None))
    return {"accuracy": float(np.mean(pred == gold)), "precision_macro": float(scores["precision"].mean()),
            "recall_macro": float(scores["recall"].mean()), "f1_macro": float(scores["f1"].mean()),
            "loss": float(losses.mean())}
