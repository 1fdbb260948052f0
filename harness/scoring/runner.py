"""The runner: task + model + examples -> scored predictions -> a run folder.

Scoring itself is `harness.scoring.inference.predict`, the one inference path. `evaluate` turns one
job into a run folder. Its records come from an interrupted run's partial
files, the score cache, or `predict` (see `harness.scoring.collect`), and its metrics are computed from
the records alone, so a resumed, cached or multi-process run equals an uninterrupted one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness import distributed
from harness.backends.base import Backend
from harness.data.examples import DataInfo, Example
from harness.metrics import extra as extra_metrics
from harness.metrics.classification import compute_metrics
from harness.scoring import calibration, chat, collect, inference
from harness.scoring.encoding import Encoder
from harness.store import runs
from harness.store.cache import ScoreCache
from harness.version import VERSION
from tasks import Task


def score_run(
    task: Task,
    loaded: Backend,
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

    With a `key` (see `harness.recipes.jobs`), predictions left in the folder by an interrupted run of the
    same job are reused; with a `cache`, so are cached scores. With several processes, each scores
    its share and rank 0 writes the folder; every rank returns the results. `extra` adds sections
    to results.json (e.g. few-shot demonstrations, prompt selection).
    """
    w = distributed.world()
    modules = extra_metrics.load_all(task)  # before scoring: a module that cannot load fails at once
    encoder = inference.make_encoder(task, loaded)
    shift, calibration_info = calibration.for_task(task, loaded, batch_size=batch_size)
    collector = collect.Collector(task, encoder, shift=shift, cache=cache, predict=lambda enc, on_batch: inference.predict(
        task, loaded, enc, batch_size=batch_size, on_batch=on_batch, progress=progress and w.main, shift=shift))
    collected = collect.collect(collector, examples, run_dir, key=key)
    records = collected.records
    if calibration_info is not None:
        extra = {**(extra or {}), "calibration": calibration_info}
    if modules and w.main:  # from the records alone, as every other metric
        extra = {**(extra or {}), "extra_metrics": extra_metrics.compute(task, modules, records or [])}
    used = collected.plan or loaded.plan(batch_size)
    runtime = {**loaded.runtime(batch_size), "batch_plan": {"max_examples": used.max_examples,
                                                                  "max_tokens": used.max_tokens},
               **({"mixed_precision": collected.precision} if collected.precision else {})}
    results = distributed.on_main(lambda: finish(task, loaded, encoder, data_info, run_dir, records or [],
                                                 collected.stats, runtime=runtime, load_s=load_s, extra=extra,
                                                 prefix=collected.prefix))
    if not w.main:  # rank 0 saw it too where the filesystem is shared; on a node of its own, it is still here
        (run_dir / runs.partial_name(w.rank, w.size)).unlink(missing_ok=True)
    return results


def finish(task: Task, loaded: Backend, encoder: Encoder, data_info: DataInfo, run_dir: Path,
           records: list[dict[str, Any]], stats: dict[str, float], *, runtime: dict[str, Any], load_s: float,
           extra: dict[str, Any] | None, prefix: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metrics from the records alone, results.json and predictions.jsonl (rank 0); `prefix`: the shared
    prefix run once (`scoring.prefix_cache`; absent when nothing was scored or the kind has none)."""
    gold = np.array([task.labels.index(r["label"]) for r in records])
    metrics = compute_metrics(gold, _probs(records, "probs", task), task.labels)
    metrics["n_truncated"] = sum(bool(r["truncated"]) for r in records)
    if task.calibration != "none":  # a zero-shot-only field (tasks.kinds)
        extra = {**(extra or {}), "metrics_raw": compute_metrics(gold, _probs(records, "raw_probs", task), task.labels)}
    tokenize_s, score_s, scored = stats["tokenize_s"], stats["score_s"], int(stats["scored"])
    results = {
        "tenser_version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": task.to_dict(),
        "model": loaded.info,
        "scoring": {**scoring_info(task, loaded, encoder), **({"prefix_cache": prefix} if prefix else {})},
        **data_info.to_dict(),
        "metrics": metrics,
        "timings": {
            "load_s": round(load_s, 3), "tokenize_s": round(tokenize_s, 3), "score_s": round(score_s, 3),
            "total_s": round(load_s + tokenize_s + score_s, 3),
            "examples_per_s": round(scored / max(score_s, 1e-9), 2) if scored else 0.0,
            "tokens_per_s": round(stats["tokens"] / max(score_s, 1e-9), 1) if scored else 0.0,
        },
        "runtime": {**runtime, "processes": distributed.world().size,
                    "reused": {"resumed": int(stats["resumed"]), "cached": int(stats["cached"]), "scored": scored}},
        **(extra or {}),
    }
    runs.save_run(run_dir, results, records)
    return results


def _probs(records: list[dict[str, Any]], field: str, task: Task) -> np.ndarray:
    return np.array([[r[field][name] for name in task.labels] for r in records], dtype=np.float64)


def scoring_info(task: Task, loaded: Backend, encoder: Encoder) -> dict[str, Any]:
    """How the scores were made: method, label tokens, token budget."""
    scorer = loaded.scorer(task)
    info: dict[str, Any] = {"method": scorer.method, "max_tokens": encoder.max_tokens}
    if scorer.label_tokens is not None:
        info["label_tokens"] = dict(zip(task.labels, scorer.label_tokens))
    if encoder.chat is not None:  # the exact prompt the model reads, template included
        info["chat_template"] = chat.record(task, encoder.chat)
    return info
