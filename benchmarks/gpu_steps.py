"""The steps of `benchmarks/gpu.sh`, in priority order, each a `tenser` command run under a time limit.

Every step starts only if the time left before the deadline (DEADLINE_S from the start) covers
its expected length on an H200 (`min_s`, times MIN_SCALE), runs under `min(cap_s, time left)`
and is killed with its whole process group past that; its figures go to OUT as soon as it ends
(gpu_record.py). Sizes and paths come from the environment (see `Env`), so the same script runs
tiny on a CPU in CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_record import Record, bench_figures

RESERVE_S = 5.0  # kept back from the last step, for writing its figures
TF32 = "import torch, runpy; torch.set_float32_matmul_precision('high'); runpy.run_module('tenser', run_name='__main__')"


@dataclass(frozen=True)
class Env:
    """Paths and sizes, from the environment variables of the same names (upper case)."""

    assets: Path = Path(".gpu")
    out: Path = Path("gpu-out")
    work: Path = Path("/tmp/tenser-gpu")  # models, checkpoints and bench folders: too big to bring back
    device: str = "cuda"
    python: str = sys.executable
    limit: int = 25000  # test reviews scored per pass
    base_limit: int = 2000  # seeded subset for the baselines, which would not fit on 25k
    train_examples: int = 2000  # fine-tuning throughput: one epoch over this many, both ways
    epochs: int = 3
    train_limit: int = 0  # 0: the whole train split
    noise_examples: int = 1000
    shots_limit: int = 1000
    deadline_s: float = 540.0
    min_scale: float = 1.0
    peak_tflops: float = 790.0  # the bf16 matrix rate measured on the lent H200s
    gpt2_layers: int = 12
    gpt2_width: int = 768
    gpt2_heads: int = 12
    gpt2_positions: int = 1024
    skip: str = ""  # steps not to run, e.g. "compile,noise"

    @classmethod
    def from_environ(cls) -> Env:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(f.name.upper())
            if raw:
                default = getattr(cls, f.name)
                values[f.name] = type(default)(raw) if not isinstance(default, str) else raw
        return cls(**values)

    @property
    def models(self) -> Path:
        return self.work / f"models-{self.gpt2_layers}x{self.gpt2_width}"

    @property
    def test(self) -> str:
        return str(self.assets / "imdb" / "test.parquet")

    @property
    def train(self) -> str:
        return str(self.assets / "imdb" / "train.parquet")

    def tenser(self, *args: Any, tf32: bool = False) -> list[str]:
        return [self.python, *(["-c", TF32] if tf32 else ["-m", "tenser"]), *map(str, args)]

    def bench(self, name: str, *args: Any, tf32: bool = False) -> list[str]:
        """`tenser bench` on both tasks' models, into WORK/NAME."""
        return self.tenser("bench", "--model", self.models / "lm", "--classifier", self.models / "clf",
                           "--data", self.test, "--device", self.device, "--out", self.work / name, *args, tf32=tf32)


Plan = list[str] | str  # a command, or why the step is skipped


@dataclass(frozen=True)
class Step:
    name: str
    min_s: float  # expected seconds on an H200; not started with less time left
    cap_s: float  # most seconds it may run
    plan: Callable[[Env, Record, float], Plan]  # (env, record so far, seconds allowed)
    collect: Callable[[Env, Record, str], tuple[dict[str, Any], str]] = lambda env, rec, name: bench_step(env, name)


def params(env: Env) -> dict[str, Any]:
    path = env.models / "params.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def bench_step(env: Env, name: str) -> tuple[dict[str, Any], str]:
    return bench_figures(env.work / name, params(env), env.peak_tflops)


def plan_build(env: Env, rec: Record, allowed: float) -> Plan:
    return [env.python, str(Path(__file__).with_name("gpu_build.py")), str(env.assets / "models" / "gpt2-tokenizer"),
            str(env.models), "--layers", str(env.gpt2_layers), "--width", str(env.gpt2_width),
            "--heads", str(env.gpt2_heads), "--positions", str(env.gpt2_positions)]


def plan_mixed(env: Env, rec: Record, allowed: float) -> Plan:
    scored = rec.get("scoring").get("scoring") or [{}]
    if scored[0].get("runtime", {}).get("dtype") == "mixed":
        return "the scoring step ran in mixed precision already (Tenser's GPU default); its figures hold the " \
               "re-scored count"
    return env.bench("dtype_mixed", "--limit", env.limit, "--ways", "tenser", "--dtype", "mixed")


def train_size(env: Env) -> int:
    import pyarrow.parquet as pq

    return env.train_limit or pq.ParquetFile(env.train).metadata.num_rows


def plan_finetune(env: Env, rec: Record, allowed: float) -> Plan:
    """EPOCHS epochs, or as many as the one-epoch throughput says fit (or part of one, on fewer reviews)."""
    n = train_size(env)
    rows = rec.get("train_throughput").get("finetuning") or {}
    per_example = rows.get("ways", {}).get("tenser", {}).get("seconds", 0) / max(1, rows.get("ways", {}).get(
        "tenser", {}).get("examples", 1))
    fixed = 45.0 * env.min_scale  # start-up, loading, saving 500 MB; validation is ~15% of an epoch
    epoch_s = per_example * 0.9 * n * 1.15
    fit = int((allowed - fixed) // epoch_s) if epoch_s > 0 else env.epochs
    limit = [] if not env.train_limit else ["--limit", env.train_limit]
    if fit < 1:  # not one whole epoch: one epoch of the reviews that fit
        limit = ["--limit", max(64, int((allowed - fixed) / (per_example * 1.15) / 0.9))]
    return env.tenser("finetune", "--model", env.models / "lm", "--output", env.work / "finetuned", "--data",
                      env.train, "--device", env.device, "--epochs", max(1, min(env.epochs, fit)), *limit,
                      "--max-length", min(512, env.gpt2_positions), "--overwrite", "--yes")


def collect_finetune(env: Env, rec: Record, name: str) -> tuple[dict[str, Any], str]:
    path = env.work / "finetuned" / "training_log.json"
    if not path.is_file():
        return {}, ""
    log = json.loads(path.read_text())
    ran, n = len(log["epochs"]), log["data"]["n_train"]
    full = train_size(env) if not env.train_limit else env.train_limit
    per_epoch = log["wall_time_s"] / max(1, ran) * (0.9 * full) / n
    measured = ran >= env.epochs and n >= 0.9 * full - 1
    figures = {"epochs_run": ran, "n_train": n, "n_val": log["data"]["n_val"], "wall_time_s": log["wall_time_s"],
               "val_curve": log["epochs"], "stopped_early": log["stopped_early"],
               f"{env.epochs}_epochs_s": round(per_epoch * env.epochs, 1),
               "label": "measured" if measured else f"extrapolated from {ran} epoch(s) of {n} reviews"}
    text = (f"{ran} epoch(s) of {n} training reviews in {log['wall_time_s']:.0f} s; {env.epochs} epochs of "
            f"{0.9 * full:.0f}: {per_epoch * env.epochs:.0f} s ({figures['label']}).\n"
            + "\n".join(f"- epoch {e['epoch']}: val loss {e['val_loss']:.4f}, val accuracy {e['val_accuracy']}"
                        for e in log["epochs"]))
    return figures, text


def plan_noise(env: Env, rec: Record, allowed: float) -> Plan:
    tuned = env.work / "finetuned"
    finetuned = tuned if (tuned / "training_log.json").is_file() else env.models / "clf"
    return env.tenser("compare", "--model", env.models / "lm", "--finetuned", finetuned, "--out", env.work / "noise",
                      "--data", env.test, "--limit", env.limit, "--device", env.device, "--noise-examples",
                      env.noise_examples, "--no-cache", "--overwrite")


def collect_noise(env: Env, rec: Record, name: str) -> tuple[dict[str, Any], str]:
    path = env.work / "noise" / "noise.json"
    if not path.is_file():
        return {}, ""
    noise = json.loads(path.read_text())
    runs = [{k: r.get(k) for k in ("run", "setting", "reference_setting", "n", "flips", "share", "max_prob_diff")}
            for r in noise.get("runs", [])]
    text = "\n".join(f"- {r['run']} ({r['setting']}): {r['flips']} of {r['n']} predictions flip against "
                     f"{r['reference_setting']}; largest probability change {r['max_prob_diff']}" for r in runs)
    return {"noise": {**{k: v for k, v in noise.items() if k != "runs"}, "runs": runs}}, text


def has_flag(command: str, flag: str) -> bool:
    """Whether `tenser COMMAND` takes `flag` (read from the parser, in this process)."""
    import argparse

    from tenser.parser import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return flag in sub.choices[command].format_help()


def plan_fewshot(cache: bool) -> Callable[[Env, Record, float], Plan]:
    def plan(env: Env, rec: Record, allowed: float) -> Plan:
        if not cache and not has_flag("run", "--no-prefix-cache"):
            return "`tenser run` has no --no-prefix-cache flag (the shared-prefix cache has not landed)"
        return env.tenser("run", "--model", env.models / "lm", "--task", "imdb_zeroshot", "-T", "shots=5",
                          "--train-data", env.train, "--data", env.test, "--limit", env.shots_limit, "--device",
                          env.device, "--out", env.work / ("fewshot" if cache else "fewshot_no_cache"), "--no-cache",
                          "--overwrite", *([] if cache else ["--no-prefix-cache"]))

    return plan


def collect_run(env: Env, rec: Record, name: str) -> tuple[dict[str, Any], str]:
    found = sorted((env.work / ("fewshot" if name == "fewshot" else "fewshot_no_cache")).glob("*/results.json"))
    if not found:
        return {}, ""
    r = json.loads(found[0].read_text())
    keep = {"accuracy": r["metrics"]["accuracy"], "n": r["metrics"]["n"], "shots": r.get("fewshot", {}).get("k"),
            "timings": r["timings"], "runtime": r["runtime"]}
    t = r["timings"]
    return {"run": keep}, (f"{keep['n']} reviews, {keep['shots']} shots: accuracy {keep['accuracy']:.4f}; scoring "
                           f"{t['score_s']} s ({t['examples_per_s']} examples/s, {t['tokens_per_s']} tokens/s), "
                           f"tokenizing {t['tokenize_s']} s, total {t['total_s']} s; dtype {r['runtime']['dtype']}")


def collect_build(env: Env, rec: Record, name: str) -> tuple[dict[str, Any], str]:
    p = params(env)
    return {"params": p}, json.dumps(p)


def bench_limit(name: str, *args: Any, tf32: bool = False) -> Callable[[Env, Record, float], Plan]:
    return lambda env, rec, allowed: env.bench(name, "--limit", env.limit, *args, tf32=tf32)


def plan_baselines(env: Env, rec: Record, allowed: float) -> Plan:
    return env.bench("baselines", "--limit", min(env.base_limit, env.limit), "--ways", "tenser,seed_style,one_at_a_time")


def plan_throughput(env: Env, rec: Record, allowed: float) -> Plan:
    return env.tenser("bench", "--model", env.models / "lm", "--data", env.test, "--limit", 16, "--ways", "tenser",
                      "--train-data", env.train, "--finetune-examples", env.train_examples, "--device", env.device,
                      "--out", env.work / "train_throughput")


STEPS = (  # priority order
    Step("build", 20, 240, plan_build, collect_build),
    Step("scoring", 60, 240, bench_limit("scoring", "--ways", "tenser")),
    Step("baselines", 60, 240, plan_baselines),
    Step("train_throughput", 60, 200, plan_throughput),
    Step("dtype_bf16", 40, 150, bench_limit("dtype_bf16", "--ways", "tenser", "--dtype", "bfloat16")),
    Step("dtype_fp32", 60, 200, bench_limit("dtype_fp32", "--ways", "tenser", "--dtype", "float32")),
    Step("dtype_tf32", 45, 150, bench_limit("dtype_tf32", "--ways", "tenser", "--dtype", "float32", tf32=True)),
    Step("dtype_mixed", 40, 150, plan_mixed),
    Step("finetune", 90, 420, plan_finetune, collect_finetune),
    Step("noise", 60, 200, plan_noise, collect_noise),
    Step("fewshot", 40, 150, plan_fewshot(True), collect_run),
    Step("fewshot_no_prefix_cache", 40, 150, plan_fewshot(False), collect_run),
    Step("compile", 90, 240, bench_limit("compile", "--ways", "tenser", "--compile")),
)
GROUPS = {"all": [s.name for s in STEPS],
          "scoring": ["build", "scoring", "baselines"],
          "variants": ["build", "dtype_bf16", "dtype_fp32", "dtype_tf32", "dtype_mixed", "compile"],
          "finetune": ["build", "train_throughput", "finetune"]}
