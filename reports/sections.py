"""The page's tables as plain data: what was compared, per-class scores, calibration,
accuracy by review length and fine-tuning logs. Each function takes loaded runs and
returns lists and dicts of already formatted strings, so the template only lays them out.
Recorded numbers (per-class scores, counts) are read from results.json, never recomputed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from reports import formatting as fmt
from reports.sources import LoadedRun
from reports.stats import (
    accuracy_by_length,
    expected_calibration_error,
    length_bucket_names,
    reliability_bins,
)


def compared(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """Rows of the "what was compared" table: model, task, data, sample, date."""
    rows = [
        ("Model", [_model(r.results["model"]) for r in runs]),
        ("Revision / hash", [_revision(r.results["model"]) for r in runs]),
        ("Task", [_task(r.results["task"]) for r in runs]),
        ("Data", [_data(r.results.get("data") or {}, r.results["task"]) for r in runs]),
        ("Sample", [_sample(r) for r in runs]),
        ("Predicted labels", [_distribution(r) for r in runs]),
        ("Truncated inputs", [_truncated(r) for r in runs]),
        ("Created", [when(r.results.get("created")) for r in runs]),
    ]
    notes = [r.results["model"].get("weights_note") for r in runs]
    if any(notes):  # e.g. an embedded model: the 4-bit GGUF dequantized, not the original release
        rows.insert(2, ("Weights", [n or fmt.DASH for n in notes]))
    return [{"name": name, "cells": cells} for name, cells in rows]


def when(stamp: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC' (or as given when it does not parse)."""
    if not stamp:
        return fmt.DASH
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.utcoffset() is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _model(model: dict[str, Any]) -> str:
    parts = [str(model.get("name_or_path", fmt.DASH))]
    if model.get("n_parameters"):
        parts.append(fmt.parameters(model["n_parameters"]) + " parameters")
    return " · ".join(parts)


def _revision(model: dict[str, Any]) -> str:
    return fmt.short_hash(model.get("revision") or model.get("content_hash"))


def _task(task: dict[str, Any]) -> str:
    return f"{task.get('name', fmt.DASH)} ({task.get('kind', 'unknown kind')})"


def _data(data: dict[str, Any], task: dict[str, Any]) -> str:
    source = data.get("source") or task.get("dataset") or fmt.DASH
    split = data.get("split") or task.get("split")
    return f"{source} · {split}" if split else str(source)


def _sample(run: LoadedRun) -> str:
    sample = run.results.get("sample") or {}
    available = (run.results.get("data") or {}).get("n_available")
    text = f"{sample.get('n', len(run.predictions)):,}"
    if available:
        text += f" of {available:,}"
    extras = [sample.get("strategy"), None if sample.get("seed") is None else f"seed {sample['seed']}"]
    return " · ".join([text] + [e for e in extras if e])


def _distribution(run: LoadedRun) -> str:
    shares = np.bincount(run.pred, minlength=len(run.labels)) / len(run.pred)
    return " · ".join(f"{label} {fmt.percent(s, 0)}" for label, s in zip(run.labels, shares))


def _truncated(run: LoadedRun) -> str:
    n = run.metrics.get("n_truncated")
    if n is None and run.truncated is not None:
        n = int(run.truncated.sum())
    return fmt.DASH if n is None else f"{n:,} of {len(run.predictions):,}"


def per_class(run: LoadedRun) -> list[dict[str, str]] | None:
    """Per-label precision, recall, F1 and support as recorded, in task label order."""
    recorded = run.metrics.get("per_class")
    if not isinstance(recorded, dict):
        return None
    rows = []
    for label in run.labels:
        m = recorded.get(label) or {}
        rows.append({
            "label": label,
            "precision": fmt.num(m.get("precision")),
            "recall": fmt.num(m.get("recall")),
            "f1": fmt.num(m.get("f1")),
            "support": fmt.count(m.get("support")),
        })
    return rows


def calibration(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """Per run: ECE (10 equal-width bins on the predicted label's probability) and its bins."""
    out = []
    for run in runs:
        ece = expected_calibration_error(run.confidence, run.correct)
        out.append({
            "ece_value": ece,
            "ece": fmt.num(ece),
            "confidence": fmt.num(float(run.confidence.mean())),
            "accuracy": fmt.num(float(run.correct.mean())),
            "bins": reliability_bins(run.confidence, run.correct),
        })
    return out


def by_length(runs: list[LoadedRun]) -> dict[str, Any] | None:
    """Accuracy per token-count bucket and for truncated versus complete inputs; None without lengths."""
    if all(r.n_tokens is None for r in runs):
        return None
    names = length_bucket_names()
    rows: list[dict[str, Any]] = [{"name": n, "cells": []} for n in names + ["Truncated", "Complete"]]
    values: list[list[float | None]] = []
    for run in runs:
        buckets = accuracy_by_length(run.n_tokens, run.correct) if run.n_tokens is not None else [(0, None)] * len(names)
        values.append([acc for _, acc in buckets])
        for row, (n, acc) in zip(rows, buckets + _truncation_split(run)):
            row["cells"].append({"n": fmt.count(n) if n else fmt.DASH, "accuracy": fmt.num(acc)})
    return {"rows": rows, "buckets": names, "values": values}


def _truncation_split(run: LoadedRun) -> list[tuple[int, float | None]]:
    if run.truncated is None:
        return [(0, None), (0, None)]
    out = []
    for mask in (run.truncated, ~run.truncated):
        n = int(mask.sum())
        out.append((n, float(run.correct[mask].mean()) if n else None))
    return out


def training_log(run: LoadedRun) -> tuple[dict[str, Any] | None, str | None]:
    """The run's fine-tuning log, or a note saying why there is none to show."""
    where = run.results["model"].get("training_log")
    if not where:
        return None, None
    path = Path(where)
    if not path.is_absolute() and not path.is_file():
        path = run.path / path  # a relative path is read from the run folder
    if not path.is_file():
        return None, f"training log {path} not found; curves omitted"
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: malformed training log JSON ({exc}); fix or remove model.training_log") from None
    if not isinstance(log, dict) or not isinstance(log.get("train_loss", []), list):
        raise UserError(f"{path}: not a Tenser training log (expected train_loss and epochs lists)")
    return log, None


def training_summary(log: dict[str, Any]) -> dict[str, Any]:
    """Epoch table rows and hyperparameters of one training log, formatted."""
    best = log.get("best_epoch")
    epochs = [
        {
            "epoch": str(e.get("epoch", fmt.DASH)),
            "val_loss": fmt.num(e.get("val_loss")),
            "val_accuracy": fmt.num(e.get("val_accuracy")),
            "val_f1": fmt.num(e.get("val_f1_macro")),
            "best": e.get("epoch") == best,
        }
        for e in log.get("epochs") or []
    ]
    hyper = [(k, fmt.value(v)) for k, v in (log.get("hyperparameters") or {}).items()]
    wall = log.get("wall_time_s")
    return {"epochs": epochs, "hyperparameters": hyper, "best_epoch": fmt.value(best),
            "wall_time": fmt.DASH if wall is None else f"{wall:,.1f} s", "device": fmt.value(log.get("device"))}
