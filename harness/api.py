"""The Python API: what the `tenser` commands do, as typed functions for notebooks and scripts.

    from harness import evaluate, compare, Run
    run = evaluate("gpt2", "imdb_zeroshot", limit=200)
    run.metrics["accuracy"], run.predictions.head()

`evaluate` scores a model into a run folder and returns the `Run`; `finetune` trains a
checkpoint; `compare` runs a task family's before/after job. Keyword options are
`evaluation.Options` fields (the `tenser run` flags) and, for training, `FinetuneConfig`
fields. Errors are the `UserError`s and `TaskError`s the CLI prints as one line.

Why no HTML here: `harness` writes run folders and never imports `reports` or `demo` (the
flow is tasks -> harness -> run folders -> reports/demo; tests/test_layout.py checks it).
So `compare` writes OUT/report.html only through the `render` it is given; the composition
root, the `tenser` package (the CLI and `tenser.compare`/`tenser.report`), passes
`reports.render_report`. The CLI (`tenser.commands`) is a thin layer over these functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import distributed
from harness.checkpoints import checkpoint_kind
from harness.errors import UserError, renamed_flags
from harness.evaluation import Options, score_model, settings_suffix
from harness.runs import Run
from harness.train_data import FinetuneConfig
from tasks import Family, Task, get_family, get_task

# `compare` names the fine-tuning flags that `finetune` calls --data, --limit and --batch-size differently.
COMPARE_TRAIN_FLAGS = {"--data": "--train-data", "--limit": "--train-limit", "--batch-size": "--train-batch-size"}


class Render(Protocol):
    """Writes one HTML page from run folders, the baseline first (`reports.render_report` is one)."""

    def __call__(self, run_dirs: list[str | Path], out: Path, *, title: str | None = None) -> str | Path: ...


@dataclass(frozen=True)
class Comparison:
    """A before/after job: the pretrained model's run, the fine-tuned model's, the checkpoint and report."""

    pretrained: Run
    finetuned: Run
    checkpoint: Path
    report: Path | None  # None without a `render`, and on ranks other than 0


def resolve_task(task: str | Task, overrides: dict[str, str] | None = None) -> Task:
    """A registered task by name (or a Task record), with `-T`-style field overrides."""
    if isinstance(task, Task):
        return dataclasses.replace(task, **overrides) if overrides else task  # type: ignore[arg-type]  # checked by Task
    return get_task(task, **(overrides or {}))


def evaluate(model: str, task: str | Task = "imdb_zeroshot", *, data: str | None = None, limit: int | None = None,
             out: str | Path | None = None, overrides: dict[str, str] | None = None, **options: Any) -> Run:
    """Score `model` on `task` into OUT/TASK__MODEL (OUT default `runs`) and return the run."""
    opts = Options.of(options)
    chosen = resolve_task(task, overrides)
    distributed.init()
    (run_dir,) = score_model([chosen], model, Path(out or "runs"), data=data, limit=limit, opts=opts,
                             suffix=settings_suffix(chosen))
    return _opened(run_dir)


def training_config(options: dict[str, Any]) -> FinetuneConfig:
    """FinetuneConfig from keyword arguments; an unknown name is a UserError."""
    known = [f.name for f in dataclasses.fields(FinetuneConfig)]
    unknown = [k for k in options if k not in known]
    if unknown:
        raise UserError(f"unknown fine-tuning option {unknown[0]!r}; known: {', '.join(known)}")
    return FinetuneConfig(**options)


def finetune(model: str, task: str | Task = "imdb_classifier", *, output: str | Path, data: str | None = None,
             overwrite: bool = False, resume: bool = False, allow_pickle: bool = False, yes: bool = False,
             **config: Any) -> Path:
    """Fine-tune `model` on the task's train split; return the checkpoint folder (`output`)."""
    from harness import training

    return training.finetune(model, resolve_task(task), output, training_config(config), train_data=data,
                             overwrite=overwrite, resume=resume, allow_pickle=allow_pickle, yes=yes)


def compare(model: str, task: str | Task | Family = "imdb", *, out: str | Path, finetuned: str | None = None,
            data: str | None = None, limit: int | None = None, train_limit: int | None = None,
            overrides: dict[str, str] | None = None, training: FinetuneConfig | None = None, title: str | None = None,
            yes: bool = False, render: Render | None = None, **options: Any) -> Comparison:
    """The before/after job for a task family: score `model` zero-shot, fine-tune it (unless
    `finetuned` is given), score the checkpoint; with `render`, write OUT/report.html."""
    from harness import runs
    from harness import training as train

    opts = Options.of(options)
    family = task if isinstance(task, Family) else get_family(task.name if isinstance(task, Task) else task)
    cfg = dataclasses.replace(training or FinetuneConfig(seed=opts.seed, device=opts.device), limit=train_limit)
    zeroshot = family.task("zeroshot", **(overrides or {}))
    train_task = family.task("classifier" if cfg.objective == "classifier" else "zeroshot", **(overrides or {}))
    out = Path(out)
    w = distributed.init()
    distributed.on_main(lambda: runs.prepare_run_dir(out, overwrite=opts.overwrite))
    opts = dataclasses.replace(opts, overwrite=True)  # sub-folders of a fresh --out
    if finetuned is None:  # the plan and a time estimate before anything runs
        from harness.data import load_examples

        test, _ = load_examples(zeroshot, data=data, split=opts.split, limit=limit, seed=opts.seed)
        with renamed_flags(COMPARE_TRAIN_FLAGS):
            train.preflight(model, train_task, cfg, train_data=opts.train_data, n_score=2 * len(test), yes=yes,
                            allow_pickle=opts.allow_pickle)
    (before,) = score_model([zeroshot], model, out / "runs", data=data, limit=limit, opts=opts,
                            names=[f"pretrained__{zeroshot.name}"])
    if finetuned is None:
        with renamed_flags(COMPARE_TRAIN_FLAGS):
            finetuned = str(train.finetune(model, train_task, out / "finetuned", cfg, train_data=opts.train_data,
                                           allow_pickle=opts.allow_pickle, estimate=False))
        distributed.barrier()  # rank 0 has written the checkpoint
    kind = checkpoint_kind(finetuned)
    after_task = family.task("classifier" if kind == "classifier" else "zeroshot", **(overrides or {}))
    (after,) = score_model([after_task], finetuned, out / "runs", data=data, limit=limit, opts=opts,
                           names=[f"finetuned__{after_task.name}"])
    page = Path(render([before, after], out / "report.html", title=title)) if render and w.main else None
    return Comparison(_opened(before), _opened(after), Path(finetuned), page)


def _opened(run_dir: Path) -> Run:
    """The finished run on rank 0; other ranks get its path only (rank 0 wrote the folder)."""
    return Run.load(run_dir) if distributed.world().main else Run(run_dir, {}, [])
