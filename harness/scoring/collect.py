"""Collecting one prediction record per example, reusing what exists before scoring anything.

Records come from three places, in this order: the run folder's partial files left by an
interrupted run of the same job (resume), the score cache (`harness.store.cache`), and the model.
With several processes, the examples still to score are dealt out round-robin by rank; each
process appends its records to its own partial file, and rank 0 gathers them all. A user
error on any rank (say NaN scores) stops every rank, keeping what each had written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness import distributed
from harness.backends import precision
from harness.data.examples import Example
from harness.errors import UserError
from harness.scoring import calibration
from harness.scoring.encoding import Encoded, Encoder
from harness.scoring.inference import BatchPlan, NonFiniteScores, OnBatch, Predicted
from harness.store import runs
from harness.store.cache import ScoreCache
from tasks import Task

STATS = ("resumed", "cached", "scored", "tokens", "prefix_saved", "tokenize_s", "score_s")
Predict = Callable[[list[Encoded], OnBatch], Predicted]


class Fitted(Protocol):
    """What a record keeps of an input's encoding (an `Encoded`, or a cache entry of one)."""

    @property
    def n_tokens(self) -> int: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def cut(self) -> str: ...


def prediction_record(task: Task, example: Example, probs: np.ndarray, raw: np.ndarray | None = None, *,
                      n_tokens: int, truncated: bool, cut: str = "") -> dict[str, Any]:
    """One line of predictions.jsonl (`raw_probs`: before calibration, when calibrated; with several input
    fields, each field's text shortened as `preview` is, and the field cut to fit)."""
    record = {
        "id": example.id,
        "label": task.labels[example.label],
        "pred": task.labels[int(np.argmax(probs))],
        "probs": {name: float(p) for name, p in zip(task.labels, probs)},
        "loss": float(-np.log(max(float(probs[example.label]), 1e-12))),
        "n_tokens": n_tokens,
        "truncated": truncated,
        "preview": example.text[: runs.PREVIEW_CHARS],
        "text_sha": runs.text_sha(example.text),  # lets reports tell the same id in other data apart
    }
    if len(example.fields) > 1:
        record["fields"] = {name: text[: runs.PREVIEW_CHARS] for name, text in example.fields.items()}
        if truncated:
            record["truncated_field"] = cut
    if raw is not None:
        record["raw_probs"] = {name: float(p) for name, p in zip(task.labels, raw)}
    return record


@dataclass(frozen=True)
class Collected:
    """What `collect` measured: the records (rank 0; None on other ranks), what was reused and how long it
    took (`STATS`, all ranks summed on rank 0), this process's mixed-precision statistics and shared prefix, and
    the batch plan `predict` ended with (None when this process scored nothing)."""

    records: list[dict[str, Any]] | None
    stats: dict[str, float]
    precision: dict[str, Any] = field(default_factory=dict)
    plan: BatchPlan | None = None
    prefix: dict[str, Any] = field(default_factory=dict)  # `Predicted.prefix`; tokens_saved summed over ranks


@dataclass(frozen=True)
class Collector:
    """What one process needs to turn examples into records."""

    task: Task
    encoder: Encoder
    predict: Predict
    shift: np.ndarray | None = None  # calibration correction; None when not calibrated
    cache: ScoreCache | None = None

    def records(self, examples: list[Example], raw: np.ndarray, encoded: list[Fitted]) -> list[dict[str, Any]]:
        probs = calibration.apply(raw, self.shift) if self.shift is not None else raw
        calibrated = self.shift is not None
        return [prediction_record(self.task, e, p, r if calibrated else None, n_tokens=x.n_tokens,
                                  truncated=x.truncated, cut=x.cut)
                for e, p, r, x in zip(examples, probs, raw, encoded)]

    def usable(self, record: dict[str, Any]) -> bool:
        """Whether a resumed record has what the metrics need (probabilities over the task's labels)."""
        keys = ["probs"] + (["raw_probs"] if self.shift is not None else [])
        return all(isinstance(record.get(k), dict) and list(record[k]) == list(self.task.labels)
                   and all(isinstance(v, float) and np.isfinite(v) for v in record[k].values()) for k in keys)


def collect(job: Collector, examples: list[Example], run_dir: Path, *, key: str | None) -> Collected:
    """Records for all `examples`, in their order, on rank 0 (None on other ranks), and what it measured."""
    w = distributed.world()
    done = _resumed(job, run_dir, key, w)
    todo = [e for e in examples if e.id not in done]
    mine = todo[w.rank :: w.size]
    error: UserError | None = None
    mine_done = Collected([], dict.fromkeys(STATS, 0.0))
    log: runs.PredictionLog | None = None
    try:
        log = runs.PredictionLog(run_dir, name=runs.partial_name(w.rank, w.size), key=key)
        mine_done = _score(job, mine, log)
    except UserError as exc:
        error = exc
    finally:
        if log is not None:
            log.close()
        if job.cache is not None:
            job.cache.close()
    distributed.check_all(error)
    gathered = distributed.gather((mine_done.records, mine_done.stats))
    if gathered is None:
        return dataclasses.replace(mine_done, records=None)
    by_id, totals = dict(done), {**dict.fromkeys(STATS, 0.0), "resumed": len(done)}
    for records, stats in gathered:
        by_id.update((r["id"], r) for r in records or [])
        for k in ("cached", "scored", "tokens", "prefix_saved"):
            totals[k] += stats[k]
        for k in ("tokenize_s", "score_s"):
            totals[k] = max(totals[k], stats[k])  # processes run side by side: the slowest one counts
    prefix = {**mine_done.prefix, "tokens_saved": int(totals["prefix_saved"])} if mine_done.prefix else {}
    return dataclasses.replace(mine_done, records=[by_id[e.id] for e in examples], stats=totals, prefix=prefix)


def _resumed(job: Collector, run_dir: Path, key: str | None, w: distributed.World) -> dict[str, dict[str, Any]]:
    """Records already in the run folder's partial files (only with a key: a keyless run never resumes)."""
    mine: list[dict[str, Any]] = []
    error: UserError | None = None
    if key is not None:
        try:
            for path in runs.partial_files(run_dir, w.rank, w.size):
                mine += runs.read_partial(path, key=key, check=job.usable)
        except UserError as exc:
            error = exc
    distributed.check_all(error)
    done: dict[str, dict[str, Any]] = {}
    for records in distributed.all_gather(mine):
        for r in records:
            done.setdefault(r["id"], r)
    return done


def _score(job: Collector, chosen: list[Example], log: runs.PredictionLog) -> Collected:
    """Records for `chosen`: cache hits first, then the model; each batch goes to the log as it comes."""
    hits = job.cache.lookup([e.inputs() for e in chosen]) if job.cache is not None else {}
    out: list[dict[str, Any]] = []
    if hits:
        out = job.records([chosen[i] for i in hits], np.array([h.probs for h in hits.values()]),
                          list(hits.values()))
        log.append(out)
    misses = [e for i, e in enumerate(chosen) if i not in hits]
    t0 = time.perf_counter()
    encoded = job.encoder.encode_many([e.inputs() for e in misses], ids=[e.id for e in misses])
    t1 = time.perf_counter()

    def on_batch(idx: list[int], raw: np.ndarray) -> None:
        batch = job.records([misses[i] for i in idx], raw, [encoded[i] for i in idx])
        log.append(batch)
        out.extend(batch)
        if job.cache is not None:
            job.cache.add([misses[i].inputs() for i in idx], raw, [encoded[i] for i in idx])

    mixed: dict[str, Any] = {}
    plan: BatchPlan | None = None
    prefix: dict[str, Any] = {}
    try:
        if encoded:
            done = job.predict(encoded, on_batch)
            mixed, plan, prefix = precision.merge(mixed, done.precision), done.plan, done.prefix
    except NonFiniteScores as exc:
        ids = ", ".join(misses[i].id for i in exc.positions[:5])
        raise exc.extended(f" (ids: {ids}); they get no prediction. The {len(out)} predictions scored so far "
                           f"are kept; after fixing, resume with: {runs.resume_command(log.run_dir)}") from None
    stats = {"resumed": 0.0, "cached": len(hits), "scored": len(misses), "tokens": sum(e.n_tokens for e in encoded),
             "prefix_saved": prefix.get("tokens_saved", 0), "tokenize_s": t1 - t0, "score_s": time.perf_counter() - t1}
    return Collected(out, stats, mixed, plan, prefix)
