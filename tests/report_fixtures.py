"""Synthetic run folders for the report tests: predictions drawn from a seed, metrics in
results.json computed from those same predictions (so every number is consistent), and
review previews that carry HTML (`<br />`, `<script>alert(1)</script>`) to prove the
report escapes them. Runs with the same `data_seed` and `id_start` share ids and gold
labels, so they pair; a different `id_start` gives a different example set.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.runs import save_run

LABELS = ("negative", "positive")
HOSTILE = "<script>alert(1)</script>"
MAX_TOKENS = 1024


def make_predictions(
    n: int, *, accuracy: float, seed: int, data_seed: int = 0, id_start: int = 0, labels: tuple[str, ...] = LABELS
) -> list[dict[str, Any]]:
    """`n` prediction records; gold labels and lengths depend only on (data_seed, id_start)."""
    k = len(labels)
    data = np.random.default_rng([data_seed, id_start])
    gold = data.integers(0, k, n)
    raw_tokens = data.integers(30, 1500, n)
    run = np.random.default_rng(seed)
    correct = run.random(n) < accuracy
    pred = np.where(correct, gold, (gold + run.integers(1, k, n)) % k)
    confidence = 1 / k + (1 - 1 / k) * run.random(n) ** 0.7
    records = []
    for i in range(n):
        rest = (1 - confidence[i]) / (k - 1)
        probs = {label: float(confidence[i] if j == pred[i] else rest) for j, label in enumerate(labels)}
        records.append({
            "id": f"test-{id_start + i:05d}",
            "label": labels[gold[i]],
            "pred": labels[pred[i]],
            "probs": probs,
            "loss": -math.log(max(probs[labels[gold[i]]], 1e-12)),
            "n_tokens": int(min(raw_tokens[i], MAX_TOKENS)),
            "truncated": bool(raw_tokens[i] > MAX_TOKENS),
            "preview": f"Review {id_start + i}: I watched this twice.<br /><br />{HOSTILE} Then & \"then\" again...",
        })
    return records


def compute_metrics(predictions: list[dict[str, Any]], labels: tuple[str, ...] = LABELS) -> dict[str, Any]:
    """The metrics block of results.json, computed from `predictions` (normal-approximation CIs)."""
    index = {label: i for i, label in enumerate(labels)}
    gold = np.array([index[p["label"]] for p in predictions])
    pred = np.array([index[p["pred"]] for p in predictions])
    losses = np.array([p["loss"] for p in predictions])
    n, k = len(gold), len(labels)
    matrix = np.bincount(gold * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(matrix).astype(float)
    precision = np.divide(tp, matrix.sum(0), out=np.zeros(k), where=matrix.sum(0) > 0)
    recall = np.divide(tp, matrix.sum(1), out=np.zeros(k), where=matrix.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    point = {
        "accuracy": float((gold == pred).mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "loss": float(losses.mean()),
    }
    ci95 = {}
    for key, v in point.items():
        half = 1.96 * (losses.std() if key == "loss" else math.sqrt(max(v * (1 - v), 1e-9))) / math.sqrt(n)
        ci95[key] = [v - half, v + half]
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(matrix[i].sum())}
        for i, label in enumerate(labels)
    }
    return {
        "n": n, **point, "ci95": ci95, "per_class": per_class, "confusion_matrix": matrix.tolist(),
        "pred_distribution": {label: float((pred == i).mean()) for i, label in enumerate(labels)},
        "n_truncated": sum(p["truncated"] for p in predictions),
    }


def make_results(predictions: list[dict[str, Any]], *, model: str, task: str, labels: tuple[str, ...],
                 training_log: Path | None, seed: int) -> dict[str, Any]:
    """A results.json body (without schema_version) describing `predictions`."""
    return {
        "tenser_version": "0.1.0",
        "created": "2026-11-22T21:00:00+00:00",
        "task": {"name": task, "kind": "zeroshot", "labels": list(labels), "dataset": "stanfordnlp/imdb",
                 "description": "IMDB sentiment", "split": "test", "prompt": "Review: {text}\nSentiment:",
                 "label_words": [f" {x}" for x in labels], "max_tokens": MAX_TOKENS, "truncation_side": "left"},
        "model": {"name_or_path": model, "revision": None, "content_hash": "sha256:" + "ab12" * 16,
                  "architecture": "GPT2LMHeadModel", "n_parameters": 124439808, "context_length": 1024,
                  "training_log": None if training_log is None else str(training_log)},
        "scoring": {"method": "log P(label word | prompt), softmax over labels",
                    "label_tokens": {x: [100 + i] for i, x in enumerate(labels)}, "max_tokens": MAX_TOKENS},
        "data": {"source": "hub:stanfordnlp/imdb", "split": "test", "fingerprint": "sha256:" + "cd34" * 16,
                 "n_available": 25000},
        "sample": {"limit": len(predictions), "seed": seed, "n": len(predictions), "strategy": "stratified"},
        "metrics": compute_metrics(predictions, labels),
        "timings": {"load_s": 1.5, "tokenize_s": 0.4, "score_s": 12.25, "total_s": 14.15,
                    "examples_per_s": 16.3, "tokens_per_s": 5120.0},
        "runtime": {"device": "cpu", "dtype": "float32", "batch_size": 16, "hardware": "test machine",
                    "versions": {"python": "3.11.7", "torch": "2.3.0", "transformers": "4.41.0", "tenser": "0.1.0"}},
    }


def make_run(
    run_dir: Path,
    *,
    n: int = 200,
    accuracy: float = 0.8,
    seed: int = 1,
    data_seed: int = 0,
    id_start: int = 0,
    model: str = "gpt2",
    task: str = "imdb_zeroshot",
    labels: tuple[str, ...] = LABELS,
    training_log: Path | None = None,
) -> Path:
    """Write a consistent synthetic run folder at `run_dir` and return it."""
    predictions = make_predictions(n, accuracy=accuracy, seed=seed, data_seed=data_seed, id_start=id_start,
                                   labels=labels)
    results = make_results(predictions, model=model, task=task, labels=labels, training_log=training_log, seed=seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    return save_run(run_dir, results, predictions)


def make_training_log(path: Path, *, epochs: int = 3, steps_per_epoch: int = 40, best_epoch: int = 2) -> Path:
    """Write a plausible training_log.json with noisy decreasing loss."""
    rng = np.random.default_rng(7)
    train = [
        {"step": s, "epoch": s / steps_per_epoch, "loss": float(0.7 * math.exp(-s / 60) + 0.15 + 0.05 * rng.random())}
        for s in range(1, epochs * steps_per_epoch + 1)
    ]
    scores = [{"epoch": e, "val_loss": 0.45 - 0.05 * min(e, best_epoch) + 0.03 * max(0, e - best_epoch),
               "val_accuracy": 0.82 + 0.02 * min(e, best_epoch), "val_f1_macro": 0.81 + 0.02 * min(e, best_epoch)}
              for e in range(1, epochs + 1)]
    log = {"hyperparameters": {"learning_rate": 5e-5, "epochs": epochs, "batch_size": 16, "seed": 0},
           "data": {"train": 2000, "validation": 500}, "train_loss": train, "epochs": scores,
           "best_epoch": best_epoch, "wall_time_s": 123.4, "device": "cpu", "versions": {"torch": "2.3.0"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log), encoding="utf-8")
    return path
