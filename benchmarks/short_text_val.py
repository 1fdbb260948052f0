"""A short-text proxy and its validation-only check (README, "Short texts"): no test data is read.

    python benchmarks/short_text_val.py make OUT.parquet
        the first sentence of each bundled IMDB train review (HTML breaks removed; at least 15
        characters), with the review's label: short texts, labelled by the whole review.
    python benchmarks/short_text_val.py check OUT.parquet CKPT [CKPT ...]
        the pretrained SmolLM2's zero-shot accuracy on the fine-tunes' own validation carve
        (default --val-fraction 0.1, data seed 0, 64 tokens) next to each fine-tune's, as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
MIN_CHARS = 15  # drops fragments such as "Wow." that the sentence split leaves


def first_sentence(text: str) -> str:
    """The text up to its first sentence end, with IMDB's <br /> tags as spaces."""
    flat = re.sub(r"<br\s*/?>", " ", text).strip()
    return re.split(r"(?<=[.!?])\s+", flat, maxsplit=1)[0]


def make(out: Path) -> None:
    df = pd.read_parquet(ROOT / "tasks" / "data" / "imdb_sample" / "train.parquet")
    df = df.assign(text=df["text"].map(first_sentence))
    df[df["text"].str.len() >= MIN_CHARS].to_parquet(out, index=False)


def check(data: Path, checkpoints: list[Path]) -> dict:
    from harness.recipes.seed_runs import validation_check
    from harness.training.config import FinetuneConfig
    from tasks import get_task

    return validation_check("embedded:smollm2", get_task("imdb_zeroshot", max_tokens=64), get_task("imdb_classifier"),
                            FinetuneConfig(max_length=64), checkpoints, train_data=str(data), device="cpu",
                            dtype="float32", batch_size=8, allow_pickle=False)


if __name__ == "__main__":
    mode, path, *rest = sys.argv[1:]
    if mode == "make":
        make(Path(path))
    else:
        print(json.dumps(check(Path(path), [Path(p) for p in rest]), indent=2))
