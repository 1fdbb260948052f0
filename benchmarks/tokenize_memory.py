"""Peak RSS of loading and tokenizing a whole split, beyond the model (BENCHMARKS.md).

    python benchmarks/tokenize_memory.py MODEL DATA [TASK]
"""

from __future__ import annotations

import resource
import sys
import time

from harness.data import load_examples
from harness.models import load_model
from harness.runner import make_encoder
from tasks import get_task


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    model, data = sys.argv[1:3]
    task = get_task(sys.argv[3] if len(sys.argv) > 3 else "imdb_zeroshot")
    loaded = load_model(model, "causal_lm" if task.kind == "zeroshot" else "classifier", device="cpu", dtype="float32")
    base = peak_mib()
    examples, _ = load_examples(task, data=data)
    t0 = time.perf_counter()
    encoded = make_encoder(task, loaded).encode_many([e.text for e in examples])
    seconds = time.perf_counter() - t0
    print(f"model loaded: peak RSS {base:.0f} MiB; after loading {len(examples):,} reviews and tokenizing them "
          f"({sum(e.n_tokens for e in encoded):,} tokens, {seconds:.0f}s): peak RSS {peak_mib():.0f} MiB, "
          f"{peak_mib() - base:.0f} MiB beyond the model")


if __name__ == "__main__":
    main()
