"""How far bf16 moves a model's label scores, and how many predictions it flips, against float32.

    python benchmarks/bf16_error.py MODEL DATA [--task imdb_zeroshot] [--limit 200] [--seed 0]

Scores the same seeded sample three ways with `harness.scoring.inference.predict`'s scorers: float32;
`--dtype bfloat16` (bf16 weights, bf16 logits); and the fast half of `--dtype mixed` (a bf16
body with a float32 output layer, before any near-tie is checked). Prints one markdown row per
bf16 way: the 1st percentile of the float32 margin (the gap between the top two labels'
log-probabilities), the median and largest change of that margin, and how many predictions
flipped. This is what `--dtype mixed` guards against (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def margins(scores: np.ndarray) -> np.ndarray:
    """Signed decision margin of each row: the first label's log-prob less the best other's."""
    logp = torch.log_softmax(torch.as_tensor(scores, dtype=torch.float64), dim=-1).numpy()
    return logp[:, 0] - np.delete(logp, 0, axis=1).max(axis=1)


def main() -> None:
    from harness.backends.loading import load_model
    from harness.backends.scorers import build_scorer
    from harness.data.examples import load_examples
    from harness.scoring.inference import make_encoder
    from tasks import get_task

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--task", default="imdb_zeroshot")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    task = get_task(a.task)
    kind = "causal_lm" if task.kind == "zeroshot" else "classifier"
    examples, _ = load_examples(task, data=a.data, limit=a.limit, seed=a.seed)

    def run(dtype: str, fast: bool = False) -> np.ndarray:
        loaded = load_model(a.model, kind, device="cpu", dtype=dtype)
        encoded = make_encoder(task, loaded).encode_many([e.text for e in examples])
        scorer = build_scorer(loaded.model, loaded.tokenizer, task, loaded.fast_body if fast else None)
        return np.concatenate([scorer.score([e]).float().numpy() for e in encoded])

    exact = margins(run("float32"))
    print("| model | way | fp32 margin, 1st percentile | bf16 change of the margin, median / max | flipped |")
    print("|---|---|---|---|---|")
    for way, scores in (("bf16 weights and logits", run("bfloat16")), ("bf16 body, fp32 output layer",
                                                                      run("mixed", fast=True))):
        m = margins(scores)
        change = np.abs(m - exact)
        print(f"| {a.model} | {way} | {np.quantile(np.abs(exact), 0.01):.3f} | {np.median(change):.3f} / "
              f"{change.max():.3f} | {int(((m > 0) != (exact > 0)).sum())} of {len(m)} |")


if __name__ == "__main__":
    main()
