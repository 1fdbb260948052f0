"""The runner: task + model + examples -> scored predictions -> a run folder.

`predict` is the one inference path: `tenser run`, fine-tuning's validation, the benchmark
and the demo all call it. It sorts inputs by length (longest first, so an out-of-memory
error shows at once and the batch size halves), pads each batch to its own longest input,
and returns probabilities in the original order. Results do not depend on batch size.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import harness
from harness import calibration, runs
from harness.data import DataInfo, Example
from harness.encoding import Encoded, Encoder
from harness.errors import UserError
from harness.metrics import compute_metrics
from harness.models import LoadedModel
from harness.scorers import build_scorer
from tasks import Task

# Padded tokens per batch for --batch-size auto (see BENCHMARKS.md for how these were chosen).
CPU_TOKENS, GPU_TOKENS = 4096, 262144


def make_encoder(task: Task, loaded: LoadedModel) -> Encoder:
    """The task's encoder, capped at the model's context (room kept for multi-token label words)."""
    limit = min(task.max_tokens or loaded.context_length, loaded.context_length)
    reserve = 0
    if task.kind == "zeroshot":
        reserve = max(len(loaded.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in task.label_words) - 1
    return Encoder(task, loaded.tokenizer, limit, reserve=reserve)


@dataclass(frozen=True)
class BatchPlan:
    """How inputs are grouped: at most `max_examples` per batch and `max_tokens` padded tokens."""

    max_examples: int
    max_tokens: int | None  # None: a fixed number of examples per batch

    def end(self, lengths: list[int], start: int) -> int:
        """Index after the last input of the batch that begins at `start` (lengths sorted descending)."""
        if self.max_tokens is None:
            return min(len(lengths), start + self.max_examples)
        fit = max(1, self.max_tokens // max(1, lengths[start]))  # the first input is the longest
        return min(len(lengths), start + min(fit, self.max_examples))

    def halve(self) -> BatchPlan:
        if self.max_tokens is None:
            return BatchPlan(max(1, self.max_examples // 2), None)
        return BatchPlan(self.max_examples, max(1, self.max_tokens // 2))


def plan_batches(batch_size: int | str, device: torch.device) -> BatchPlan:
    """A fixed number of examples, or `auto`: a padded-token budget suited to the device.

    Auto starts large on GPUs and halves on out-of-memory, so it settles on the largest
    batch that fits.
    """
    if batch_size == "auto":
        return BatchPlan(1024, GPU_TOKENS) if device.type == "cuda" else BatchPlan(64, CPU_TOKENS)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"--batch-size {batch_size!r}: give a positive whole number or 'auto'")
    return BatchPlan(batch_size, None)


def predict(
    task: Task,
    loaded: LoadedModel,
    encoded: list[Encoded],
    *,
    batch_size: int | str = "auto",
    on_batch: Callable[[list[int], np.ndarray], None] | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Probabilities over the task's labels, [n, n_labels], for encoded inputs in their order."""
    scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    plan = plan_batches(batch_size, loaded.device)
    order = sorted(range(len(encoded)), key=lambda i: -encoded[i].n_tokens)
    lengths = [encoded[i].n_tokens for i in order]
    out = np.zeros((len(encoded), len(task.labels)), dtype=np.float64)
    bar = tqdm(total=len(encoded), unit="ex", desc=f"scoring {task.name}", disable=not progress, dynamic_ncols=True)
    pos = 0
    while pos < len(order):
        idx = order[pos : plan.end(lengths, pos)]
        try:
            scores = scorer.score([encoded[i] for i in idx])
        except torch.OutOfMemoryError:
            if len(idx) == 1:
                raise
            plan = plan.halve()
            torch.cuda.empty_cache()
            continue
        probs = torch.softmax(scores.double(), dim=-1).cpu().numpy()
        bad = int((~np.isfinite(probs).all(axis=1)).sum())
        if bad:
            raise UserError(f"the model produced NaN/inf scores for {bad} input(s); try --dtype float32")
        out[idx] = probs
        if on_batch is not None:
            on_batch(idx, probs)
        pos += len(idx)
        bar.update(len(idx))
    bar.close()
    return out


def prediction_record(task: Task, example: Example, enc: Encoded, probs: np.ndarray,
                      raw: np.ndarray | None = None) -> dict[str, Any]:
    """One line of predictions.jsonl (`raw_probs`: before calibration, when calibrated)."""
    record = {
        "id": example.id,
        "label": task.labels[example.label],
        "pred": task.labels[int(np.argmax(probs))],
        "probs": {name: float(p) for name, p in zip(task.labels, probs)},
        "loss": float(-np.log(max(float(probs[example.label]), 1e-12))),
        "n_tokens": enc.n_tokens,
        "truncated": enc.truncated,
        "preview": example.text[: runs.PREVIEW_CHARS],
    }
    if raw is not None:
        record["raw_probs"] = {name: float(p) for name, p in zip(task.labels, raw)}
    return record


def evaluate(
    task: Task,
    loaded: LoadedModel,
    examples: list[Example],
    data_info: DataInfo,
    run_dir: Path,
    *,
    batch_size: int | str = "auto",
    load_s: float = 0.0,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score `examples`, write the run folder (prepared by the caller) and return results.

    `extra` adds sections to results.json (e.g. few-shot demonstrations, prompt selection).
    """
    t0 = time.perf_counter()
    encoder = make_encoder(task, loaded)
    encoded = encoder.encode_many([e.text for e in examples])
    tokenize_s = time.perf_counter() - t0
    calibrated = task.kind == "zeroshot" and task.calibration != "none"
    shift, calibration_info = calibration.correction(task, loaded, batch_size=batch_size) if calibrated else (None, None)
    log = runs.PredictionLog(run_dir)

    def records(idx: list[int], raw: np.ndarray) -> list[dict[str, Any]]:
        probs = calibration.apply(raw, shift) if shift is not None else raw
        return [prediction_record(task, examples[i], encoded[i], p, r if calibrated else None)
                for i, p, r in zip(idx, probs, raw)]

    t1 = time.perf_counter()
    try:
        raw = predict(task, loaded, encoded, batch_size=batch_size, on_batch=lambda i, r: log.append(records(i, r)),
                      progress=progress)
    finally:
        log.close()
    score_s = time.perf_counter() - t1
    predictions = records(list(range(len(examples))), raw)
    gold = np.array([e.label for e in examples])
    probs = calibration.apply(raw, shift) if shift is not None else raw
    metrics = compute_metrics(gold, probs, task.labels)
    metrics["n_truncated"] = sum(e.truncated for e in encoded)
    n_tokens = sum(e.n_tokens for e in encoded)
    if calibrated:
        extra = {**(extra or {}), "calibration": calibration_info, "metrics_raw": compute_metrics(gold, raw, task.labels)}
    results = {
        "tenser_version": harness.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task.to_dict(),
        "model": loaded.info,
        "scoring": scoring_info(task, loaded, encoder),
        **data_info.to_dict(),
        "metrics": metrics,
        "timings": {
            "load_s": round(load_s, 3), "tokenize_s": round(tokenize_s, 3), "score_s": round(score_s, 3),
            "total_s": round(load_s + tokenize_s + score_s, 3),
            "examples_per_s": round(len(examples) / max(score_s, 1e-9), 2),
            "tokens_per_s": round(n_tokens / max(score_s, 1e-9), 1),
        },
        "runtime": runtime_info(loaded, batch_size),
        **(extra or {}),
    }
    runs.save_run(run_dir, results, predictions)
    return results


def scoring_info(task: Task, loaded: LoadedModel, encoder: Encoder) -> dict[str, Any]:
    """How the scores were made: method, label tokens, token budget."""
    scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    info: dict[str, Any] = {"method": scorer.method, "max_tokens": encoder.max_tokens}
    if task.kind == "zeroshot":
        tok = loaded.tokenizer
        info["label_tokens"] = {
            label: tok(word, add_special_tokens=False)["input_ids"] for label, word in zip(task.labels, task.label_words)
        }
    return info


def runtime_info(loaded: LoadedModel, batch_size: int | str) -> dict[str, Any]:
    """Device, dtype, hardware and library versions for results.json."""
    import transformers

    dev = loaded.device
    hardware = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or platform.machine()}"
    return {
        "device": str(dev), "dtype": str(loaded.dtype).removeprefix("torch."), "batch_size": batch_size,
        "hardware": f"{hardware}, {torch.get_num_threads()} threads" if dev.type == "cpu" else hardware,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "tenser": harness.__version__},
    }
