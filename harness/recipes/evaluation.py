"""Scoring one model on one task (or its prompt variants) into run folders, from typed options.

`score_model` is what `tenser run`, `tenser compare` and the Python API (`harness.api`) call:
load the data and the model once, add the task's demonstrations, optionally select a prompt
variant on a validation split, then one job per run folder (`harness.recipes.jobs`). Run folders are
named `TASK__MODEL`, with a short suffix when the task's settings differ from the registered
task's (`-T` overrides), and models that share a folder name are told apart by their parent.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness import distributed
from harness.backends.registry import load_backend, model_kind
from harness.data.examples import load_examples
from harness.errors import UserError
from harness.recipes import jobs
from harness.scoring import prompting
from harness.store import runs
from tasks import Task, TaskError, get_task


@dataclass(frozen=True)
class Options:
    """How to score: the `tenser run` flags, as keyword arguments of the Python API."""

    split: str | None = None  # default: the task's split
    seed: int = 0  # sampling, few-shot draw and validation carve
    batch_size: int | str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    train_data: str | None = None  # the train split for few-shot (-T shots=k) and prompt selection
    select_on: Literal["validation"] | None = None
    val_limit: int = 200  # validation examples for select_on
    overwrite: bool = False  # replace a non-empty run folder
    use_cache: bool = True  # reuse cached scores ($TENSER_CACHE)
    allow_pickle: bool = False
    prefix_cache: bool = True  # zero-shot: run the inputs' shared token prefix once (same scores, less work)

    @classmethod
    def of(cls, given: dict[str, Any]) -> Options:
        """Options from keyword arguments; an unknown name is a UserError with the nearest known one."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in given:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                raise UserError(f"unknown option {key!r}." + (f" Did you mean {near[0]!r}?" if near else "")
                                + f" Known: {', '.join(known)}")
        return cls(**given)

    @classmethod
    def from_args(cls, args: Any) -> Options:
        """Options from parsed `tenser` flags (absent flags keep their defaults)."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        if hasattr(args, "no_cache"):
            values["use_cache"] = not args.no_cache
        if hasattr(args, "no_prefix_cache"):
            values["prefix_cache"] = not args.no_prefix_cache
        return cls(**values)


def model_slug(name: str) -> str:
    """A folder-safe short name for a model id or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.rstrip("/")).name or name).strip("-") or "model"


def model_slugs(models: list[str]) -> list[str]:
    """One slug per model; models whose slugs collide (a/tiny, b/tiny) get their parent's name too."""
    plain = [model_slug(m) for m in models]
    slugs = [model_slug("-".join(Path(m.rstrip("/")).parts[-2:])) if plain.count(slug) > 1 else slug
             for m, slug in zip(models, plain)]
    if len(set(slugs)) < len(slugs):
        raise UserError(f"{{model}}: {', '.join(models)} would share run folders; give each model once", param="model")
    return slugs


def settings_suffix(task: Task) -> str:
    """'' for a registered task as registered; else '.FIELD-VALUE' (short) or '.T' + a hash of the changes."""
    try:
        base = get_task(task.name)
    except TaskError:
        return ""
    changed = {f.name: getattr(task, f.name) for f in dataclasses.fields(Task)
               if getattr(task, f.name) != getattr(base, f.name)}
    if not changed:
        return ""
    readable = "+".join(f"{k}-{v}" for k, v in sorted(changed.items()))
    if len(readable) <= 40 and re.fullmatch(r"[A-Za-z0-9_.+-]+", readable):
        return "." + readable
    return ".T" + hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]


def score_model(tasks: list[Task], model: str, out: Path, *, data: str | None, limit: int | None, opts: Options,
                names: list[str] | None = None, slug: str | None = None, suffix: str = "") -> list[Path]:
    """Load `model` once, score it on each task (prompt variants), write one run folder each
    (named `names`, default TASK{suffix}__{slug}; see `settings_suffix` and `model_slugs`)."""
    examples, info = load_examples(tasks[0], data=data, split=opts.split, limit=limit, seed=opts.seed)
    t0 = time.perf_counter()
    kind = model_kind(tasks[0])
    loaded = load_backend(model, kind, device=opts.device, dtype=opts.dtype, allow_pickle=opts.allow_pickle,
                          compile=opts.compile, task=tasks[0].name, prefix_cache=opts.prefix_cache)
    load_s = time.perf_counter() - t0
    exclude = {e.id for e in examples} | {e.text for e in examples}
    shots = [prompting.add_demonstrations(t, loaded, train_data=opts.train_data, seed=opts.seed, exclude=exclude)
             for t in tasks]
    extra: dict[str, Any] = {}
    if opts.select_on:
        val = prompting.validation_examples(tasks[0], train_data=opts.train_data, limit=opts.val_limit,
                                            seed=opts.seed)
        val = [e for e in val if not any(e.id == d["id"] for _, r in shots if r for d in r["demonstrations"])]
        best, extra["prompt_selection"] = prompting.select_prompt([t for t, _ in shots], loaded, val,
                                                                  batch_size=opts.batch_size, seed=opts.seed)
        keep = [i for i, (t, _) in enumerate(shots) if t.name == best.name]
        shots, tasks = [shots[i] for i in keep], [tasks[i] for i in keep]
    slug = slug or model_slug(model)
    names = names or [f"{t.name}{suffix}__{slug}" for t in tasks]
    run_dirs, accuracies = [], {}
    for (task, demos), original, name in zip(shots, tasks, names):
        more = {**extra, **({"fewshot": demos} if demos else {})}
        spec = jobs.job_spec(task, loaded, info, model=model, kind=kind, data=data, device=opts.device,
                             batch_size=opts.batch_size, name=original.name, extra=more)
        results = jobs.run_job(task, loaded, examples, info, out / name, spec=spec, overwrite=opts.overwrite,
                               batch_size=opts.batch_size, use_cache=opts.use_cache, load_s=load_s, extra=more)
        accuracies[original.name] = results["metrics"]["accuracy"]
        jobs.summary(original.name, model, results)
        run_dirs.append(out / name)
    if len(run_dirs) > 1 and distributed.world().main:
        spread = prompting.sensitivity(accuracies)
        runs.write_atomic(out / f"prompt_sensitivity__{slug}.json", json.dumps(spread, indent=2) + "\n")
        print(f"prompt sensitivity | {model} | accuracy mean={spread['mean']:.4f} std={spread['std']:.4f} "
              f"min={spread['min']:.4f} max={spread['max']:.4f}", file=sys.stderr)
    return run_dirs


def cached_count(task: Task, model: str, *, data: str | None, limit: int | None, opts: Options) -> int:
    """How many of the examples `score_model` would score for `task` the score cache already holds, so
    an estimate leaves them out (0 with the cache off or empty; else loads the model once to key it)."""
    from harness.scoring.inference import make_encoder
    from harness.store import cache

    if not opts.use_cache or not (cache.cache_root() / "scores").is_dir():
        return 0
    examples, _ = load_examples(task, data=data, split=opts.split, limit=limit, seed=opts.seed)
    loaded = load_backend(model, model_kind(task), device=opts.device, dtype=opts.dtype,
                          allow_pickle=opts.allow_pickle, task=task.name)
    exclude = {e.id for e in examples} | {e.text for e in examples}
    shown, _ = prompting.add_demonstrations(task, loaded, train_data=opts.train_data, seed=opts.seed, exclude=exclude)
    scores = cache.for_run(shown, loaded, make_encoder(shown, loaded).max_tokens)
    return len(scores.lookup([e.inputs() for e in examples])) if scores is not None else 0
