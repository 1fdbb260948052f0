"""Synthetic run folders for the report tests: predictions drawn from a seed, metrics in
results.json computed from those same predictions (so every number is consistent), and
review previews that carry HTML (`<br />`, `<script>alert(1)</script>`) to prove the
report escapes them. Runs with the same `data_seed` and `id_start` share ids and gold
labels, so they pair; a different `id_start` gives a different example set. Zero-shot
extras: calibrated runs (`raw_probs`, `metrics_raw` and a `calibration` record consistent
with the predictions), five prompt-variant runs of one model, and `prompt_selection` and
`fewshot` records (demonstration previews carry HTML too).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.runs import PREVIEW_CHARS, load_run, save_run

LABELS = ("negative", "positive")
HOSTILE = "<script>alert(1)</script>"
MAX_TOKENS = 1024
PROMPT = "Review: {text}\nSentiment:"


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
                 training_log: Path | None, seed: int, prompt: str = PROMPT,
                 label_words: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A results.json body (without schema_version) describing `predictions`."""
    return {
        "tenser_version": "0.1.0",
        "created": "2026-11-22T21:00:00+00:00",
        "task": {"name": task, "kind": "zeroshot", "labels": list(labels), "dataset": "stanfordnlp/imdb",
                 "description": "IMDB sentiment", "split": "test", "prompt": prompt,
                 "label_words": list(label_words or [f" {x}" for x in labels]), "max_tokens": MAX_TOKENS,
                 "truncation_side": "left"},
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
    prompt: str = PROMPT,
    label_words: tuple[str, ...] | None = None,
    calibration: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a consistent synthetic run folder at `run_dir` and return it.

    `calibration` ("contextual" or "pmi") makes a calibrated run: the drawn predictions are the
    calibrated ones, and `raw_probs` are them re-weighted by a bias towards the first label, so
    `metrics_raw` (computed from the raw argmax) is consistent with them. `extra` adds sections.
    """
    predictions = make_predictions(n, accuracy=accuracy, seed=seed, data_seed=data_seed, id_start=id_start,
                                   labels=labels)
    results = make_results(predictions, model=model, task=task, labels=labels, training_log=training_log, seed=seed,
                           prompt=prompt, label_words=label_words)
    if calibration:
        bias = label_bias(labels)
        raw = add_raw_probs(predictions, bias)
        results["task"]["calibration"] = calibration
        results["calibration"] = calibration_record(calibration, labels, bias)
        results["metrics_raw"] = compute_metrics(raw, labels)
    results.update(extra or {})
    run_dir.mkdir(parents=True, exist_ok=True)
    return save_run(run_dir, results, predictions)


def label_bias(labels: tuple[str, ...]) -> dict[str, float]:
    """A prompt's pull towards the first label: 0.8 / 0.2 for two labels."""
    weights = np.array([4.0] + [1.0] * (len(labels) - 1))
    return {label: float(w) for label, w in zip(labels, weights / weights.sum())}


def add_raw_probs(predictions: list[dict[str, Any]], bias: dict[str, float]) -> list[dict[str, Any]]:
    """Give each record `raw_probs` (its probs times `bias`, renormalised); return the raw view for metrics."""
    raw_view = []
    for p in predictions:
        weighted = {label: p["probs"][label] * b for label, b in bias.items()}
        total = sum(weighted.values())
        p["raw_probs"] = {label: w / total for label, w in weighted.items()}
        raw_pred = max(p["raw_probs"], key=p["raw_probs"].__getitem__)
        loss = -math.log(max(p["raw_probs"][p["label"]], 1e-12))
        raw_view.append({**p, "pred": raw_pred, "probs": p["raw_probs"], "loss": loss})
    return raw_view


def calibration_record(method: str, labels: tuple[str, ...], bias: dict[str, float]) -> dict[str, Any]:
    """The `calibration` section of results.json for `method`."""
    if method == "pmi":
        return {"method": "pmi", "domain_prompt": "Sentiment:", "domain_probs": bias}
    shifts = (0.05, -0.1, 0.05)  # the three content-free inputs disagree a little; their mean is `bias`
    first, rest = labels[0], labels[1:]
    each = [[bias[first] + d] + [bias[x] - d / len(rest) for x in rest] for d in shifts]
    return {"method": "contextual", "content_free": ["N/A", "", "[MASK]"], "content_free_probs": bias,
            "content_free_each": each}


VARIANT_PROMPTS = (
    ("Review: {text}\nSentiment:", (" negative", " positive")),
    ("Movie review: {text}\nThe sentiment of this review is", (" negative", " positive")),
    ("{text}\nDid the reviewer like the movie? Answer:", (" No", " Yes")),
    ("<review>{text}</review>\nOverall, the movie was", (" bad", " good")),
    ("{text}\nIn one word, this review is", (" negative", " positive")),
)
VARIANT_ACCURACY = (0.62, 0.71, 0.55, 0.78, 0.66)


def make_variant_runs(root: Path, *, model: str = "gpt2", base: str = "imdb_zeroshot", n: int = 200) -> list[Path]:
    """Five runs of one model on prompt variants BASE-p0 … BASE-p4 of one task, on the same examples."""
    return [make_run(root / f"{base}-p{i}", n=n, accuracy=acc, seed=10 + i, model=model, task=f"{base}-p{i}",
                     prompt=prompt, label_words=words)
            for i, ((prompt, words), acc) in enumerate(zip(VARIANT_PROMPTS, VARIANT_ACCURACY))]


SELECTION_METHOD = ("highest accuracy on 200 validation examples carved from the train split (seed 0); "
                    "the test split was not read")


def selection_record(chosen: int = 3, base: str = "imdb_zeroshot") -> dict[str, Any]:
    """A `prompt_selection` section choosing variant `chosen`."""
    prompt, words = VARIANT_PROMPTS[chosen]
    scores = {f"{base}-p{i}": round(acc - 0.01 * (i % 2), 3) for i, acc in enumerate(VARIANT_ACCURACY)}
    return {"chosen": f"{base}-p{chosen}", "prompt": prompt, "label_words": list(words), "method": SELECTION_METHOD,
            "validation_accuracy": scores}


def fewshot_record(labels: tuple[str, ...] = LABELS) -> dict[str, Any]:
    """A 2-shot `fewshot` section whose previews carry HTML, and the prompt holding its demonstrations."""
    demos = [{"id": f"train-{i:05d}", "label": label,
              "preview": (f"Demo {i} {HOSTILE}<br />" + "long " * 60)[:PREVIEW_CHARS]}
             for i, label in enumerate(labels)]
    return {"k": len(demos), "source": "hub:stanfordnlp/imdb", "split": "train", "seed": 0, "demonstrations": demos}


def fewshot_prompt(record: dict[str, Any], prompt: str = PROMPT) -> str:
    """The scored prompt of a few-shot run: each demonstration as prompt + label word, then the prompt."""
    blocks = [prompt.replace("{text}", d["preview"] + " more words" * 40) + f" {d['label']}\n\n"
              for d in record["demonstrations"]]
    return "".join(blocks) + prompt


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


def with_real_metrics(run_dir: Path) -> Path:
    """Replace a fixture run's metrics with what `harness.metrics` records (secondary metrics included)."""
    from harness.metrics import compute_metrics
    from harness.runs import load_run

    results, predictions = load_run(run_dir)
    labels = tuple(results["task"]["labels"])
    gold = np.array([labels.index(p["label"]) for p in predictions])
    probs = np.array([[p["probs"][x] for x in labels] for p in predictions])
    results["metrics"] = compute_metrics(gold, probs, labels)
    return save_run(run_dir, results, predictions)


def flip_run(src: Path, dst: Path, wrong: int, right: int = 0) -> Path:
    """A copy of `src` with `wrong` right predictions made wrong and `right` wrong ones made right
    (two labels; probabilities and metrics updated to match)."""
    results, predictions = load_run(src)
    labels = results["task"]["labels"]
    for p in predictions:
        other = labels[1 - labels.index(p["label"])]
        if wrong and p["pred"] == p["label"]:
            p["pred"], wrong = other, wrong - 1
        elif right and p["pred"] != p["label"]:
            p["pred"], right = p["label"], right - 1
        p["probs"] = {x: 0.9 if x == p["pred"] else 0.1 for x in labels}
        p["loss"] = -math.log(p["probs"][p["label"]])
    results["metrics"] = compute_metrics(predictions, tuple(labels))
    dst.mkdir(parents=True)
    return save_run(dst, results, predictions)
