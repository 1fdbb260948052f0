"""Run lm-evaluation-harness on RTE (its own prompt) or IMDB (Tenser's prompt) over local parquet files.

The peer side of issues 21 and 23: it runs INSIDE the lm-eval virtualenv made by
benchmarks/lm_eval_setup.sh (lm-eval is not a Tenser dependency), with model `hf` on a local
converted folder (e.g. the embedded SmolLM2 built by ../shared/tools/build_smollm2.py), fp32,
on CPU. It writes one JSONL line per example (see `sample_rows`) plus a summary JSON.

    /work/lmeval-venv/bin/python benchmarks/lm_eval_peer.py --model /work/smollm2 \
        --out /work/lmeval-out/rte_0shot [--task rte|imdb] [--num_fewshot 5 [--fewshot_idx 3,17,...]] [--limit N]

--data is a folder with `train.parquet` and the scored split's parquet (RTE: `validation`, IMDB:
`test`), each with an integer `idx` column naming the example. Few-shot: lm-eval gets a split
`fewshot` holding only the given demonstrations (train rows by their `idx`, in the order given;
default: the first K train rows), read with `fewshot_config: sampler: first_n`, so every example
sees the same demonstrations in that order.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rte"  # ../shared from the repo root
TASK = "tenser_peer"
# name: (prompt, choices, scored split). RTE: lm-eval's lm_eval/tasks/glue/rte/default.yaml prompt,
# choices and target, unchanged (see ../shared/data/rte/PROVENANCE.md). IMDB: Tenser's
# imdb_zeroshot prompt and label words (" negative"/" positive" = choice + lm-eval's target
# delimiter " "). Only the data source and the few-shot split are ours.
PRESETS = {
    "rte": ("{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:", ["True", "False"], "validation"),
    "imdb": ("Review: {{text}}\nSentiment:", ["negative", "positive"], "test"),
}


def task_yaml(data: Path, fewshot_file: Path | None, preset: str = "rte") -> dict:
    """The local lm-eval task config: the preset's prompt over `data`/{train,SPLIT}.parquet."""
    prompt, choices, split = PRESETS[preset]
    files = {"train": str(data / "train.parquet"), split: str(data / f"{split}.parquet")}
    config = {
        "task": TASK,
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": files},
        "output_type": "multiple_choice",
        "training_split": "train",
        ("validation_split" if split == "validation" else "test_split"): split,
        "doc_to_text": prompt,
        "doc_to_target": "label",
        "doc_to_choice": choices,
        "metric_list": [{"metric": "acc"}],
        "metadata": {"version": 1.0},
    }
    if fewshot_file is not None:
        files["fewshot"] = str(fewshot_file)
        config["fewshot_split"] = "fewshot"
        config["fewshot_config"] = {"sampler": "first_n"}
    return config


def write_fewshot(data: Path, ids: list[int] | None, k: int, out: Path) -> Path:
    """A parquet file of the demonstrations: train rows with `idx` in `ids` (in that order), or the first k."""
    import pandas as pd

    train = pd.read_parquet(data / "train.parquet")
    if ids is None:
        demos = train.iloc[:k]
    else:
        by_idx = train.set_index("idx", drop=False)
        missing = [i for i in ids if i not in by_idx.index]
        if missing:
            raise SystemExit(f"--fewshot_idx: no train rows with idx {missing}")
        demos = by_idx.loc[ids]
    if len(demos) < k:
        raise SystemExit(f"--num_fewshot {k} needs {k} demonstrations, got {len(demos)}")
    path = out / "fewshot.parquet"
    demos.reset_index(drop=True).to_parquet(path)
    return path


def run(args: argparse.Namespace, lm: object) -> dict:
    """Evaluate `lm` and return lm-eval's results dict (with samples)."""
    import yaml
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = Path(args.out)
    (out / "task").mkdir(parents=True, exist_ok=True)
    ids = [int(i) for i in args.fewshot_idx.split(",")] if args.fewshot_idx else None
    fewshot = write_fewshot(Path(args.data), ids, args.num_fewshot, out) if args.num_fewshot else None
    (out / "task" / f"{TASK}.yaml").write_text(yaml.safe_dump(task_yaml(Path(args.data), fewshot, args.task), sort_keys=False))
    manager = TaskManager(include_path=str(out / "task"), include_defaults=False)
    return simple_evaluate(model=lm, tasks=[TASK], task_manager=manager, num_fewshot=args.num_fewshot,
                           limit=args.limit, log_samples=True, bootstrap_iters=0, random_seed=0)


def load_model(args: argparse.Namespace) -> object:
    """lm-eval's `hf` model on the local folder, fp32 on CPU (what `model="hf"` would build)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=args.model, dtype="float32", device="cpu", batch_size=args.batch_size)


def count_tokens(lm: object, rows: list[dict]) -> dict[str, int]:
    """Tokens lm-eval's HF model feeds forward: one pass per distinct context + continuation[:-1]
    (its logits cache shares a pass among one-token continuations), as its `_encode_pair` splits them."""
    passes: set[tuple[int, ...]] = set()
    requested = 0
    for row in rows:
        for choice in row["choices"]:
            context, continuation = lm._encode_pair(row["context"], choice)  # type: ignore[attr-defined]
            passes.add(tuple(context + continuation[:-1]))
            requested += len(context) + len(continuation)
        row["n_tokens"] = len(lm._encode_pair(row["context"], row["choices"][0])[0])  # type: ignore[attr-defined]
    return {"forward_passes": len(passes), "tokens_forwarded": sum(map(len, passes)), "tokens_requested": requested}


def sample_rows(samples: list[dict]) -> list[dict]:
    """One row per example, in data order: idx, doc_id, label, loglik (per choice, in choice order),
    pred (argmax index; lm-eval's `acc`), choices (the scored continuations), context (the exact
    scored prefix); `count_tokens` adds n_tokens (the context's tokens)."""
    rows = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        logliks = [float(r[0][0]) for r in s["resps"]]
        pred = max(range(len(logliks)), key=logliks.__getitem__)
        rows.append({"idx": int(s["doc"]["idx"]), "doc_id": s["doc_id"], "label": int(s["target"]),
                     "loglik": logliks, "pred": pred, "choices": [a[1] for a in s["arguments"]],
                     "context": s["arguments"][0][0]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="local HF model folder (the converted embedded SmolLM2)")
    p.add_argument("--out", required=True, help="output folder (predictions.jsonl, summary.json, task/)")
    p.add_argument("--task", choices=sorted(PRESETS), default="rte", help="prompt and choices (default: rte)")
    p.add_argument("--data", default=str(DATA), help="folder with train.parquet and the scored split's parquet")
    p.add_argument("--num_fewshot", type=int, default=0)
    p.add_argument("--fewshot_idx", help="comma-separated train idx values of the demonstrations, in order")
    p.add_argument("--batch_size", default="8")
    p.add_argument("--limit", type=int, help="only the first N validation rows")
    args = p.parse_args()
    batch = args.batch_size if args.batch_size.startswith("auto") else int(args.batch_size)
    args.batch_size = batch
    start = time.perf_counter()
    lm = load_model(args)
    loaded = time.perf_counter()
    results = run(args, lm)
    done = time.perf_counter()
    out = Path(args.out)
    rows = sample_rows(results["samples"][TASK])
    tokens = count_tokens(lm, rows)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    summary = {"task": args.task, "model": args.model, "num_fewshot": args.num_fewshot, "fewshot_idx": args.fewshot_idx,
               "batch_size": args.batch_size, "limit": args.limit, "n": len(rows),
               "accuracy": sum(r["pred"] == r["label"] for r in rows) / len(rows),
               "lm_eval_acc": results["results"][TASK].get("acc,none"), "load_s": round(loaded - start, 2),
               "eval_s": round(done - loaded, 2), "wall_s": round(done - start, 2), **tokens,
               "torch_threads": _threads(), "versions": _versions()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("lm_eval", "torch", "transformers", "datasets")}


if __name__ == "__main__":
    main()
