"""Per-example agreement of a Tenser zero-shot run with lm-evaluation-harness (issue 21's peer check).

Reads lm-eval's per-example output (benchmarks/lm_eval_peer.py: idx, doc_id, label, loglik per
choice, context) and a finished Tenser run folder on the same rows, and compares per example:
- predictions (argmax over the labels, lm-eval's `acc`);
- p = softmax over the label log-likelihoods (Tenser's probabilities over the labels; lm-eval's
  logliks normalised the same way), |Δp| on each label;
- the prompt: Tenser's rendered prompt against lm-eval's `context`, Tenser's prompt token ids
  against lm-eval's context tokens (its `HFLM._encode_pair`, restated below), the label words'
  token ids against lm-eval's continuation tokens, and the recorded token counts.
With --weights A B it also says whether two model folders hold the same weights.

    python benchmarks/lm_eval_agreement.py --lm-eval /work/lmeval-out/rte_0shot/predictions.jsonl \
        --run runs/peer/rte_zeroshot__smollm2 --data ../shared/data/rte/validation.parquet \
        --tokenizer /work/smollm2 [--json agreement.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np


def softmax(scores: list[float]) -> np.ndarray:
    """Probabilities over the labels from per-label log-likelihoods (what Tenser does with its scores)."""
    x = np.asarray(scores, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval 0.4's HFLM._encode_pair: trailing spaces of the context move to the continuation, the whole
    string is tokenized once (no special tokens), and the continuation is what follows the context's tokens."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return list(ctx), list(whole[len(ctx):])


def row_of(record_id: str, position: int) -> int:
    """The data row of a Tenser record: its `SPLIT-ROW` id, else its position."""
    m = re.fullmatch(r".+-(\d+)", str(record_id))
    return int(m.group(1)) if m else position


def tenser_side(run_dir: Path, data: Path, tokenizer: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The run's task and, per record, its probabilities, prompt, prompt ids and label-word ids."""
    import pandas as pd

    from harness.scoring.encoding import Encoder, label_token_ids
    from harness.store.runs import load_run
    from tasks.fields import input_columns
    from tasks.registry import task_from_dict

    results, records = load_run(run_dir)
    task = task_from_dict(dict(results["task"]), where=str(run_dir / "results.json"))
    label_ids = label_token_ids(task, tokenizer)
    limit = results["scoring"].get("max_tokens") or task.max_tokens or 10**9
    encoder = Encoder(task, tokenizer, limit, reserve=max(map(len, label_ids)) - 1)
    frame = pd.read_parquet(data)
    out = []
    for pos, rec in enumerate(records):
        row = row_of(rec["id"], pos)
        fields = {c: str(frame.iloc[row][c]) for c in input_columns(task)}
        encoded = encoder.encode(fields)
        out.append({"row": row, "label": rec["label"], "probs": [rec["probs"][name] for name in task.labels],
                    "n_tokens": rec["n_tokens"], "truncated": rec["truncated"], "prompt": encoder.render(fields),
                    "ids": list(encoded.ids), "label_ids": label_ids})
    return task, out


def compare(task: Any, ours: list[dict[str, Any]], peer: dict[int, dict[str, Any]], tokenizer: Any) -> dict[str, Any]:
    """Per-example differences and their summary."""
    rows = []
    for t in ours:
        p = peer[t["row"]]
        lp = softmax(p["loglik"])
        ctx, conts = zip(*(encode_pair(tokenizer, p["context"], c) for c in p["choices"]))
        rows.append({
            "row": t["row"], "idx": p["idx"], "gold": task.labels[p["label"]], "label_agrees": t["label"] == task.labels[p["label"]],
            "pred_tenser": int(np.argmax(t["probs"])), "pred_lmeval": int(p["pred"]),
            "dp": float(np.abs(np.asarray(t["probs"]) - lp).max()),
            "prompt_same": t["prompt"] == p["context"], "ids_same": t["ids"] == list(ctx[0]),
            "n_tokens": (t["n_tokens"], p.get("n_tokens", len(ctx[0]))),
            "label_ids_same": [list(c) for c in conts] == t["label_ids"], "truncated": t["truncated"],
        })
    return {"rows": rows, "summary": summarise(rows, task)}


def summarise(rows: list[dict[str, Any]], task: Any) -> dict[str, Any]:
    """The table's numbers."""
    dps = np.array([r["dp"] for r in rows])
    worst = rows[int(dps.argmax())]
    acc = [np.mean([task.labels[r[k]] == r["gold"] for r in rows]) for k in ("pred_tenser", "pred_lmeval")]
    return {
        "n": len(rows), "labels_disagree": sum(not r["label_agrees"] for r in rows),
        "predictions_differ": sum(r["pred_tenser"] != r["pred_lmeval"] for r in rows),
        "max_abs_dp": float(dps.max()), "mean_abs_dp": float(dps.mean()), "median_abs_dp": float(np.median(dps)),
        "worst": {"row": worst["row"], "idx": worst["idx"], "dp": worst["dp"]},
        "accuracy_tenser": float(acc[0]), "accuracy_lmeval": float(acc[1]),
        "prompts_differ": sum(not r["prompt_same"] for r in rows),
        "prompt_ids_differ": sum(not r["ids_same"] for r in rows),
        "n_tokens_differ": sum(a != b for a, b in (r["n_tokens"] for r in rows)),
        "label_ids_differ": sum(not r["label_ids_same"] for r in rows),
        "truncated": sum(bool(r["truncated"]) for r in rows),
    }


def weights_diff(a: Path, b: Path) -> dict[str, Any]:
    """Whether two model folders' safetensors hold the same tensors: equal, or equal after a cast to b's dtype."""
    import torch
    from safetensors import safe_open

    fa, fb = (safe_open(str(p / "model.safetensors"), "pt") for p in (a, b))
    ka, kb = set(fa.keys()), set(fb.keys())
    same = cast = 0
    dtypes = set()
    for k in sorted(ka & kb):
        x, y = fa.get_tensor(k), fb.get_tensor(k)
        dtypes.add((str(x.dtype), str(y.dtype)))
        same += x.dtype == y.dtype and torch.equal(x, y)
        cast += x.shape == y.shape and torch.equal(x.to(y.dtype), y)
    return {"tensors": len(ka | kb), "only_in_one": len(ka ^ kb), "identical": same, "identical_after_cast": cast, "dtypes": sorted(dtypes)}


def markdown(s: dict[str, Any]) -> str:
    """The BENCHMARKS.md table."""
    lines = ["| per example | value |", "|---|---|"]
    for key, text in [("n", "examples"), ("predictions_differ", "predictions that differ"),
                      ("max_abs_dp", "max abs Δp"), ("mean_abs_dp", "mean abs Δp"),
                      ("accuracy_tenser", "accuracy, Tenser"), ("accuracy_lmeval", "accuracy, lm-eval"),
                      ("prompts_differ", "prompts (text) that differ"), ("prompt_ids_differ", "prompt token ids that differ"),
                      ("n_tokens_differ", "token counts that differ"), ("label_ids_differ", "label-word token ids that differ"),
                      ("labels_disagree", "gold labels that differ"), ("truncated", "truncated by Tenser")]:
        v = s[key]
        lines.append(f"| {text} | {v:.2e} |" if key.endswith("dp") else f"| {text} | {v:.4f} |" if isinstance(v, float) else f"| {text} | {v} |")
    w = s["worst"]
    lines.append(f"| largest abs Δp at | row {w['row']} (idx {w['idx']}) |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lm-eval", type=Path, help="lm-eval per-example JSONL (benchmarks/lm_eval_peer.py)")
    p.add_argument("--run", type=Path, help="a finished Tenser zero-shot run folder on the same rows")
    p.add_argument("--data", type=Path, help="the scored split as a parquet file (to rebuild the prompts)")
    p.add_argument("--tokenizer", type=Path, help="the model folder whose tokenizer both used")
    p.add_argument("--json", type=Path, help="also write the summary and per-example rows here")
    p.add_argument("--weights", nargs=2, type=Path, metavar=("A", "B"), help="compare two model folders' weights")
    args = p.parse_args()
    if args.weights:
        print(json.dumps(weights_diff(*args.weights)))
    if not args.run:
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))
    peer = {r["doc_id"]: r for r in (json.loads(line) for line in args.lm_eval.read_text(encoding="utf-8").split("\n") if line)}
    task, ours = tenser_side(args.run, args.data, tokenizer)
    result = compare(task, ours, peer, tokenizer)
    print(markdown(result["summary"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
