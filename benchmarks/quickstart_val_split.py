"""The validation split the quickstart's settings were chosen on (README, "Quickstart").

    python benchmarks/quickstart_val_split.py ../shared/data/imdb/train.parquet val.parquet

300 reviews of the full IMDB train split that are not in the bundled sample
(tasks/data/imdb_sample/train.parquet), 150 per label, drawn with numpy's default_rng(1).
IMDB test is never used for choosing settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

BUNDLED = Path(__file__).resolve().parent.parent / "tasks" / "data" / "imdb_sample" / "train.parquet"


def main(full_train: Path, out: Path) -> None:
    full = pd.read_parquet(full_train)
    full["id"] = [f"train-{i:05d}" for i in range(len(full))]
    rest = full[~full["id"].isin(set(pd.read_parquet(BUNDLED)["id"]))]
    rng = np.random.default_rng(1)
    parts = [rest[rest["label"] == lab].sample(150, random_state=int(rng.integers(1 << 30))) for lab in (0, 1)]
    val = pd.concat(parts).sort_values("id")
    val.to_parquet(out, index=False)
    print(f"{out}: {len(val)} reviews, {val['label'].value_counts().to_dict()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
