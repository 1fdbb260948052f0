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

from harness import compare_state, distributed, model_card, noise_check
from harness.checkpoints import checkpoint_kind
from harness.errors import UserError, renamed_params
from harness.evaluation import Options, score_model, settings_suffix
from harness.runs import Run
from harness.train_data import FinetuneConfig
from tasks import Family, Task, get_family, get_task

# `compare` names the fine-tuning parameters that `finetune` calls data, limit and batch_size differently.
COMPARE_TRAIN_PARAMS = {"data": "train_data", "limit": "train_limit", "batch_size": "training.batch_size"}


class Render(Protocol):
    """Writes one HTML page from run folders, the baseline first (`reports.render_report` is one)."""

    def __call__(self, run_dirs: list[str | Path], out: Path, *, title: str | None = None,
                 noise: Path | None = None) -> str | Path: ...


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
            yes: bool = False, render: Render | None = None, noise_examples: int = noise_check.DEFAULT_EXAMPLES,
            **options: Any) -> Comparison:
    """The before/after job for a task family: score `model` zero-shot, fine-tune it (unless
    `finetuned` is given), score the checkpoint, measure the noise floor on `noise_examples` of the
    test examples (OUT/noise.json, `harness.noise_check`; 0 = off); with `render`, write OUT/report.html."""
    opts = Options.of(options)
    if not isinstance(noise_examples, int) or noise_examples < 0:
        raise UserError(f"{{noise_examples}} {noise_examples!r}: give 0 (off) or a positive number of examples",
                        param="noise_examples")
    family = task if isinstance(task, Family) else get_family(task.name if isinstance(task, Task) else task)
    cfg = dataclasses.replace(training or FinetuneConfig(seed=opts.seed, device=opts.device), limit=train_limit)
    zeroshot = family.task("zeroshot", **(overrides or {}))
    train_task = family.task("classifier" if cfg.objective == "classifier" else "zeroshot", **(overrides or {}))
    out = Path(out)
    w = distributed.init()
    with compare_state.locked(out):  # a second compare into OUT stops here
        state = _open_compare(model, zeroshot, train_task, cfg, out, finetuned=finetuned, data=data, limit=limit,
                              opts=opts, yes=yes)
        opts = dataclasses.replace(opts, overwrite=not state.resumed)  # a resumed compare keeps its run folders
        before = _scored(state, [zeroshot], model, f"pretrained__{zeroshot.name}", data=data, limit=limit, opts=opts)
        if finetuned is None:
            state.mark("fine-tuning")
            finetuned = _finetuned(model, train_task, cfg, state, opts)
        kind = checkpoint_kind(finetuned)
        after_task = family.task("classifier" if kind == "classifier" else "zeroshot", **(overrides or {}))
        state.mark("fine-tuned scoring")
        after = _scored(state, [after_task], finetuned, f"finetuned__{after_task.name}", data=data, limit=limit,
                        opts=opts)
        state.mark("the noise floor")
        noise = distributed.on_main(lambda: noise_check.measure(
            out, [(before, model), (after, str(finetuned))], data=data, split=opts.split, limit=limit, seed=opts.seed,
            n=noise_examples, device=opts.device, allow_pickle=opts.allow_pickle))
        state.mark("the report")
        page = Path(render([before, after], out / "report.html", title=title, noise=noise)) if render and w.main \
            else None
        if w.main:  # the checkpoint's card gets the test split and the change (comparison.json, with the report)
            model_card.add_test_results(Path(finetuned), after, before, out / "comparison.json")
        state.mark("done")
    return Comparison(_opened(before), _opened(after), Path(finetuned), page)


def _open_compare(model: str, zeroshot: Task, train_task: Task, cfg: FinetuneConfig, out: Path, *,
                  finetuned: str | None, data: str | None, limit: int | None, opts: Options,
                  yes: bool) -> compare_state.CompareFolder:
    """OUT opened fresh (after the plan and time estimate) or resumed; its settings recorded in compare.json."""
    from harness import training
    from harness.data import load_examples

    test, info = load_examples(zeroshot, data=data, split=opts.split, limit=limit, seed=opts.seed)
    train_content = None
    if finetuned is None or opts.train_data:
        with renamed_params(COMPARE_TRAIN_PARAMS):
            train_content = load_examples(train_task, data=opts.train_data, split=train_task.train_split)[1].fingerprint
    scoring = {"data": data, "split": opts.split, "limit": limit, "seed": opts.seed, "dtype": opts.dtype,
               "train_data": opts.train_data, "select_on": opts.select_on, "val_limit": opts.val_limit}
    key = compare_state.settings(model, finetuned=finetuned, task=zeroshot.to_dict(), scoring=scoring,
                                 training=cfg if finetuned is None else None,
                                 fingerprints=(info.fingerprint, train_content))
    state = distributed.on_main(lambda: compare_state.open_folder(out, key, overwrite=opts.overwrite))
    if finetuned is None and not state.resumed:  # the plan and a time estimate before anything runs
        with renamed_params(COMPARE_TRAIN_PARAMS):
            training.preflight(model, train_task, cfg, train_data=opts.train_data, n_score=2 * len(test), yes=yes,
                               allow_pickle=opts.allow_pickle)
    state.mark("pretrained scoring")
    return state


def _scored(state: compare_state.CompareFolder, tasks: list[Task], model: str, name: str, *, data: str | None,
            limit: int | None, opts: Options) -> Path:
    """The run folder OUT/runs/NAME: reused when a resumed compare finished it, else scored (or resumed)."""
    done = distributed.on_main(lambda: state.finished_run(state.out / "runs" / name))
    if done is not None:
        return done
    (run_dir,) = score_model(tasks, model, state.out / "runs", data=data, limit=limit, opts=opts, names=[name])
    return run_dir


def _finetuned(model: str, task: Task, cfg: FinetuneConfig, state: compare_state.CompareFolder,
               opts: Options) -> str:
    """OUT/finetuned: a finished fine-tune reused, an interrupted one resumed, else trained afresh."""
    from harness import training

    output = state.out / "finetuned"
    step = distributed.on_main(lambda: state.finetune_step(output))
    if step == "reuse":
        return str(output)
    with renamed_params(COMPARE_TRAIN_PARAMS):
        training.finetune(model, task, output, cfg, train_data=opts.train_data, allow_pickle=opts.allow_pickle,
                          estimate=False, overwrite=step == "fresh", resume=step == "resume")
    distributed.barrier()  # rank 0 has written the checkpoint
    return str(output)


def _opened(run_dir: Path) -> Run:
    """The finished run on rank 0; other ranks get its path only (rank 0 wrote the folder)."""
    return Run.load(run_dir) if distributed.world().main else Run(run_dir, {}, [])
