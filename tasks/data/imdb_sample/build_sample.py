"""Rebuild this folder from the full IMDB splits (parquet files with `text` and `label`).

    python tasks/data/imdb_sample/build_sample.py ../shared/data/imdb tasks/data/imdb_sample

For each split: 500 reviews per label, drawn without replacement with numpy's
default_rng(0) from that label's rows, kept in the original row order. `id` is the review's
row in the full split (`test-00042`), the id Tenser gives it when reading the full file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 0
PER_LABEL = 500


def main(src: Path, out: Path) -> None:
    for split in ("train", "test"):
        df = pd.read_parquet(src / f"{split}.parquet")
        rng = np.random.default_rng(SEED)  # one generator per split, labels drawn in order 0, 1
        labels = df["label"].to_numpy()
        rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == lab), size=PER_LABEL, replace=False)
                                       for lab in (0, 1)]))
        sample = pd.DataFrame({"id": [f"{split}-{i:05d}" for i in rows], "text": df["text"].to_numpy()[rows],
                               "label": labels[rows].astype("int64")})
        sample.to_parquet(out / f"{split}.parquet", index=False, compression="zstd")
        print(f"{split}: {len(sample)} reviews, {sample['label'].value_counts().to_dict()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
