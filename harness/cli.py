"""The `tenser` command line. User errors print one line and exit with code 2.

Subcommands: `tasks`, `run`, `finetune`, `compare`, `report`, `bench`, `demo`. This module is the
composition root: it may import `reports` and `demo`, lazily, so scoring never pulls in
seaborn or gradio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError

EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus where to look) and exit code 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _batch_size(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give a positive whole number or 'auto'")
    return int(value)


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"-T {pair!r}: write it as field=value, e.g. -T max_tokens=512")
        out[key.strip()] = value
    return out


def add_common(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that scores: task, data, sampling, device."""
    p.add_argument("--task", default="imdb_zeroshot", help="registered task name (see `tenser tasks`)")
    p.add_argument("--data", help="local data: parquet/CSV/JSONL file, aclImdb-style or save_to_disk folder "
                                  "(default: the task's Hub dataset)")
    p.add_argument("--split", help="split to score (default: the task's)")
    p.add_argument("--limit", type=int, help="score a seeded sample of N examples, stratified by label")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--batch-size", type=_batch_size, default="auto", help="examples per batch, or auto")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (auto: cuda > mps > cpu)")
    p.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16 (auto: bf16 on capable GPUs)")
    p.add_argument("--include", action="append", default=[], metavar="FILE",
                   help="register tasks from a .py/.toml/.json file (runs the file's code)")
    p.add_argument("-T", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a task field, e.g. -T max_tokens=512")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    p.add_argument("--no-cache", action="store_true", help="score every example again instead of reusing cached "
                                                          "scores ($TENSER_CACHE, default ~/.cache/tenser)")
    p.add_argument("--allow-pickle", action="store_true", help="load pickle weights (pytorch_model.bin) when a "
                                                              "checkpoint has no safetensors; pickle can run code")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = Parser(prog="tenser", description="Evaluate text classifiers built from language models.",
                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("tasks", help="list registered tasks", formatter_class=fmt)
    p.add_argument("--include", action="append", default=[], metavar="FILE")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("run", help="score model(s) on a task and write run folders", formatter_class=fmt)
    p.add_argument("--model", action="append", help="Hub id or local folder; repeat for several (required "
                                                    "unless --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help="finish the interrupted run in RUN_DIR (re-running the same "
                                                       "command resumes it too)")
    p.add_argument("--out", default="runs", help="parent folder; each run goes to OUT/TASK__MODEL")
    p.add_argument("--prompts", choices=("default", "all"), default="default",
                   help="zeroshot: score the task's prompt, or every prompt variant (sensitivity)")
    p.add_argument("--select-on", choices=("validation",), help="pick the prompt variant with the best accuracy "
                                                                 "on a validation split carved from train")
    p.add_argument("--val-limit", type=int, default=200, help="validation examples for --select-on")
    p.add_argument("--train-data", help="local train split for few-shot (-T shots=k) and --select-on")
    add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="render run folders into one HTML report", formatter_class=fmt)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="report.html", help="HTML file to write")
    p.add_argument("--baseline", help="run folder to compare the others against (default: the first)")
    p.add_argument("--title", help="report title")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("finetune", help="fine-tune a model on a task's training split (HF Trainer)",
                       formatter_class=fmt)
    p.add_argument("--model", required=True, help="Hub id or local folder of the model to fine-tune")
    p.add_argument("--task", default="imdb_classifier", help="classifier task (or a zeroshot task with "
                                                             "--objective prompt)")
    p.add_argument("--output", required=True, help="folder for the fine-tuned checkpoint")
    p.add_argument("--data", help="local training data (default: the task's Hub dataset, train split)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fine-tune in --output")
    p.add_argument("--allow-pickle", action="store_true", help="load pickle weights (pytorch_model.bin); pickle can "
                                                              "run code")
    add_train_flags(p)
    p.add_argument("--include", action="append", default=[], metavar="FILE")
    p.add_argument("-T", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --output")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("compare", help="the whole job: score pretrained, fine-tune, score fine-tuned, report",
                       formatter_class=fmt)
    p.add_argument("--model", required=True, help="pretrained model: Hub id or local folder")
    p.add_argument("--finetuned", help="an already fine-tuned checkpoint folder (skips fine-tuning)")
    p.add_argument("--out", required=True, help="folder for run folders, the checkpoint and report.html")
    p.add_argument("--train-data", help="local training data (default: the task's Hub dataset, train split)")
    p.add_argument("--train-limit", type=int, help="fine-tune on a stratified sample of N training examples")
    p.add_argument("--title", help="report title")
    add_common(p)
    add_train_flags(p, limit=False)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="time Tenser's scoring against seed-style and one-at-a-time baselines",
                       formatter_class=fmt)
    p.add_argument("--model", required=True, help="causal LM for zeroshot tasks")
    p.add_argument("--classifier", help="sequence-classification checkpoint, to bench classifier tasks too")
    p.add_argument("--data", help="local data for the test split (default: the task's Hub dataset)")
    p.add_argument("--train-data", help="local training data, for --finetune-steps")
    p.add_argument("--limit", type=int, default=200, help="examples to score (stratified sample)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--batch-size", type=_batch_size, default="auto", help="Tenser's batch size")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--dtype", default="auto", help="Tenser's dtype (the baselines run in float32)")
    p.add_argument("--ways", default="tenser,seed_style,one_at_a_time", help="comma-separated ways to time")
    p.add_argument("--finetune-examples", type=int, default=0,
                   help="also time one fine-tuning epoch over N training examples per way")
    p.add_argument("--out", default="bench", help="folder for bench.json and bench.md")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="web demo: a pretrained and a fine-tuned model side by side", formatter_class=fmt)
    p.add_argument("--pretrained", required=True, help="causal LM (Hub id or folder), scored zero-shot with imdb_zeroshot")
    p.add_argument("--finetuned", required=True,
                   help="folder saved by `tenser finetune`: a ...ForSequenceClassification (imdb_classifier) "
                        "or a prompt-tuned causal LM (imdb_zeroshot)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (auto: cuda > mps > cpu)")
    p.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16 (auto: bf16 on capable GPUs)")
    p.set_defaults(func=cmd_demo)
    return parser


def add_train_flags(p: argparse.ArgumentParser, *, limit: bool = True) -> None:
    """Fine-tuning hyperparameters; defaults are FinetuneConfig's (the seed project's)."""
    from harness.finetune import FinetuneConfig

    d = FinetuneConfig()
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--objective", choices=("classifier", "prompt"), default=d.objective,
                   help="train a classification head, or the LM on prompt + label word")
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    g.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="share of steps warming up")
    g.add_argument("--max-length", type=int, default=d.max_length, help="tokens per training review")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="validation share carved from train")
    g.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs")
    size_flag = "--batch-size" if limit else "--train-batch-size"
    g.add_argument(size_flag, dest="train_batch_size", type=int, default=d.batch_size,
                   help="training batch size per device")
    if limit:
        g.add_argument("--limit", type=int, help="train on a stratified sample of N examples")
        g.add_argument("--seed", type=int, default=d.seed, help="seed for sampling, the split and training")
        g.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")


def finetune_config(args: argparse.Namespace, limit: int | None) -> Any:
    """FinetuneConfig from parsed flags."""
    from harness.finetune import FinetuneConfig

    return FinetuneConfig(
        lr=args.lr, batch_size=args.train_batch_size, epochs=args.epochs, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, max_length=args.max_length, val_fraction=args.val_fraction,
        patience=args.patience, seed=args.seed, limit=limit, objective=args.objective, device=args.device,
    )


def model_slug(name: str) -> str:
    """A folder-safe short name for a model id or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.rstrip("/")).name or name).strip("-") or "model"


def prepare_task(args: argparse.Namespace) -> Any:
    """Register --include files and return the task with -T overrides applied."""
    from tasks import get_task, include_file

    for path in args.include:
        include_file(path)
    return get_task(args.task, **_overrides(args.overrides))


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
    loaded = load_model(model, kind, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)
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

    print(render_report(args.run_dirs, args.out, baseline=args.baseline, title=args.title))
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
    unknown = [w for w in ways if w not in ("tenser", "seed_style", "one_at_a_time")] or ["tenser"] * ("tenser" not in ways)
    if unknown:
        raise UserError(f"--ways {args.ways!r}: choose from tenser, seed_style, one_at_a_time (tenser included)")
    pairs = [("imdb_zeroshot", args.model)] + ([("imdb_classifier", args.classifier)] if args.classifier else [])
    results = []
    for name, model in pairs:
        task = get_task(name)
        examples, _ = load_examples(task, data=args.data, limit=args.limit, seed=args.seed)
        results.append(bench.bench_task(task, model, examples, device=args.device, dtype=args.dtype,
                                        batch_size=args.batch_size, ways=ways))
    training = None
    if args.finetune_examples:
        task = get_task("imdb_classifier")
        examples, _ = load_examples(task, data=args.train_data, split=task.train_split,
                                    limit=args.finetune_examples, seed=args.seed)
        training = bench.bench_finetune(args.model, task, examples, device=args.device)
    bench.write_outputs(results, training, Path(args.out))
    print(Path(args.out) / "bench.md")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from demo.app import serve  # lazy: gradio loads for this command only

    serve(args.pretrained, args.finetuned, host=args.host, port=args.port, share=args.share,
          device=args.device, dtype=args.dtype)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tenser` console script."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    from tasks import TaskError

    try:
        return int(args.func(args))
    except (UserError, TaskError) as exc:
        from harness.distributed import PeerError

        if not (isinstance(exc, PeerError) and os.environ.get("RANK", "0") != "0"):  # rank 0 reports it
            print(f"tenser {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        from harness.jobs import interrupted_message

        kept = interrupted_message(exc, args.command, getattr(args, "output", None))
        print(f"tenser {args.command}: interrupted; {kept}", file=sys.stderr)
        return 130
    finally:
        from harness.distributed import shutdown

        shutdown()
