"""The runner: task + model + examples -> scored predictions -> a run folder.

`predict` is the one inference path: `tenser run`, fine-tuning's validation, the benchmark
and the demo all call it. It sorts inputs by length (longest first, so an out-of-memory
error shows at once and the batch size halves), pads each batch to its own longest input,
and returns probabilities in the original order. Results do not depend on batch size.

`evaluate` turns one job into a run folder. Its records come from an interrupted run's partial
files, the score cache, or `predict` (see `harness.collect`), and its metrics are computed from
the records alone, so a resumed, cached or multi-process run equals an uninterrupted one.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import harness
from harness import calibration, collect, distributed, precision, runs
from harness.cache import ScoreCache
from harness.collect import NonFiniteScores
from harness.data import DataInfo, Example
from harness.encoding import Encoded, Encoder
from harness.errors import UserError
from harness.metrics import compute_metrics
from harness.models import LoadedModel
from harness.scorers import Scorer, ZeroShotScorer, build_scorer
from tasks import Task

# Padded tokens per batch for --batch-size auto on a GPU; it halves on out-of-memory.
GPU_TOKENS = 262144


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
        # On a CPU a batch is no cheaper per token than one input, and padding is pure waste:
        # one review at a time measured 1.5x faster than a 4,096-token budget (BENCHMARKS.md).
        return BatchPlan(1024, GPU_TOKENS) if device.type == "cuda" else BatchPlan(1, None)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"--batch-size {batch_size!r}: give a positive whole number or 'auto'")
    return BatchPlan(batch_size, None)


def predict(
    task: Task,
    loaded: LoadedModel,
    encoded: list[Encoded],
    *,
    batch_size: int | str = "auto",
    on_batch: collect.OnBatch | None = None,
    progress: bool = True,
    shift: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities over the task's labels, [n, n_labels], for encoded inputs in their order.

    `shift` is the calibration correction the predictions will be judged with (mixed precision
    re-checks near-ties of the corrected scores).
    """
    scorer: Scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    plan = plan_batches(batch_size, loaded.device)
    order = sorted(range(len(encoded)), key=lambda i: -encoded[i].n_tokens)
    checked: precision.CheckedScorer | None = None
    if loaded.fast_body is not None and len(encoded) > precision.SAMPLE:  # fewer: all are the sample: plain fp32
        fast = build_scorer(loaded.model, loaded.tokenizer, task, loaded.fast_body)
        scorer = checked = precision.CheckedScorer(fast, scorer, shift)
    lengths = [encoded[i].n_tokens for i in order]
    out = np.zeros((len(encoded), len(task.labels)), dtype=np.float64)
    with tqdm(total=len(encoded), unit="ex", desc=f"scoring {task.name}", disable=not progress,
              dynamic_ncols=True) as bar:  # closed (a newline on stderr) also when scoring fails
        if checked is not None:
            bar.set_postfix_str(f"measuring bf16 error on {precision.SAMPLE} inputs")
            checked.calibrate([encoded[i] for i in precision.spread_sample(order)])
            bar.set_postfix_str("")
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
            out[idx] = _accept(idx, torch.softmax(scores.double(), dim=-1).cpu().numpy(), on_batch)
            pos += len(idx)
            bar.update(len(idx))
    if checked is not None:
        checked.record(loaded.checks, len(encoded))
        loaded.checks["compute_dtype"] = str(loaded.compute).removeprefix("torch.")
    return out


def _accept(idx: list[int], probs: np.ndarray, on_batch: collect.OnBatch | None) -> np.ndarray:
    """Hand a batch's finite rows to `on_batch`; then NaN/inf rows raise, never becoming predictions."""
    finite = np.isfinite(probs).all(axis=1)
    if on_batch is not None and finite.any():
        on_batch([i for i, ok in zip(idx, finite) if ok], probs[finite])
    if not finite.all():
        bad = [i for i, ok in zip(idx, finite) if not ok]
        raise NonFiniteScores(f"the model produced NaN/inf scores for {len(bad)} input(s); try --dtype float32", bad)
    return probs


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
    key: str | None = None,
    cache: ScoreCache | None = None,
) -> dict[str, Any]:
    """Score `examples`, write the run folder (prepared by the caller) and return results.

    With a `key` (see `harness.jobs`), predictions left in the folder by an interrupted run of the
    same job are reused; with a `cache`, so are cached scores. With several processes, each scores
    its share and rank 0 writes the folder; every rank returns the results. `extra` adds sections
    to results.json (e.g. few-shot demonstrations, prompt selection).
    """
    w = distributed.world()
    loaded.checks.clear()  # results.json reports this job's mixed-precision checks only
    encoder = make_encoder(task, loaded)
    calibrated = task.kind == "zeroshot" and task.calibration != "none"
    shift, calibration_info = calibration.correction(task, loaded, batch_size=batch_size) if calibrated else (None, None)
    job = collect.Job(task, encoder, shift=shift, cache=cache, predict=lambda enc, on_batch: predict(
        task, loaded, enc, batch_size=batch_size, on_batch=on_batch, progress=progress and w.main, shift=shift))
    records = collect.collect(job, examples, run_dir, key=key)
    if calibrated:
        extra = {**(extra or {}), "calibration": calibration_info}
    results = distributed.on_main(lambda: finish(task, loaded, encoder, data_info, run_dir, records or [], job.stats,
                                                 batch_size=batch_size, load_s=load_s, extra=extra))
    if not w.main:  # rank 0 saw it too where the filesystem is shared; on a node of its own, it is still here
        (run_dir / runs.partial_name(w.rank, w.size)).unlink(missing_ok=True)
    return results


def finish(task: Task, loaded: LoadedModel, encoder: Encoder, data_info: DataInfo, run_dir: Path,
           records: list[dict[str, Any]], stats: dict[str, float], *, batch_size: int | str, load_s: float,
           extra: dict[str, Any] | None) -> dict[str, Any]:
    """Metrics from the records alone, results.json and predictions.jsonl (rank 0)."""
    gold = np.array([task.labels.index(r["label"]) for r in records])
    metrics = compute_metrics(gold, _probs(records, "probs", task), task.labels)
    metrics["n_truncated"] = sum(bool(r["truncated"]) for r in records)
    if task.kind == "zeroshot" and task.calibration != "none":
        extra = {**(extra or {}), "metrics_raw": compute_metrics(gold, _probs(records, "raw_probs", task), task.labels)}
    tokenize_s, score_s, scored = stats["tokenize_s"], stats["score_s"], int(stats["scored"])
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
            "examples_per_s": round(scored / max(score_s, 1e-9), 2) if scored else 0.0,
            "tokens_per_s": round(stats["tokens"] / max(score_s, 1e-9), 1) if scored else 0.0,
        },
        "runtime": {**runtime_info(loaded, batch_size), "processes": distributed.world().size,
                    "reused": {"resumed": int(stats["resumed"]), "cached": int(stats["cached"]), "scored": scored}},
        **(extra or {}),
    }
    runs.save_run(run_dir, results, records)
    return results


def _probs(records: list[dict[str, Any]], field: str, task: Task) -> np.ndarray:
    return np.array([[r[field][name] for name in task.labels] for r in records], dtype=np.float64)


def scoring_info(task: Task, loaded: LoadedModel, encoder: Encoder) -> dict[str, Any]:
    """How the scores were made: method, label tokens, token budget."""
    scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    info: dict[str, Any] = {"method": scorer.method, "max_tokens": encoder.max_tokens}
    if isinstance(scorer, ZeroShotScorer):
        info["label_tokens"] = dict(zip(task.labels, scorer.label_ids))
    return info


def runtime_info(loaded: LoadedModel, batch_size: int | str) -> dict[str, Any]:
    """Device, dtype, hardware and library versions for results.json."""
    import transformers

    dev = loaded.device
    hardware = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or platform.machine()}"
    return {
        "device": str(dev), "dtype": loaded.precision, "batch_size": batch_size, "compiled": loaded.compiled,
        **({"mixed_precision": dict(loaded.checks)} if loaded.checks else {}),
        "hardware": f"{hardware}, {torch.get_num_threads()} threads" if dev.type == "cpu" else hardware,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "tenser": harness.__version__},
    }
