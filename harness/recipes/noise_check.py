"""The noise floor a `tenser compare` measures by itself: OUT/noise.json.

After both runs are scored, a seeded subset of the test examples (stratified by label, `n`
of them, the same for both runs) is scored again with each model the reference way: float32
weights, one review at a time (`inference.predict` with batch_size=1), with the task each run
recorded (its prompt, demonstrations, calibration correction). The predictions that differ
from the run's own recorded ones are flips; their share bounds how far that run's accuracy
moves with batch size and precision, and `reports.noise` sums both runs' shares into the
floor of the change. A run already scored as the reference (float32, batch 1, the CPU
default) has a floor of 0 by construction; it is still measured, and noise.json says so.

noise.json records which runs it checked (their results.json `created` stamps), so a resumed
compare reuses it only while those runs and the subset size and seed are unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends.registry import load_backend, model_kind
from harness.data.examples import Example, load_examples, sample_stratified
from harness.scoring import calibration, inference
from harness.scoring.encoding import Inputs
from harness.store import runs
from tasks import Task, TaskError

NOISE = "noise.json"
SCHEMA = 1
REFERENCE = "float32, batch 1"
DEFAULT_EXAMPLES = 32


def is_reference(runtime: dict[str, Any]) -> bool:
    """Whether a run was scored as the reference already: float32 weights, one input per batch."""
    plan = runtime.get("batch_plan") or {}
    return runtime.get("dtype") == "float32" and plan.get("max_examples") == 1


def setting(runtime: dict[str, Any]) -> str:
    """A run's dtype and batch size in words, as noise.json and the report name it."""
    plan = runtime.get("batch_plan") or {}
    batch = plan.get("max_examples", runtime.get("batch_size", "?"))
    if plan.get("max_tokens"):
        batch = f"auto (up to {plan['max_examples']} examples, {plan['max_tokens']} tokens)"
    return f"{runtime.get('dtype', '?')}, batch {batch}"


def measure(out: Path, checks: list[tuple[Path, str]], *, data: str | None, split: str | None, limit: int | None,
            seed: int, n: int, device: str, allow_pickle: bool = False) -> Path | None:
    """Write OUT/noise.json for the (run folder, model) pairs; None (and no file) when n is 0.

    A noise.json of the same runs, n and seed is reused as it is.
    """
    target = out / NOISE
    if n <= 0:
        target.unlink(missing_ok=True)  # a floor from earlier settings would mislabel this report
        return None
    stamps = [_results(run_dir).get("created") for run_dir, _ in checks]
    if _reusable(target, checks, stamps, n, seed):
        print(f"reusing the noise floor in {target}", file=sys.stderr)
        return target
    entries = [_check(run_dir, model, data=data, split=split, limit=limit, seed=seed, n=n, device=device,
                      allow_pickle=allow_pickle) for run_dir, model in checks]
    body = {"tenser_noise": SCHEMA, "method": f"re-scored {REFERENCE} (harness.scoring.inference.predict, batch_size=1, "
                                               f"float32 weights) vs the run's own predictions",
            "reference": REFERENCE, "n_requested": n, "seed": seed, "runs": entries,
            "floor": sum(e["share"] for e in entries)}
    runs.write_atomic(target, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    flips = ", ".join(f"{e['run']} {e['flips']}/{e['n']}" for e in entries)
    print(f"noise floor | {REFERENCE} re-scored, flips: {flips} | floor {100 * body['floor']:.1f} points",
          file=sys.stderr)
    return target


def _results(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / runs.RESULTS).read_text(encoding="utf-8")))


def _reusable(target: Path, checks: list[tuple[Path, str]], stamps: list[Any], n: int, seed: int) -> bool:
    try:
        body = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(body, dict) or body.get("tenser_noise") != SCHEMA:
        return False
    done = [(e.get("run"), e.get("created")) for e in body.get("runs") or [] if isinstance(e, dict)]
    wanted = [(run_dir.name, stamp) for (run_dir, _), stamp in zip(checks, stamps)]
    return body.get("n_requested") == n and body.get("seed") == seed and done == wanted


def run_task(recorded: dict[str, Any], fallback: Task | None = None) -> Task:
    """The task a run recorded in results.json (prompt, demonstrations and all), as a Task again."""
    names = {f.name for f in dataclasses.fields(Task)}
    try:
        return Task(**{k: _tuples(v) for k, v in recorded.items() if k in names})
    except (TaskError, TypeError):
        if fallback is None:
            raise
        return fallback


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _check(run_dir: Path, model: str, *, data: str | None, split: str | None, limit: int | None, seed: int, n: int,
           device: str, allow_pickle: bool) -> dict[str, Any]:
    results, records = runs.load_run(run_dir)
    task = run_task(results["task"])
    examples, _ = load_examples(task, data=data, split=split, limit=limit, seed=seed)
    by_id = {r["id"]: r for r in records}
    pool = [e for e in examples if e.id in by_id]
    subset: list[Example] = sample_stratified(pool, min(n, len(pool)), seed)
    ref = reference_scores(task, model, [e.inputs() for e in subset], device=device, allow_pickle=allow_pickle)
    recorded = np.array([[by_id[e.id].get("raw_probs", by_id[e.id]["probs"])[label] for label in task.labels]
                         for e in subset], dtype=np.float64)
    shift = recorded_shift(results, task)
    calibrated = ref if shift is None else calibration.apply(ref, shift)
    preds = [task.labels[int(i)] for i in np.argmax(calibrated, axis=1)]
    flipped = [e.id for e, p in zip(subset, preds) if p != by_id[e.id]["pred"]]
    runtime = results.get("runtime") or {}
    same = is_reference(runtime)
    return {"run": run_dir.name, "created": results.get("created"), "task": task.name, "model": model,
            "setting": setting(runtime), "reference_setting": REFERENCE, "is_reference": same,
            "n": len(subset), "flips": len(flipped), "share": len(flipped) / len(subset) if subset else 0.0,
            "max_prob_diff": float(np.abs(ref - recorded).max()) if subset else 0.0,
            "flipped_ids": flipped, "ids": [e.id for e in subset],
            **({"note": "scored as the reference already: floor 0 by construction, still measured"} if same else {})}


def reference_scores(task: Task, model: str, texts: Sequence[Inputs], *, device: str, allow_pickle: bool) -> np.ndarray:
    """Uncalibrated label probabilities the reference way: float32 weights, batch size 1, every prompt whole
    (no prefix cache: an independent check of the cached path)."""
    loaded = load_backend(model, model_kind(task), device=device, dtype="float32", allow_pickle=allow_pickle,
                          prefix_cache=False)
    encoded = inference.make_encoder(task, loaded).encode_many(texts)
    return inference.predict(task, loaded, encoded, batch_size=1, progress=False).probs


def recorded_shift(results: dict[str, Any], task: Task) -> np.ndarray | None:
    """The calibration correction a run applied, from what it recorded (None when uncalibrated)."""
    info = results.get("calibration")
    if not isinstance(info, dict):
        return None
    mean = info.get("content_free_probs") or info.get("domain_probs")
    if not isinstance(mean, dict):
        return None
    return np.log(np.clip(np.array([mean[label] for label in task.labels], dtype=np.float64), 1e-300, None))
