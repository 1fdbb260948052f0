"""The bodies of the `tenser` subcommands: each takes parsed arguments and returns an exit
code. `harness.cli` builds the parser and turns user errors into one line and exit code 2.
This is the composition root: it may import `reports` and `demo`, lazily, so scoring never
pulls in seaborn or gradio.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"-T {pair!r}: write it as field=value, e.g. -T max_tokens=512")
        out[key.strip()] = value
    return out


def model_slug(name: str) -> str:
    """A folder-safe short name for a model id or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.rstrip("/")).name or name).strip("-") or "model"


def prepare_task(args: argparse.Namespace) -> Any:
    """Register --include files and return the task with -T overrides applied."""
    from tasks import get_task, include_file

    for path in args.include:
        include_file(path)
    return get_task(args.task, **_overrides(args.overrides))


def finetune_config(args: argparse.Namespace, limit: int | None) -> Any:
    """FinetuneConfig from parsed flags."""
    from harness.finetune import FinetuneConfig

    return FinetuneConfig(
        lr=args.lr, batch_size=args.train_batch_size, epochs=args.epochs, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, max_length=args.max_length, val_fraction=args.val_fraction,
        patience=args.patience, seed=args.seed, limit=limit, objective=args.objective, device=args.device,
    )


def cmd_tasks(args: argparse.Namespace) -> int:
    from tasks import include_file, list_tasks

    for path in args.include:
        include_file(path)
    for task in list_tasks():
        print(f"{task.name:<24} {task.kind:<11} {task.dataset:<24} {task.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness import distributed, jobs
    from tasks import prompt_variants

    w = distributed.init()
    if args.resume and args.model:
        raise UserError("--resume RUN_DIR takes the model, task and data from RUN_DIR/run.json; drop --model")
    if args.resume:
        results, job = jobs.resume(Path(args.resume), use_cache=not args.no_cache, allow_pickle=args.allow_pickle)
        jobs.summary(job["name"], job["model"], results)
        if w.main:
            print(args.resume)
        return 0
    if not args.model:
        raise UserError("give --model MODEL (a Hub id or local folder), or --resume RUN_DIR to finish a run")
    task = prepare_task(args)
    if (args.prompts == "all" or args.select_on) and task.kind != "zeroshot":
        raise UserError(f"--prompts/--select-on apply to zeroshot tasks; {task.name!r} is a {task.kind} task")
    variants = prompt_variants(task) if args.prompts == "all" or args.select_on else [task]
    run_dirs = [d for model in args.model for d in score_model(variants, model, args, Path(args.out))]
    for run_dir in run_dirs if w.main else []:
        print(run_dir)
    return 0


def score_model(tasks: list[Any], model: str, args: argparse.Namespace, out: Path,
                names: list[str] | None = None) -> list[Path]:
    """Load `model` once, score it on each task (prompt variants), write one run folder each
    (named `names`, default TASK__MODEL)."""
    from harness import distributed, jobs, prompting, runs
    from harness.data import load_examples
    from harness.models import ModelKind, load_model

    examples, info = load_examples(tasks[0], data=args.data, split=args.split, limit=args.limit, seed=args.seed)
    t0 = time.perf_counter()
    kind: ModelKind = "causal_lm" if tasks[0].kind == "zeroshot" else "classifier"
    loaded = load_model(model, kind, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle,
                        compile=args.compile)
    load_s = time.perf_counter() - t0
    exclude = {e.id for e in examples} | {e.text for e in examples}
    shots = [prompting.add_demonstrations(t, loaded, train_data=args.train_data, seed=args.seed, exclude=exclude)
             for t in tasks]
    extra: dict[str, Any] = {}
    if getattr(args, "select_on", None):
        val = prompting.validation_examples(tasks[0], train_data=args.train_data, limit=args.val_limit, seed=args.seed)
        val = [e for e in val if not any(e.id == d["id"] for _, r in shots if r for d in r["demonstrations"])]
        best, extra["prompt_selection"] = prompting.select_prompt([t for t, _ in shots], loaded, val,
                                                                  batch_size=args.batch_size, seed=args.seed)
        keep = [i for i, (t, _) in enumerate(shots) if t.name == best.name]
        shots, tasks = [shots[i] for i in keep], [tasks[i] for i in keep]
    run_dirs, accuracies = [], {}
    names = names or [f"{t.name}__{model_slug(model)}" for t in tasks]
    for (task, demos), original, name in zip(shots, tasks, names):
        more = {**extra, **({"fewshot": demos} if demos else {})}
        spec = jobs.job_spec(task, loaded, info, model=model, kind=kind, data=args.data, device=args.device,
                             batch_size=args.batch_size, name=original.name, extra=more)
        results = jobs.run_job(task, loaded, examples, info, out / name, spec=spec, overwrite=args.overwrite,
                               batch_size=args.batch_size, use_cache=not args.no_cache, load_s=load_s, extra=more)
        accuracies[original.name] = results["metrics"]["accuracy"]
        jobs.summary(original.name, model, results)
        run_dirs.append(out / name)
    if len(run_dirs) > 1 and distributed.world().main:
        spread = prompting.sensitivity(accuracies)
        runs.write_atomic(out / f"prompt_sensitivity__{model_slug(model)}.json", json.dumps(spread, indent=2) + "\n")
        print(f"prompt sensitivity | {model} | accuracy mean={spread['mean']:.4f} std={spread['std']:.4f} "
              f"min={spread['min']:.4f} max={spread['max']:.4f}", file=sys.stderr)
    return run_dirs


def cmd_report(args: argparse.Namespace) -> int:
    from reports import render_report

    print(render_report(args.run_dirs, args.out, baseline=args.baseline, title=args.title, noise=args.noise))
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """Exit 0 when AFTER is non-inferior to BEFORE within --margin, 1 when not (2 on bad input, via UserError)."""
    from reports.gate import gate, summary_line, write_result

    result = gate(args.before, args.after, metric=args.metric, margin=args.margin)
    write_result(result, args.out)
    print(summary_line(result))
    return 0 if result.passed else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from reports.power import plan_lines

    for line in plan_lines(n=args.n, change=args.change, discordance=args.discordance, alpha=args.alpha,
                           power=args.power):
        print(line)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from harness.training import finetune

    task = prepare_task(args)
    out = finetune(args.model, task, args.output, finetune_config(args, args.limit), train_data=args.data,
                   overwrite=args.overwrite, resume=args.resume, allow_pickle=args.allow_pickle)
    from harness import distributed

    if distributed.world().main:
        print(out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Score the pretrained model zero-shot, fine-tune (unless given), score again, report."""
    from harness import distributed, runs
    from harness.training import finetune
    from tasks import get_task

    out = Path(args.out)
    w = distributed.init()
    distributed.on_main(lambda: runs.prepare_run_dir(out, overwrite=args.overwrite))
    args.overwrite = True  # sub-folders of a fresh --out
    zeroshot = prepare_task(argparse.Namespace(**{**vars(args), "task": "imdb_zeroshot"}))
    run_dirs: list[str | Path] = [*score_model([zeroshot], args.model, args, out / "runs", [f"pretrained__{zeroshot.name}"])]
    finetuned = args.finetuned
    if finetuned is None:
        task = get_task("imdb_classifier" if args.objective == "classifier" else "imdb_zeroshot")
        finetuned = str(finetune(args.model, task, out / "finetuned", finetune_config(args, args.train_limit),
                                 train_data=args.train_data, allow_pickle=args.allow_pickle))
        distributed.barrier()  # rank 0 has written the checkpoint
    kind = finetuned_kind(finetuned)
    names = ["imdb_classifier"] if kind == "classifier" else ["imdb_zeroshot"]
    for name in names:
        task = prepare_task(argparse.Namespace(**{**vars(args), "task": name}))
        run_dirs += score_model([task], finetuned, args, out / "runs", [f"finetuned__{name}"])
    if not w.main:
        return 0
    for run_dir in run_dirs:
        print(run_dir)
    from reports import render_report

    print(render_report(run_dirs, out / "report.html", title=args.title))
    return 0


def finetuned_kind(folder: str) -> str:
    """`classifier` for a sequence-classification checkpoint, `causal_lm` for a prompt-tuned LM."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        raise UserError(f"--finetuned {folder}: not a model folder (no config.json); give `tenser finetune`'s --output")
    import json

    archs = json.loads(config.read_text()).get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "classifier"
    if not (Path(folder) / "training_log.json").is_file():
        raise UserError(f"--finetuned {folder}: not a fine-tuned classifier (architectures: {', '.join(archs)}); "
                        f"fine-tune one with tenser finetune")
    return "causal_lm"


def cmd_bench(args: argparse.Namespace) -> int:
    from harness import bench
    from harness.data import load_examples
    from tasks import get_task

    ways = tuple(w.strip() for w in args.ways.split(","))
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: give 1 or more")
    unknown = [w for w in ways if w not in ("tenser", "seed_style", "one_at_a_time")] or ["tenser"] * ("tenser" not in ways)
    if unknown:
        raise UserError(f"--ways {args.ways!r}: choose from tenser, seed_style, one_at_a_time (tenser included)")
    pairs = [("imdb_zeroshot", args.model)] + ([("imdb_classifier", args.classifier)] if args.classifier else [])
    results = []
    for name, model in pairs:
        task = get_task(name)
        examples, _ = load_examples(task, data=args.data, limit=args.limit, seed=args.seed)
        results.append(bench.bench_task(task, model, examples, device=args.device, dtype=args.dtype,
                                        batch_size=args.batch_size, ways=ways, compile=args.compile,
                                        allow_pickle=args.allow_pickle, repeats=args.repeats))
    training = None
    if args.finetune_examples:
        task = get_task("imdb_classifier")
        examples, _ = load_examples(task, data=args.train_data, split=task.train_split,
                                    limit=args.finetune_examples, seed=args.seed)
        training = bench.bench_finetune(args.model, task, examples, device=args.device, allow_pickle=args.allow_pickle)
    bench.write_outputs(results, training, Path(args.out))
    print(Path(args.out) / "bench.md")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from demo.app import serve  # lazy: gradio loads for this command only

    serve(args.pretrained, args.finetuned, host=args.host, port=args.port, share=args.share,
          device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)
    return 0
