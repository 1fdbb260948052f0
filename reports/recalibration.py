"""Calibrated zero-shot runs, before and after the correction. A run scored with
`-T calibration=contextual|pmi` records the metrics of its raw scores (`metrics_raw`) beside
the calibrated ones (`metrics`, the basis of its predictions), the label distribution that
drove the correction (`calibration`) and each example's raw probabilities (`raw_probs`).
This module lays them side by side: headline numbers with their intervals, the share of
examples predicted per label against the gold share, and the method in one sentence.
Nothing is re-scored; raw predictions are the argmax of the recorded `raw_probs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.metrics import catalog
from harness.store.runs import PREDICTIONS
from reports import formatting as fmt
from reports import prompt_charts
from reports.comparison import ALPHA
from reports.sources import LoadedRun
from reports.stats import McNemar, mcnemar

# method: (name, citation, what it does and why, in plain words)
METHODS = {
    "contextual": (
        "Contextual calibration", "Zhao et al. 2021, “Calibrate Before Use”",
        "a prompt alone pulls the model towards some label words, so content-free inputs (such as “N/A”) are "
        "scored through the same prompt and every example's label probabilities are divided by their mean "
        "distribution, then renormalised.",
    ),
    "pmi": (
        "PMI calibration", "Holtzman et al. 2021, “Surface Form Competition”",
        "a label word can be likely just because it is a common word, so each label word's probability after "
        "the domain prompt alone is divided out, scoring how much the review raises each word (pointwise mutual "
        "information), then renormalised.",
    ),
}


def is_calibrated(run: LoadedRun) -> bool:
    """Whether the run recorded a calibration (older and uncalibrated runs did not)."""
    cal = run.results.get("calibration")
    return isinstance(cal, dict) and cal.get("method") not in (None, "none")


def section(run: LoadedRun, header: dict[str, Any]) -> dict[str, Any]:
    """Everything the calibrated-scoring block shows for one calibrated run."""
    cal = run.results["calibration"]
    method = str(cal["method"])
    name, cite, why = METHODS.get(method, (f"Calibration “{method}”", "", "as recorded by the run."))
    raw = run.results.get("metrics_raw")
    raw_pred = raw_predictions(run)
    test = None if raw_pred is None else mcnemar(raw_pred == run.gold, run.correct)
    shares = label_shares(run, raw_pred)
    series = [("gold", "gold", shares.gold)] + ([("raw", "predicted, raw", shares.raw)] if shares.raw else [])
    series.append(("calibrated", "predicted, calibrated", shares.calibrated))
    return {
        "run": header,
        "name": name,
        "explanation": f"{name} ({cite}): {why}" if cite else f"{name}: {why}",
        "metrics": [_metric_row(m, raw, run.metrics, test) for m in catalog.METRICS if m.recalibration] if raw else [],
        "flips": _flips(test, len(run.predictions)),
        "bias": _bias(cal, run.labels),
        "shares": _share_rows(run.labels, shares, _bias_probs(cal)),
        "chart": prompt_charts.share_chart(list(run.labels), series, header["colour"]),
    }


def raw_predictions(run: LoadedRun) -> np.ndarray | None:
    """Label index of the highest recorded raw probability per example; None without `raw_probs`."""
    if not all(isinstance(p.get("raw_probs"), dict) for p in run.predictions):
        return None
    out = []
    for line, p in enumerate(run.predictions, 1):
        try:
            out.append(int(np.argmax([float(p["raw_probs"][label]) for label in run.labels])))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{run.path / PREDICTIONS}: line {line}: raw_probs must give a probability for each "
                            f"label ({', '.join(run.labels)}), got {p['raw_probs']!r}") from None
    return np.array(out, dtype=int)


@dataclass(frozen=True)
class Shares:
    """Share of examples per label, in label order; `raw` is None when neither recorded nor countable."""

    gold: list[float]
    raw: list[float] | None
    calibrated: list[float]


def label_shares(run: LoadedRun, raw_pred: np.ndarray | None) -> Shares:
    """Share of examples per label: gold, predicted from raw scores, predicted after calibration."""
    k, n = len(run.labels), len(run.predictions)
    raw = _recorded((run.results.get("metrics_raw") or {}).get("pred_distribution"), run.labels)
    if raw is None and raw_pred is not None:
        raw = (np.bincount(raw_pred, minlength=k) / n).tolist()
    calibrated = _recorded(run.metrics.get("pred_distribution"), run.labels)
    return Shares(gold=(np.bincount(run.gold, minlength=k) / n).tolist(), raw=raw,
                  calibrated=calibrated or (np.bincount(run.pred, minlength=k) / n).tolist())


def _recorded(dist: Any, labels: tuple[str, ...]) -> list[float] | None:
    """The recorded distribution in label order, or None when absent or incomplete."""
    if isinstance(dist, dict) and all(isinstance(dist.get(x), (int, float)) for x in labels):
        return [float(dist[x]) for x in labels]
    return None


def _metric_row(metric: catalog.Metric, raw: dict[str, Any], cal: dict[str, Any], test: McNemar | None) -> dict[str, Any]:
    key, digits = metric.key, metric.digits
    cells = [{"value": fmt.num(m[key], digits), "ci": fmt.interval((m.get("ci95") or {}).get(key), digits)}
             for m in (raw, cal)]
    delta = cal[key] - raw[key]
    change = {"value": fmt.signed(delta, digits), "tone": "flat", "test": ""}
    if metric.paired_test == "mcnemar" and test is not None:
        better = metric.better(delta)
        significant = test.p_value < ALPHA and abs(delta) >= 5e-4
        change["test"] = f"McNemar {'exact' if test.method == 'exact' else 'χ²'}, {fmt.p_value(test.p_value)}"
        change["tone"] = ("better" if better else "worse") if significant else "flat"
    return {"key": key, "name": metric.label, "raw": cells[0], "calibrated": cells[1], "change": change}


def _flips(test: McNemar | None, n: int) -> str:
    if test is None:
        return "Per-example raw probabilities (raw_probs) were not recorded, so changed predictions are not counted."
    return (f"On these {n:,} examples calibration turned {test.c:,} wrong predictions right and {test.b:,} right "
            f"predictions wrong (McNemar {'exact' if test.method == 'exact' else 'χ²'}, {fmt.p_value(test.p_value)}).")


def _bias_probs(cal: dict[str, Any]) -> dict[str, Any]:
    probs = cal.get("content_free_probs", cal.get("domain_probs"))
    return probs if isinstance(probs, dict) else {}


def _bias(cal: dict[str, Any], labels: tuple[str, ...]) -> dict[str, Any]:
    """What drove the correction: the content-free inputs or the domain prompt, and their distribution."""
    if cal.get("method") == "pmi":
        return {"what": "Domain prompt", "inputs": json.dumps(cal.get("domain_prompt", ""), ensure_ascii=False),
                "column": "Domain-prompt p", "each": []}
    inputs = cal.get("content_free") or []
    each = cal.get("content_free_each") or []
    rows = []
    if len(each) == len(inputs) and all(isinstance(r, list) and len(r) == len(labels) for r in each):
        rows = [(json.dumps(x, ensure_ascii=False), " · ".join(f"{label} {fmt.num(p, 2)}" for label, p in zip(labels, r)))
                for x, r in zip(inputs, each)]
    return {"what": "Content-free inputs", "inputs": fmt.value(inputs), "column": "Content-free mean p", "each": rows}


def _share_rows(labels: tuple[str, ...], shares: Shares, bias: dict[str, Any]) -> list[dict[str, str]]:
    return [{"label": label, "gold": fmt.percent(shares.gold[i]),
             "raw": fmt.DASH if shares.raw is None else fmt.percent(shares.raw[i]),
             "calibrated": fmt.percent(shares.calibrated[i]),
             "bias": fmt.percent(bias[label]) if isinstance(bias.get(label), (int, float)) else fmt.DASH}
            for i, label in enumerate(labels)]


def findings(run: LoadedRun) -> list[str]:
    """One sentence on what calibration did to the run's numbers and its predicted labels."""
    raw = run.results.get("metrics_raw")
    if not raw:
        return []
    name = METHODS.get(str(run.results["calibration"]["method"]), ("Calibration",))[0]
    m = run.metrics
    shares = label_shares(run, raw_predictions(run))
    text = (f"{run.role} ({run.name}): {name} moved accuracy {fmt.num(raw['accuracy'])} → "
            f"{fmt.num(m['accuracy'])} ({fmt.signed(m['accuracy'] - raw['accuracy'])}) and macro F1 "
            f"{fmt.num(raw['f1_macro'])} → {fmt.num(m['f1_macro'])} ({fmt.signed(m['f1_macro'] - raw['f1_macro'])}).")
    if shares.raw is not None:
        top = int(np.argmax(shares.raw))
        text += (f" Before it {fmt.percent(shares.raw[top], 0)} of predictions were “{run.labels[top]}” "
                 f"(gold share {fmt.percent(shares.gold[top], 0)}); after it {fmt.percent(shares.calibrated[top], 0)}.")
    return [text]
