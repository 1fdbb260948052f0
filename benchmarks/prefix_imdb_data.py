"""IMDB data for benchmarks/prefix_vs_lm_eval.sh (BENCH=imdb): files both tools read as they are.

Tenser cuts text to fit (`-T max_tokens`, 1024 for imdb_zeroshot): the scored review to what the
demonstrations leave, each demonstration to its share of half the context
(harness/scoring/fewshot.py). lm-eval cuts nothing below the model's length. So that both score
the same strings, the cuts are made here, with the model's own tokenizer, and neither tool cuts:

- test: N test reviews (N/2 per label, numpy default_rng(SEED) over the label-sorted rows), each
  cut to its last REVIEW_TOKENS tokens (400: room for 5 demonstrations of 1023 // 2 // 5 tokens);
- train_kK (K = each shot count): POOL train reviews (POOL/2 per label, the same seed), each cut to
  its last (1023 // 2 // K - the prompt and label word's tokens - 4) tokens, the room fewshot.py
  gives a demonstration at K shots, 4 tokens short so re-tokenizing the cut text cannot overflow it.

Every row gets an integer `idx` (lm-eval's name for it) and `id` = str(idx) (Tenser's), so
Tenser's chosen demonstration ids are lm-eval's --fewshot_idx.

    python benchmarks/prefix_imdb_data.py --imdb ../shared/data/imdb --model MODEL --out OUT/data --shots 0 2 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

PROMPT = "Review: {text}\nSentiment:"  # tasks/imdb.py imdb_zeroshot
LABEL_WORDS = (" negative", " positive")
MAX_TOKENS = 1024 - 1  # imdb_zeroshot's max_tokens, less the label word the encoder reserves


def sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """n rows, n/2 per label, seeded; kept in their original order."""
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(frame["label"].to_numpy() == label), n // 2, replace=False)
                           for label in (0, 1)])
    return frame.iloc[np.sort(keep)].reset_index(drop=True)


def cut(texts: pd.Series, tokenizer: object, keep: int) -> list[str]:
    """Each text as its last `keep` tokens (Tenser's imdb truncation side is left), decoded."""
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        out.append(text if len(ids) <= keep else tokenizer.decode(ids[-keep:]))  # type: ignore[attr-defined]
    return out


def demo_room(tokenizer: object, k: int) -> int:
    """Tokens fewshot.py leaves a demonstration's review at k shots, less a margin of 4."""
    fixed = max(len(tokenizer(PROMPT.format(text="") + w)["input_ids"]) for w in LABEL_WORDS)  # type: ignore[operator]
    return MAX_TOKENS // 2 // k - fixed - 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imdb", type=Path, required=True, help="folder with IMDB train.parquet and test.parquet")
    p.add_argument("--model", required=True, help="the model folder whose tokenizer counts the tokens")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--shots", type=int, nargs="+", default=[0, 2, 5])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--pool", type=int, default=2000)
    p.add_argument("--review-tokens", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    test = sample(pd.read_parquet(args.imdb / "test.parquet"), args.n, args.seed)
    test["text"] = cut(test["text"], tokenizer, args.review_tokens)
    test = test.assign(idx=range(len(test)), id=[str(i) for i in range(len(test))])
    train = sample(pd.read_parquet(args.imdb / "train.parquet"), args.pool, args.seed)
    train = train.assign(idx=range(100000, 100000 + len(train)))
    train["id"] = train["idx"].astype(str)
    for k in args.shots:
        folder = args.out / f"k{k}"
        folder.mkdir(parents=True, exist_ok=True)
        test.to_parquet(folder / "test.parquet")
        shown = train.assign(text=cut(train["text"], tokenizer, demo_room(tokenizer, k))) if k else train
        shown.to_parquet(folder / "train.parquet")
        lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in test["text"]]
        print(f"k={k}: {len(test)} test reviews (mean {np.mean(lengths):.0f} tokens, max {max(lengths)}), "
              f"{len(shown)} train reviews" + (f" cut to at most {demo_room(tokenizer, k)} tokens" if k else ""))


if __name__ == "__main__":
    main()
