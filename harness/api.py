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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import distributed
from harness.backends.registry import checkpoint_kind, require_hf
from harness.errors import UserError, renamed_params
from harness.recipes import compare_folder, noise_check, seed_runs
from harness.recipes.evaluation import Options, cached_count, score_model, settings_suffix
from harness.store.runs import Run
from harness.training import model_card
from harness.training.config import FinetuneConfig
from tasks import Family, Task, get_family, get_task
from tasks.kinds import kind_for_model, kind_for_objective

# `compare` names the fine-tuning parameters that `finetune` calls data, limit and batch_size differently.
COMPARE_TRAIN_PARAMS = {"data": "train_data", "limit": "train_limit", "batch_size": "trainer.batch_size"}


class Render(Protocol):
    """Writes one HTML page from run folders, the baseline first (`reports.render_report` is one)."""

    def __call__(self, run_dirs: list[str | Path], out: Path, *, title: str | None = None,
                 noise: Path | None = None, validation: Path | None = None) -> str | Path: ...


@dataclass(frozen=True)
class Comparison:
    """A before/after job: the pretrained model's run, the fine-tuned model's, the checkpoint and report
    (with several training seeds: the first seed's, and every seed's in `seeds` and `checkpoints`)."""

    pretrained: Run
    finetuned: Run
    checkpoint: Path
    report: Path | None  # None without a `render`, and on ranks other than 0
    seeds: tuple[Run, ...] = ()  # every seed's fine-tuned run, in the order of `seeds`
    checkpoints: tuple[Path, ...] = ()
    validation: dict[str, Any] | None = None  # the validation check (seed_runs.validation_check); None with finetuned


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
             keep_checkpoints: bool = False, **config: Any) -> Path:
    """Fine-tune `model` on the task's train split; return the checkpoint folder (`output`). With
    `keep_checkpoints`, each epoch's Trainer checkpoint stays in OUTPUT/checkpoints."""
    from harness.training import trainer

    return trainer.finetune(model, resolve_task(task), output, training_config(config), train_data=data,
                             overwrite=overwrite, resume=resume, allow_pickle=allow_pickle, yes=yes,
                             keep_checkpoints=keep_checkpoints)


def compare(model: str, task: str | Task | Family = "imdb", *, out: str | Path, finetuned: str | None = None,
            data: str | None = None, limit: int | None = None, train_limit: int | None = None,
            overrides: dict[str, str] | None = None, training: FinetuneConfig | None = None, title: str | None = None,
            yes: bool = False, render: Render | None = None, noise_examples: int = noise_check.DEFAULT_EXAMPLES,
            seeds: Sequence[int] | None = None, **options: Any) -> Comparison:
    """The before/after job for a task family: fine-tune `model` (unless `finetuned` is given; once per
    training seed in `seeds`) and check it against `model` on the validation carve, score `model`
    zero-shot and each checkpoint on the test examples, measure the noise floor on `noise_examples`
    of them (OUT/noise.json, `harness.recipes.noise_check`; 0 = off); with `render`, write OUT/report.html."""
    opts = Options.of(options)
    if not isinstance(noise_examples, int) or noise_examples < 0:
        raise UserError(f"{{noise_examples}} {noise_examples!r}: give 0 (off) or a positive number of examples",
                        param="noise_examples")
    chosen = seed_runs.check_seeds(seeds, finetuned=finetuned)
    family = task if isinstance(task, Family) else get_family(task.name if isinstance(task, Task) else task)
    cfg = dataclasses.replace(training or FinetuneConfig(seed=opts.seed, device=opts.device), limit=train_limit)
    zeroshot = family.task("zeroshot", **(overrides or {}))
    train_task = family.task(kind_for_objective(cfg.objective).name, **(overrides or {}))
    configs = seed_runs.seed_configs(cfg, chosen)
    out = Path(out)
    w = distributed.init()
    with compare_folder.locked(out):  # a second compare into OUT stops here
        state = _open_compare(model, zeroshot, train_task, cfg, out, finetuned=finetuned, data=data, limit=limit,
                              opts=opts, yes=yes, seeds=chosen, noise_examples=noise_examples)
        opts = dataclasses.replace(opts, overwrite=not state.resumed)  # a resumed compare keeps its run folders
        checkpoints, validation = [Path(finetuned)] if finetuned else [], None
        if finetuned is None:
            require_hf(model, "fine-tuning (compare without finetuned=)")
            state.mark("fine-tuning")
            checkpoints = [_finetuned(model, train_task, c, state, opts, len(configs)) for c in configs]
            state.mark("the validation check")  # before any test number
            validation = _validation(state, model, zeroshot, train_task, configs[0], checkpoints, opts)
        state.mark("pretrained scoring")
        before = _scored(state, [zeroshot], model, f"pretrained__{zeroshot.name}", data=data, limit=limit, opts=opts)
        state.mark("fine-tuned scoring")
        afters = []
        for i, checkpoint in enumerate(checkpoints):
            after_task = family.task(kind_for_model(checkpoint_kind(str(checkpoint))).name, **(overrides or {}))
            stem = compare_folder.seed_folders(configs[i].seed, len(configs))[1] if finetuned is None else "finetuned"
            afters.append(_scored(state, [after_task], str(checkpoint), f"{stem}__{after_task.name}", data=data,
                                  limit=limit, opts=opts))
        state.mark("the noise floor")
        noise = distributed.on_main(lambda: noise_check.measure(
            out, [(before, model), *((a, str(c)) for a, c in zip(afters, checkpoints))], data=data,
            split=opts.split, limit=limit, seed=opts.seed, n=noise_examples, device=opts.device,
            allow_pickle=opts.allow_pickle))
        state.mark("the report")
        page = Path(render([before, *afters], out / "report.html", title=title, noise=noise,
                           validation=out / seed_runs.VALIDATION if validation else None)) if render and w.main else None
        for after, checkpoint in zip(afters, checkpoints) if w.main else []:  # each card gets its test results
            model_card.add_test_results(checkpoint, after, before, out / "comparison.json")
        state.mark("done")
    runs_after = tuple(_opened(a) for a in afters)
    return Comparison(_opened(before), runs_after[0], checkpoints[0], page, runs_after, tuple(checkpoints), validation)


def _open_compare(model: str, zeroshot: Task, train_task: Task, cfg: FinetuneConfig, out: Path, *,
                  finetuned: str | None, data: str | None, limit: int | None, opts: Options,
                  yes: bool, seeds: tuple[int, ...] | None, noise_examples: int) -> compare_folder.CompareFolder:
    """OUT opened fresh (after the plan and time estimate) or resumed; its settings recorded in compare.json."""
    from harness.data.examples import load_examples
    from harness.training import estimate, trainer

    test, info = load_examples(zeroshot, data=data, split=opts.split, limit=limit, seed=opts.seed)
    train_content = None
    if finetuned is None or opts.train_data:
        with renamed_params(COMPARE_TRAIN_PARAMS):
            train_content = load_examples(train_task, data=opts.train_data, split=train_task.train_split)[1].fingerprint
    scoring = {"data": data, "split": opts.split, "limit": limit, "seed": opts.seed, "dtype": opts.dtype,
               "train_data": opts.train_data, "select_on": opts.select_on, "val_limit": opts.val_limit,
               **({"seeds": list(seeds)} if seeds is not None else {})}  # one seed keys as before --seeds
    key = compare_folder.settings(model, finetuned=finetuned, task=zeroshot.to_dict(), scoring=scoring,
                                 training=cfg if finetuned is None else None,
                                 fingerprints=(info.fingerprint, train_content))
    k = len(seeds or [cfg.seed]) if finetuned is None else 0
    state = distributed.on_main(lambda: compare_folder.open_folder(
        out, key, overwrite=opts.overwrite, seeds=tuple(seeds or [cfg.seed]) if k else ()))
    if finetuned is None and not state.resumed:  # the plan and a time estimate (all K fine-tunes) before anything
        noise = min(noise_examples, len(test)) * (1 + k)  # each model re-scores that many, one at a time
        around = estimate.Around(n_score=(1 + k) * len(test) + noise, fine_tunes=k,
                                 n_cached=cached_count(zeroshot, model, data=data, limit=limit, opts=opts),
                                 loads=k + 1 + (1 + k) * (2 if noise else 1))  # fine-tunes, validation check, scoring, noise
        with renamed_params(COMPARE_TRAIN_PARAMS):
            trainer.preflight(model, train_task, cfg, train_data=opts.train_data, yes=yes,
                              allow_pickle=opts.allow_pickle, around=around)
    return state


def _validation(state: compare_folder.CompareFolder, model: str, zeroshot: Task, train_task: Task,
                cfg: FinetuneConfig, checkpoints: list[Path], opts: Options) -> dict[str, Any]:
    """The validation check (seed_runs.validation_check), reused when a resumed compare recorded it."""
    def check() -> dict[str, Any]:
        done = state.recorded("validation")
        with renamed_params(COMPARE_TRAIN_PARAMS):
            record = done or seed_runs.validation_check(
                model, zeroshot, train_task, cfg, checkpoints, train_data=opts.train_data, device=opts.device,
                dtype=opts.dtype, batch_size=opts.batch_size, allow_pickle=opts.allow_pickle)
        seed_runs.write_validation(state.out, record)
        state.mark("the validation check", validation=record)
        return record

    return distributed.on_main(check)


def _scored(state: compare_folder.CompareFolder, tasks: list[Task], model: str, name: str, *, data: str | None,
            limit: int | None, opts: Options) -> Path:
    """The run folder OUT/runs/NAME: reused when a resumed compare finished it, else scored (or resumed)."""
    done = distributed.on_main(lambda: state.finished_run(state.out / "runs" / name))
    if done is not None:
        return done
    (run_dir,) = score_model(tasks, model, state.out / "runs", data=data, limit=limit, opts=opts, names=[name])
    return run_dir


def _finetuned(model: str, task: Task, cfg: FinetuneConfig, state: compare_folder.CompareFolder,
               opts: Options, seeds: int) -> Path:
    """OUT/finetuned (OUT/finetuned-seedS for one of several seeds): a finished fine-tune reused, an
    interrupted one resumed, else trained afresh."""
    from harness.training import trainer

    output = state.out / compare_folder.seed_folders(cfg.seed, seeds)[0]
    step = distributed.on_main(lambda: state.finetune_step(output))
    if step == "reuse":
        return output
    with renamed_params(COMPARE_TRAIN_PARAMS):
        trainer.finetune(model, task, output, cfg, train_data=opts.train_data, allow_pickle=opts.allow_pickle,
                          estimate=False, overwrite=step == "fresh", resume=step == "resume")
    distributed.barrier()  # rank 0 has written the checkpoint
    state.mark("fine-tuning")  # this seed's phase is recorded
    return output


def _opened(run_dir: Path) -> Run:
    """The finished run on rank 0; other ranks get its path only (rank 0 wrote the folder)."""
    return Run.load(run_dir) if distributed.world().main else Run(run_dir, {}, [])
