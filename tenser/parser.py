"""The `tenser` argument parser: one function per subcommand, and the flags they share.

Kept apart from `tenser.cli` (which runs the chosen command) and `tenser.commands` (their bodies)
so that either may build the parser without importing the other.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.metrics import catalog

EXIT_USER_ERROR = 2
FMT = argparse.ArgumentDefaultsHelpFormatter


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
    add_precision(p)
    add_task_files(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    p.add_argument("--no-cache", action="store_true", help="score every example again instead of reusing cached "
                                                          "scores ($TENSER_CACHE, default ~/.cache/tenser)")
    add_allow_pickle(p)


def add_precision(p: argparse.ArgumentParser, *, compile: bool = True) -> None:
    """--dtype (and --compile): how a scoring model runs."""
    p.add_argument("--dtype", default="auto", help="auto|mixed|float32|bfloat16|float16 (auto: mixed on GPUs with "
                   "bf16, else float32; mixed: bf16 speed, near-ties scored again in fp32 so predictions match float32)")
    if compile:
        p.add_argument("--compile", action="store_true", help="torch.compile the model body (compiling takes a "
                       "while first; see BENCHMARKS.md for when it pays)")
    p.add_argument("--no-prefix-cache", action="store_true", help="zero-shot: run every input's whole prompt "
                   "instead of the inputs' shared prefix (demonstrations, instruction, chat header) once; same scores")


def add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="run even when the estimate says the job takes over an hour "
                                                     "on a CPU")


def add_family(p: argparse.ArgumentParser) -> None:
    """--task (a family or either of its tasks), --include and -T for commands that use both tasks of a family."""
    p.add_argument("--task", default="imdb", help="task family, or either of its tasks (see `tenser tasks`)")
    add_task_files(p, example="calibration=contextual")


def add_task_files(p: argparse.ArgumentParser, *, example: str = "max_tokens=512") -> None:
    """--include, -T and --trust-metrics: where tasks come from and how their fields are overridden."""
    p.add_argument("--include", action="append", default=[], metavar="FILE",
                   help="register tasks from a .py/.toml/.json file (a .py file runs its code)")
    p.add_argument("-T", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override a task field, e.g. -T {example}")
    add_trust_metrics(p)


def add_trust_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-metrics", action="store_true", help="let a TOML/JSON task file's `metrics` load its "
                                                               "evaluate modules, which run code")


def add_allow_pickle(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-pickle", action="store_true", help="load pickle weights (pytorch_model.bin) when a "
                                                              "checkpoint has no safetensors; pickle can run code")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (the chosen one is `args.command`)."""
    parser = Parser(prog="tenser", description="Evaluate text classifiers built from language models.",
                    formatter_class=FMT)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def add_tasks(sub: Any) -> None:
    """`tenser tasks`."""
    p = sub.add_parser("tasks", help="list registered tasks and task families", formatter_class=FMT)
    p.add_argument("--include", action="append", default=[], metavar="FILE")
    p.add_argument("--from-lm-eval", metavar="YAML", help="print an lm-evaluation-harness task YAML as a Tenser "
                                                          "task file (TOML) instead of listing tasks")


def add_run(sub: Any) -> None:
    """`tenser run`."""
    p = sub.add_parser("run", help="score model(s) on a task and write run folders", formatter_class=FMT)
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


def add_report(sub: Any) -> None:
    """`tenser report`."""
    p = sub.add_parser("report", help="render run folders into one HTML report", formatter_class=FMT)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="report.html", help="HTML file to write")
    p.add_argument("--baseline", help="run folder to compare the others against (default: the first)")
    p.add_argument("--title", help="report title")
    p.add_argument("--noise", metavar="BENCH_JSON", help="bench.json from `tenser bench`: its fp32 batch-1 vs "
                                                        "Tenser-default flips set the noise floor of every change")


def add_gate(sub: Any) -> None:
    """`tenser gate`: a paired non-inferiority check for CI."""
    p = sub.add_parser("gate", help="CI regression gate: exit 0 when AFTER is non-inferior to BEFORE, 1 when not",
                       formatter_class=FMT)
    p.add_argument("before", metavar="BEFORE_RUN", help="run folder of the reference (e.g. the released model)")
    p.add_argument("after", metavar="AFTER_RUN", nargs="+", help="run folder of the candidate, scored on the same "
                   "examples; several (one per training seed) gate on the pooled lower bound across seeds")
    p.add_argument("--metric", default="accuracy", help=" or ".join(catalog.gated()))
    p.add_argument("--margin", type=float, default=0.01, help="largest acceptable drop (0.01 = 1 point)")
    p.add_argument("--out", help="JSON file for the decision (without it, only the summary line is printed)")


def add_plan(sub: Any) -> None:
    """`tenser plan`: power and sample size."""
    p = sub.add_parser("plan", help="power: the smallest detectable change for N examples, or the N a change needs",
                       formatter_class=FMT)
    p.add_argument("--n", type=int, help="examples planned: print the minimum detectable accuracy change")
    p.add_argument("--change", type=float, help="accuracy change to detect (0.02 = 2 points): print the n needed")
    p.add_argument("--discordance", type=float, default=0.15, help="assumed share of examples on which exactly "
                   "one run is right (a report's comparison.json gives the observed one)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level")
    p.add_argument("--power", type=float, default=0.8, help="power")
    p.add_argument("--seed-sd", type=float, help="measured seed-to-seed SD of accuracy (0.02 = 2 points): also print "
                   "the training seeds and test examples --change needs")


def add_finetune(sub: Any) -> None:
    """`tenser finetune`."""
    p = sub.add_parser("finetune", help="fine-tune a model on a task's training split (HF Trainer)",
                       formatter_class=FMT)
    p.add_argument("--model", required=True, help="Hub id or local folder of the model to fine-tune")
    p.add_argument("--task", default="imdb_classifier", help="classifier task (or a zeroshot task with "
                                                             "--objective prompt)")
    p.add_argument("--output", required=True, help="folder for the fine-tuned checkpoint")
    p.add_argument("--data", help="local training data (default: the task's Hub dataset, train split)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fine-tune in --output")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep every epoch's Trainer checkpoint in "
                   "OUTPUT/checkpoints (score them with tenser run, then tenser report draws the curve)")
    add_allow_pickle(p)
    add_train_flags(p)
    add_task_files(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --output")
    add_yes(p)


def add_compare(sub: Any) -> None:
    """`tenser compare`."""
    p = sub.add_parser("compare", help="the whole job: score pretrained, fine-tune, score fine-tuned, report",
                       formatter_class=FMT)
    p.add_argument("--model", required=True, help="pretrained model: Hub id or local folder")
    p.add_argument("--finetuned", help="an already fine-tuned checkpoint folder (skips fine-tuning)")
    p.add_argument("--out", required=True, help="folder for run folders, the checkpoint and report.html")
    p.add_argument("--train-data", help="local training data (default: the task's Hub dataset, train split)")
    p.add_argument("--train-limit", type=int, help="fine-tune on a stratified sample of N training examples")
    p.add_argument("--title", help="report title")
    p.add_argument("--seeds", metavar="S,S,...", help="fine-tune once per training seed (head init, data order, "
                   "dropout; same data, validation carve and settings), e.g. 0,1,2; the report pools them "
                   "(default: one fine-tune with --seed)")
    p.add_argument("--noise-examples", type=int, default=32, metavar="N",
                   help="noise floor: re-score N seeded, stratified test examples with each model in float32 at "
                        "batch size 1 and count the predictions that differ from the run's (OUT/noise.json); 0 = off")
    add_common(p)
    add_train_flags(p, limit=False)
    add_yes(p)


def add_quickstart(sub: Any) -> None:
    """`tenser quickstart`."""
    p = sub.add_parser("quickstart", help="the whole before/after job offline: embedded SmolLM2-135M-Instruct and "
                                          "bundled IMDB reviews, sized for a CPU (a few minutes)", formatter_class=FMT)
    p.add_argument("--out", default="runs/quickstart", help="folder for run folders, the checkpoint and report.html")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    add_yes(p)


def add_bench(sub: Any) -> None:
    """`tenser bench`."""
    p = sub.add_parser("bench", help="time Tenser's scoring against seed-style and one-at-a-time baselines",
                       formatter_class=FMT)
    add_family(p)
    p.add_argument("--model", required=True, help="causal LM for zeroshot tasks")
    p.add_argument("--classifier", help="sequence-classification checkpoint, to bench classifier tasks too")
    p.add_argument("--data", help="local data for the test split (default: the task's Hub dataset)")
    p.add_argument("--train-data", help="local training data, for -T shots=k and --finetune-examples")
    p.add_argument("--limit", type=int, default=200, help="examples to score (stratified sample)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--batch-size", type=_batch_size, default="auto", help="Tenser's batch size")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    add_precision(p)  # Tenser's; the baselines run in float32, eager
    add_allow_pickle(p)
    p.add_argument("--ways", default="tenser,tenser_no_prefix,seed_style,one_at_a_time",
                   help="comma-separated ways to time")
    p.add_argument("--repeats", type=int, default=1, help="time every way N times, alternating their order; the "
                                                         "fastest counts (all are saved)")
    p.add_argument("--finetune-examples", type=int, default=0,
                   help="also time one fine-tuning epoch over N training examples per way")
    p.add_argument("--out", default="bench", help="folder for bench.json and bench.md")


def add_demo(sub: Any) -> None:
    """`tenser demo`."""
    p = sub.add_parser("demo", help="web demo: a pretrained and a fine-tuned model side by side", formatter_class=FMT)
    add_family(p)
    p.add_argument("--train-data", help="local train split for the task's few-shot demonstrations (-T shots=k)")
    p.add_argument("--seed", type=int, default=0, help="seed of the few-shot draw (as in `tenser run`)")
    p.add_argument("--pretrained", required=True, help="causal LM (Hub id or folder), scored on the family's zero-shot task")
    p.add_argument("--finetuned", required=True,
                   help="folder saved by `tenser finetune`: a ...ForSequenceClassification (the family's "
                        "classifier task) or a prompt-tuned causal LM (its zero-shot task)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (auto: cuda > mps > cpu)")
    add_precision(p, compile=False)
    add_allow_pickle(p)


def add_train_flags(p: argparse.ArgumentParser, *, limit: bool = True) -> None:
    """Fine-tuning hyperparameters; defaults are FinetuneConfig's (the seed project's)."""
    from harness.training.config import FinetuneConfig

    d = FinetuneConfig()
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--objective", choices=("classifier", "prompt"), default=d.objective,
                   help="train a classification head, or the LM on prompt + label word")
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    g.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="share of steps warming up")
    g.add_argument("--max-length", type=int, default=d.max_length, help="tokens per training text")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="validation share carved from train")
    g.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs")
    g.add_argument("--train-layers", type=int, default=d.train_layers, metavar="K",
                   help="train only the top K transformer blocks, the final norm and the head (default: all "
                        "weights); K=2 makes a 135M model trainable on a CPU in minutes")
    g.add_argument("--lora-r", type=int, default=d.lora_r, metavar="R",
                   help="train rank-R LoRA adapters (peft) instead of the weights; merged into the saved checkpoint")
    g.add_argument("--lora-alpha", type=int, default=d.lora_alpha, help="LoRA scale: updates are scaled by alpha/R")
    g.add_argument("--lora-dropout", type=float, default=d.lora_dropout, help="dropout on the LoRA inputs")
    g.add_argument("--lora-targets", default=",".join(d.lora_targets), metavar="NAMES",
                   help="comma-separated module names to adapt (default: the attention projections, GPT-2 "
                        "c_attn,c_proj; Llama q_proj,k_proj,v_proj,o_proj)")
    size_flag = "--batch-size" if limit else "--train-batch-size"
    g.add_argument(size_flag, dest="train_batch_size", type=int, default=d.batch_size,
                   help="training batch size per device")
    if limit:
        g.add_argument("--limit", type=int, help="train on a stratified sample of N examples")
        g.add_argument("--seed", type=int, default=d.seed, help="seed for sampling, the split and training")
        g.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")


SUBCOMMANDS = (add_tasks, add_run, add_report, add_gate, add_plan,  # in `tenser --help` order
               add_finetune, add_compare, add_quickstart, add_bench, add_demo)
