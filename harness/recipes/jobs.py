"""One scoring job per run folder: its key, a fresh or resumed folder, the cache, and `--resume`.

A job's key hashes what fixes its predictions: the model's content hash (or Hub id and commit),
the dtype, the task as scored (prompt with any demonstrations, label words, calibration, token
budget), the data fingerprint, split and sample. Re-running the same command finds the
unfinished folder of the same key and resumes it; another job's leftovers are refused.
`run.json` also records how to restart the job, which `tenser run --resume RUN_DIR` reads.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness import distributed
from harness.backends.base import Backend
from harness.backends.registry import load_backend
from harness.data.examples import DataInfo, Example, data_ref, load_examples
from harness.errors import UserError
from harness.scoring.inference import make_encoder
from harness.scoring.runner import score_run
from harness.store import cache, runs
from harness.store.identity import model_path
from tasks import Task, task_from_dict


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while scoring into `run_dir`: the CLI says how to resume."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def job_key(task: Task, loaded: Backend, info: DataInfo) -> str:
    """A short hash of everything that fixes this job's predictions."""
    parts = {"model": loaded.identity or loaded.info["name_or_path"],
             "dtype": loaded.precision, "task": task.to_dict(),
             "data": info.fingerprint, "split": info.split, "sample": [info.limit, info.seed, info.n]}
    return "job:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def job_spec(task: Task, loaded: Backend, info: DataInfo, *, model: str, kind: str, data: str | None,
             device: str, batch_size: int | str, name: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    """What run.json records so that `--resume` can restart the job from the folder alone."""
    return {"model": model_path(model), "kind": kind, "name": name,
            "task": task.to_dict(), "data": data_ref(data),
            "split": info.split, "limit": info.limit, "seed": info.seed,
            "dtype": loaded.precision, "compile": loaded.compiled, "device": device, "batch_size": batch_size,
            "extra": extra or {}}


def run_job(task: Task, loaded: Backend, examples: list[Example], info: DataInfo, run_dir: Path, *,
            spec: dict[str, Any], overwrite: bool, batch_size: int | str, use_cache: bool, load_s: float = 0.0,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score one job into `run_dir`: fresh, resumed from an unfinished run of the same key, or refused."""
    key = job_key(task, loaded, info)
    with runs.lock_on_main(run_dir):  # rank 0 holds the folder's lock for the whole job
        distributed.on_main(lambda: runs.prepare_run_dir(run_dir, overwrite=overwrite, key=key, spec=spec))
        _prepare_other_rank(run_dir, overwrite=overwrite)
        scores = cache.for_run(task, loaded, make_encoder(task, loaded).max_tokens, enabled=use_cache)
        try:
            return score_run(task, loaded, examples, info, run_dir, batch_size=batch_size, load_s=load_s,
                            extra=extra, key=key, cache=scores)
        except KeyboardInterrupt:
            raise Interrupted(run_dir) from None


def _prepare_other_rank(run_dir: Path, *, overwrite: bool) -> None:
    """Ranks other than 0 need the folder too (on a node without a shared filesystem) and, with
    --overwrite, drop their own leftover partial file."""
    w = distributed.world()
    error: UserError | None = None
    if not w.main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            if overwrite:
                (run_dir / runs.partial_name(w.rank, w.size)).unlink(missing_ok=True)
        except OSError as exc:
            error = UserError(f"rank {w.rank}: cannot create output folder {run_dir}: {exc.strerror}")
    distributed.check_all(error)


def resume(run_dir: Path, *, use_cache: bool, allow_pickle: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Finish the unfinished run in `run_dir` from its run.json; return its results and job spec."""
    meta = runs.read_run_meta(run_dir)
    job = meta["job"]
    try:
        task = task_from_dict(job["task"], str(run_dir / runs.RUN_META))
    except (TypeError, ValueError, KeyError) as exc:
        raise UserError(f"{run_dir / runs.RUN_META}: bad task ({exc}); re-run the original command") from None
    examples, info = load_examples(task, data=job["data"], split=job["split"], limit=job["limit"], seed=job["seed"])
    t0 = time.perf_counter()
    loaded = load_backend(job["model"], job["kind"], device=job["device"], dtype=job["dtype"],
                          allow_pickle=allow_pickle, compile=bool(job.get("compile")), task=task.name)
    if job_key(task, loaded, info) != meta["key"]:
        raise UserError(f"{{resume}} {run_dir}: the model or data changed since this run started; re-run the "
                        f"original command with --overwrite to start again", param="resume")
    results = run_job(task, loaded, examples, info, run_dir, spec=job, overwrite=False, batch_size=job["batch_size"],
                      use_cache=use_cache, load_s=time.perf_counter() - t0, extra=job["extra"])
    return results, job


def summary(name: str, model: str, results: dict[str, Any]) -> None:
    """One line on stderr per finished run (rank 0 only)."""
    if not distributed.world().main:
        return
    m, reused = results["metrics"], results["runtime"].get("reused", {})
    done = [f"{reused[k]} {k}" for k in ("resumed", "cached") if reused.get(k)]
    speed = f"{results['timings']['examples_per_s']:.1f} ex/s" if reused.get("scored") else "nothing scored"
    print(f"{name} | {model} | n={m['n']} accuracy={m['accuracy']:.4f} f1_macro={m['f1_macro']:.4f} "
          f"loss={m['loss']:.4f} | {speed}{' (' + ', '.join(done) + ')' if done else ''}", file=sys.stderr)


def interrupted_message(exc: KeyboardInterrupt, command: str, output: str | None = None) -> str:
    """What an interrupted command kept, and the command that resumes it."""
    from harness.training.config import CHECKPOINTS

    run_dir = getattr(exc, "run_dir", None)
    if command in ("compare", "quickstart"):
        return "what it finished (run folders, the fine-tune's epoch checkpoints) is kept; rerun the same command to continue"
    if run_dir is None and command == "finetune" and output:
        return (f"the Trainer checkpoints saved so far (one per epoch) are kept in {Path(output) / CHECKPOINTS}; "
                f"continue with the same command plus --resume")
    if run_dir is None:
        return "scored predictions so far are kept in the run folder"
    return (f"the {runs.count_partial(run_dir)} predictions scored so far are kept in {run_dir}; "
            f"resume with: {runs.resume_command(run_dir)}")
