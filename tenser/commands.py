"""The bodies of the `tenser` subcommands: each takes parsed arguments and returns an exit
code. `tenser.parser` declares their flags; `tenser.cli` runs them and turns user errors into one line
and exit code 2.
Part of the composition root (the `tenser` package), so it may import `reports` and `demo`;
it does so lazily, so scoring never pulls in seaborn or gradio.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
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


def prepare_task(args: argparse.Namespace) -> Any:
    """Register --include files and return the task with -T overrides applied."""
    from tasks import get_family, get_task, include_file, list_families, list_tasks

    for path in args.include:
        include_file(path, trust_metrics=getattr(args, "trust_metrics", False))
    if args.task in {f.name for f in list_families()} and args.task not in {t.name for t in list_tasks()}:
        family = get_family(args.task)
        raise UserError(f"--task {args.task} is a task family; `tenser {args.command}` takes one of its tasks: "
                        f"--task {family.zeroshot} or --task {family.classifier}")
    return get_task(args.task, **_overrides(args.overrides))


def prepare_family(args: argparse.Namespace) -> Any:
    """Register --include files and return the family named by --task (a family or either of its tasks)."""
    from tasks import get_family, include_file

    for path in args.include:
        include_file(path, trust_metrics=getattr(args, "trust_metrics", False))
    return get_family(args.task)


def finetune_config(args: argparse.Namespace, limit: int | None) -> Any:
    """FinetuneConfig from parsed flags."""
    from harness.training.config import FinetuneConfig

    return FinetuneConfig(
        lr=args.lr, batch_size=args.train_batch_size, epochs=args.epochs, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, max_length=args.max_length, val_fraction=args.val_fraction,
        patience=args.patience, seed=args.seed, limit=limit, objective=args.objective, device=args.device,
        train_layers=args.train_layers,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lora_targets=tuple(t.strip() for t in args.lora_targets.split(",") if t.strip()),
    )


def cmd_tasks(args: argparse.Namespace) -> int:
    """The registered tasks, then the families (what compare/bench/demo --task take) with their members."""
    from tasks import include_file, list_families, list_tasks

    if getattr(args, "from_lm_eval", None):
        from tasks.lm_eval import convert_file

        print(convert_file(args.from_lm_eval), end="")
        return 0
    for path in args.include:
        include_file(path, trust_metrics=True)  # listing loads no metric module
    for task in list_tasks():
        print(f"{task.name:<24} {task.kind:<11} {task.dataset or '(--data)':<24} {task.description}")
    print("\nfamilies (tenser compare/bench/demo --task NAME):")
    for family in list_families():
        print(f"{family.name:<24} zeroshot {family.zeroshot}, classifier {family.classifier}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness import distributed
    from harness.recipes import jobs
    from harness.recipes.evaluation import Options, model_slugs, score_model, settings_suffix
    from tasks import prompt_variants
    from tasks.kinds import get_kind

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
    if (args.prompts == "all" or args.select_on) and not get_kind(task.kind).prompted:
        raise UserError(f"--prompts/--select-on apply to zeroshot tasks; {task.name!r} is a {task.kind} task")
    variants = prompt_variants(task) if args.prompts == "all" or args.select_on else [task]
    opts, suffix = Options.from_args(args), settings_suffix(task)
    run_dirs = [d for model, slug in zip(args.model, model_slugs(args.model))
                for d in score_model(variants, model, Path(args.out), data=args.data, limit=args.limit, opts=opts,
                                     slug=slug, suffix=suffix)]
    for run_dir in run_dirs if w.main else []:
        print(run_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports import render_report

    print(render_report(args.run_dirs, args.out, baseline=args.baseline, title=args.title, noise=args.noise))
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """Exit 0 when AFTER is non-inferior to BEFORE within --margin, 1 when not (2 on bad input, via UserError)."""
    from reports.gate import gate, summary_line, write_result

    result = gate(args.before, *args.after, metric=args.metric, margin=args.margin)
    if args.out:
        write_result(result, args.out)
    print(summary_line(result))
    return 0 if result.passed else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from harness.metrics.seed_power import seed_plan_lines
    from reports.power import plan_lines

    seeds = [] if args.seed_sd is None else seed_plan_lines(  # checked before anything prints
        seed_sd=args.seed_sd, change=args.change, n=args.n, discordance=args.discordance, alpha=args.alpha,
        power=args.power)
    for line in plan_lines(n=args.n, change=args.change, discordance=args.discordance, alpha=args.alpha,
                           power=args.power) + seeds:
        print(line)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from harness import api

    task = prepare_task(args)
    cfg = dataclasses.asdict(finetune_config(args, args.limit))
    out = api.finetune(args.model, task, output=args.output, data=args.data, overwrite=args.overwrite,
                       resume=args.resume, allow_pickle=args.allow_pickle, yes=args.yes,
                       keep_checkpoints=args.keep_checkpoints, **cfg)
    from harness import distributed

    if distributed.world().main:
        print(out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Score the pretrained model zero-shot, fine-tune (unless given), score again, report."""
    from harness import api, distributed
    from harness.recipes import seed_runs
    from harness.recipes.evaluation import Options
    from reports import render_report

    family = prepare_family(args)
    seeds = None if args.seeds is None else seed_runs.parse_seeds(args.seeds)
    done = api.compare(args.model, family, out=args.out, render=render_report, finetuned=args.finetuned, seeds=seeds,
                       data=args.data, limit=args.limit, train_limit=args.train_limit, overrides=_overrides(args.overrides),
                       training=finetune_config(args, args.train_limit), title=args.title, yes=args.yes,
                       noise_examples=args.noise_examples, **dataclasses.asdict(Options.from_args(args)))
    if not distributed.world().main:
        return 0
    print(done.pretrained.path)
    for run in done.seeds or (done.finetuned,):
        print(run.path)
    demo = demo_command(args.model, str(done.checkpoint), family.name, include=args.include, overrides=args.overrides,
                        train_data=args.train_data, trust_metrics=args.trust_metrics)
    print(f"try both models on your own text: {demo}", file=sys.stderr)
    print(done.report)
    return 0


def demo_command(pretrained: str, finetuned: str, task: str = "imdb", *, include: list[str] | None = None,
                 overrides: list[str] | None = None, train_data: str | None = None, trust_metrics: bool = False) -> str:
    """The `tenser demo` command line for two models on a task family, with the task files and -T it needs."""
    import shlex

    argv = ["tenser", "demo", "--pretrained", pretrained, "--finetuned", str(finetuned)]
    argv += ["--task", task] if task != "imdb" else []
    argv += [arg for path in include or [] for arg in ("--include", path)]
    argv += [arg for pair in overrides or [] for arg in ("-T", pair)]
    argv += ["--train-data", train_data] if train_data else []  # few-shot demonstrations come from it
    return shlex.join(argv + (["--trust-metrics"] if trust_metrics else []))


# The quickstart: the whole before/after job on what the package carries (no Hub, no GPU), sized for a
# 2-core CPU. Settings chosen on a validation split carved from IMDB train (README, "Quickstart").
QUICKSTART = ["--model", "embedded:smollm2", "--data", "embedded:imdb", "--train-data", "embedded:imdb",
              "--limit", "200", "--train-limit", "1000", "--objective", "prompt", "--epochs", "1",
              "--max-length", "256", "--train-layers", "2", "--lr", "1e-4", "-T", "max_tokens=256",
              "--title", "SmolLM2-135M-Instruct on IMDB: zero-shot vs fine-tuned (Tenser quickstart)"]


def cmd_quickstart(args: argparse.Namespace) -> int:
    """`tenser compare` on the embedded model and IMDB sample; prints the command it runs."""
    import shlex

    from harness.training.estimate import TooLong
    from tenser.parser import build_parser

    argv = ["compare", *QUICKSTART, "--out", args.out, *(["--overwrite"] if args.overwrite else []),
            *(["--yes"] if args.yes else [])]
    print(f"running: tenser {shlex.join(argv)}", file=sys.stderr, flush=True)
    try:
        code = cmd_compare(build_parser().parse_args(argv))
    except TooLong as exc:  # its sizes are already the smallest that teach anything: only --yes is left to say
        raise UserError(f"{exc}".split(";")[0].replace("this compare", "the quickstart") + " (README: about 7 min on "
                        "2 idle cores; is the CPU busy?); run `tenser quickstart --yes` to go ahead anyway") from None
    print(f"next: is the gain real, or a lucky seed? Fine-tune with 3 training seeds (about 3x the fine-tuning "
          f"time):\n  {seeds_command(args.out)}", file=sys.stderr)
    return code


def seeds_command(out: str) -> str:
    """The quickstart's compare with three training seeds, into a folder of its own: the command to run next."""
    import shlex

    title = QUICKSTART.index("--title")  # the quickstart's title would mislabel the seeds' report
    argv = QUICKSTART[:title] + QUICKSTART[title + 2:] + ["--seeds", "0,1,2", "--out", f"{out.rstrip('/')}-seeds"]
    return shlex.join(["tenser", "compare", *argv])


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.data.examples import load_examples
    from harness.recipes import bench

    family = prepare_family(args)
    ways = tuple(w.strip() for w in args.ways.split(","))
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: give 1 or more")
    unknown = [w for w in ways if w not in bench.WAYS] or ["tenser"] * ("tenser" not in ways)
    if unknown:
        raise UserError(f"--ways {args.ways!r}: choose from {', '.join(bench.WAYS)} (tenser included)")
    pairs = [("zeroshot", args.model)] + ([("classifier", args.classifier)] if args.classifier else [])
    results = []
    for kind, model in pairs:
        task = family.task(kind, **_overrides(args.overrides))
        examples, _ = load_examples(task, data=args.data, limit=args.limit, seed=args.seed)
        results.append(bench.bench_task(task, model, examples, device=args.device, dtype=args.dtype,
                                        batch_size=args.batch_size, ways=ways, compile=args.compile,
                                        allow_pickle=args.allow_pickle, repeats=args.repeats,
                                        prefix_cache=not args.no_prefix_cache, train_data=args.train_data,
                                        seed=args.seed))
    training = None
    if args.finetune_examples:
        task = family.task("classifier", **_overrides(args.overrides))
        examples, _ = load_examples(task, data=args.train_data, split=task.train_split,
                                    limit=args.finetune_examples, seed=args.seed)
        training = bench.bench_finetune(args.model, task, examples, device=args.device, allow_pickle=args.allow_pickle)
    bench.write_outputs(results, training, Path(args.out))
    print(Path(args.out) / "bench.md")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from demo.app import serve  # lazy: gradio loads for this command only

    family = prepare_family(args)
    serve(args.pretrained, args.finetuned, task=family.name, overrides=_overrides(args.overrides),
          train_data=args.train_data, seed=args.seed, host=args.host, port=args.port, share=args.share,
          device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle, prefix_cache=not args.no_prefix_cache)
    return 0
