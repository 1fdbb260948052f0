"""Where caching the shared prefix starts to pay (harness.backends.scorers.MIN_PREFIX), on this CPU.

For prefix lengths P, scores the same ~40-token inputs behind a P-token shared prefix, one input
per forward (`--batch-size auto` on a CPU), with the prefix cache on and off, and prints ms per
input for each (the best of `--repeats`). Models: a folder or embedded: name (fp32, CPU).

    python benchmarks/prefix_threshold.py --model /work/smollm2 --lengths 4,8,16,32,64
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from harness.backends import scorers as prefix_module
from harness.backends.loading import load_model
from harness.scoring.inference import make_encoder, predict
from tasks import get_task

WORDS = ["the", "movie", "film", "was", "great", "terrible", "acting", "plot", "story", "good", "bad", "awful", "wonderful", "boring", "loved", "hated"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--lengths", default="4,8,16,32,64")
    p.add_argument("--n", type=int, default=24, help="inputs per measurement")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    prefix_module.MIN_PREFIX = 1  # measure every length, however short
    loaded = load_model(args.model, "causal_lm", device="cpu", dtype="float32")
    plain = dataclasses.replace(loaded, prefix_cache=False)
    texts = [" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(30)) for i in range(args.n)]
    base = get_task("imdb_zeroshot")
    predict(base, plain, make_encoder(base, plain).encode_many(texts[:4]), progress=False)  # first-use costs
    for n in (int(x) for x in args.lengths.split(",")):
        words = " ".join(WORDS[k % len(WORDS)] for k in range(4 * n))
        ids = loaded.tokenizer(words, add_special_tokens=False)["input_ids"][:n]
        task = dataclasses.replace(base, prompt=loaded.tokenizer.decode(ids).replace("{", "{{").replace("}", "}}")
                                   + "\n" + base.prompt)
        encoded = make_encoder(task, loaded).encode_many(texts)
        ms = {}
        for name, model in (("plain", plain), ("cached", loaded)):
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                done = predict(task, model, encoded, batch_size="auto", progress=False)
                best = min(best, time.perf_counter() - t0)
            ms[name] = 1000 * best / len(encoded)
            shared = done.prefix.get("shared_tokens")
        mean = sum(e.n_tokens for e in encoded) / len(encoded)
        print(f"prefix {shared:4d} tokens (inputs {mean:.0f} tokens): plain {ms['plain']:.2f} ms, "
              f"cached {ms['cached']:.2f} ms per input, ratio {ms['plain'] / ms['cached']:.2f}", flush=True)


if __name__ == "__main__":
    main()
