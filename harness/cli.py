"""The `tenser` command line. User errors print one line and exit with code 2.

Subcommands: `tasks`, `run`, `finetune`, `compare`, `report`. This module is the
composition root: it may import `reports` and `demo`, lazily, so scoring never pulls in
seaborn or gradio.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError

EXIT_USER_ERROR = 2


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="tenser", description="Evaluate text classifiers built from language models.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("tasks", help="list registered tasks", formatter_class=fmt)
    p.add_argument("--include", action="append", default=[], metavar="FILE")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("run", help="score model(s) on a task and write run folders", formatter_class=fmt)
    p.add_argument("--model", action="append", required=True, help="Hub id or local folder; repeat for several")
    p.add_argument("--out", default="runs", help="parent folder; each run goes to OUT/TASK__MODEL")
    add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="render run folders into one HTML report", formatter_class=fmt)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="report.html", help="HTML file to write")
    p.add_argument("--baseline", help="run folder to compare the others against (default: the first)")
    p.add_argument("--title", help="report title")
    p.set_defaults(func=cmd_report)
    return parser


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
    task = prepare_task(args)
    run_dirs = [run_one(task, model, args, Path(args.out) / f"{task.name}__{model_slug(model)}") for model in args.model]
    for run_dir in run_dirs[:-1]:
        print(run_dir)
    print(run_dirs[-1])
    return 0


def run_one(task: Any, model: str, args: argparse.Namespace, run_dir: Path) -> Path:
    """Load data and model, score, write `run_dir`; print a one-line summary."""
    from harness import runs
    from harness.data import load_examples
    from harness.models import load_model
    from harness.runner import evaluate

    runs.prepare_run_dir(run_dir, overwrite=args.overwrite)
    examples, info = load_examples(task, data=args.data, split=args.split, limit=args.limit, seed=args.seed)
    t0 = time.perf_counter()
    kind = "causal_lm" if task.kind == "zeroshot" else "classifier"
    loaded = load_model(model, kind, device=args.device, dtype=args.dtype)
    results = evaluate(task, loaded, examples, info, run_dir, batch_size=args.batch_size,
                       load_s=time.perf_counter() - t0)
    m = results["metrics"]
    print(f"{task.name} | {model} | n={m['n']} accuracy={m['accuracy']:.4f} f1_macro={m['f1_macro']:.4f} "
          f"loss={m['loss']:.4f} | {results['timings']['examples_per_s']:.1f} ex/s", file=sys.stderr)
    return run_dir


def cmd_report(args: argparse.Namespace) -> int:
    from reports import render_report

    print(render_report(args.run_dirs, args.out, baseline=args.baseline, title=args.title))
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
        print(f"tenser {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"tenser {args.command}: interrupted; scored predictions so far are kept in the run folder",
              file=sys.stderr)
        return 130
