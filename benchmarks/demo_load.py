"""Load on the demo with real models: N single-review requests at concurrency C (README, "Demo").

    python benchmarks/demo_load.py --pretrained embedded:smollm2 --finetuned runs/quickstart/finetuned \
        --requests 200 --concurrency 20

Starts the demo in this process on 127.0.0.1 (the models load once), sends real IMDB test
reviews from the bundled sample (seeded, stratified) through gradio_client from C threads,
and prints p50/p95/max latency, failures and throughput. Before the load it scores each
distinct review once, alone, to state the bound: with one request served at a time per
model, a request waits behind at most C - 1 others, so p95 should stay under C x the
slowest single-request time.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from demo.app import serve
from harness.data.examples import load_examples
from tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pretrained", required=True)
    p.add_argument("--finetuned", required=True)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--port", type=int, default=7870)
    args = p.parse_args()
    from gradio_client import Client

    reviews = [e.text for e in load_examples(get_task("imdb_zeroshot"), data="embedded:imdb", limit=50, seed=7)[0]]
    t0 = time.perf_counter()
    app = serve(args.pretrained, args.finetuned, port=args.port, prevent_thread_lock=True)
    print(f"demo up in {time.perf_counter() - t0:.1f} s")
    client = Client(f"http://127.0.0.1:{args.port}/", verbose=False)
    single = []
    for text in reviews[:10]:
        t1 = time.perf_counter()
        client.predict(text, api_name="/classify")
        single.append(time.perf_counter() - t1)
    bound = args.concurrency * max(single)

    def call(i: int) -> tuple[float, bool]:
        t1 = time.perf_counter()
        try:
            out = client.predict(reviews[i % len(reviews)], api_name="/classify")
            ok = bool(out[1]) and bool(out[4])  # both models answered with probabilities
        except Exception:  # a failed request is counted, not raised
            ok = False
        return time.perf_counter() - t1, ok

    t2 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        results = list(pool.map(call, range(args.requests)))
    wall = time.perf_counter() - t2
    latencies = sorted(t for t, _ in results)
    failures = sum(not ok for _, ok in results)
    p50, p95 = latencies[len(latencies) // 2], latencies[int(0.95 * (len(latencies) - 1))]
    print(f"single request alone (10 reviews): median {sorted(single)[5]:.2f} s, max {max(single):.2f} s")
    print(f"{args.requests} requests at concurrency {args.concurrency}: {failures} failed; p50 {p50:.2f} s, "
          f"p95 {p95:.2f} s, max {latencies[-1]:.2f} s; {args.requests / wall:.2f} requests/s over {wall:.0f} s")
    print(f"bound: p95 <= concurrency x slowest single = {bound:.2f} s: {'met' if p95 <= bound else 'NOT met'}")
    app.close()


if __name__ == "__main__":
    main()
