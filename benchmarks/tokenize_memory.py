"""Peak RSS of loading and tokenizing a whole split, beyond the model (BENCHMARKS.md), then
tokenizing the first 2,000 reviews one at a time and in batches, side by side.

    python benchmarks/tokenize_memory.py MODEL DATA [TASK]
"""

from __future__ import annotations

import resource
import sys
import time

from harness.backends.loading import load_model
from harness.data.examples import load_examples
from harness.scoring.inference import make_encoder
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
    texts = [e.text for e in examples[:2000]]
    encoder = make_encoder(task, loaded)
    t0 = time.perf_counter()
    one = encoder.encode_many(texts, chunk=1)
    t1 = time.perf_counter()
    batched = encoder.encode_many(texts)
    t2 = time.perf_counter()
    print(f"{len(texts):,} reviews one at a time {t1 - t0:.1f}s, in batches {t2 - t1:.1f}s, "
          f"same ids: {one == batched}")


if __name__ == "__main__":
    main()
