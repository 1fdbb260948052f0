"""The table of benchmarks/prefix_vs_lm_eval.sh: per shot count, lm-eval and Tenser with and without
the prefix cache: process wall and CPU time (user+sys, /usr/bin/time), scoring time, tokens run
through the model, the speed ratios, and per-example agreement of predictions and prompt lengths.
A shot count run without the uncached way (NOPREFIX_SHOTS in the script) shows lm-eval and Tenser only.

    python benchmarks/prefix_vs_lm_eval_table.py OUT 0 2 5
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path


def timed(out: Path, name: str) -> tuple[float, float]:
    wall, user, sys_ = (float(x) for x in (out / f"time_{name}.txt").read_text().split()[-3:])
    return wall, user + sys_


def tenser(out: Path, name: str) -> dict:
    folder = Path(glob.glob(str(out / name / "*" / "results.json"))[0]).parent
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().split("\n") if line]
    labels = results["task"]["labels"]  # lm-eval's choices are in the task's label order (RTE: " True", " False")
    total = sum(r["n_tokens"] for r in rows)
    saved = (results["scoring"].get("prefix_cache") or {}).get("tokens_saved", 0)
    return {"score_s": results["timings"]["score_s"], "tokens": total - saved, "prefix": results["scoring"].get("prefix_cache"),
            "labels": labels, "pred": {r["id"]: labels.index(r["pred"]) for r in rows}, "n_tokens": {r["id"]: r["n_tokens"] for r in rows},
            "probs": {r["id"]: r["probs"] for r in rows}, "accuracy": results["metrics"]["accuracy"]}


def lm_eval(out: Path, k: int) -> dict:
    summary = json.loads((out / f"lmeval_{k}" / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / f"lmeval_{k}" / "predictions.jsonl").read_text().split("\n") if line]
    return {"score_s": summary["eval_s"], "tokens": summary["tokens_forwarded"], "accuracy": summary["accuracy"],
            "pred": {str(r["idx"]): r["pred"] for r in rows}, "n_tokens": {str(r["idx"]): r["n_tokens"] for r in rows}}


def main() -> None:
    out, shots = Path(sys.argv[1]), [int(k) for k in sys.argv[2:]]
    print("| shots | way | n | wall s | CPU s (user+sys) | scoring s | tokens through the model | accuracy | "
          "lm-eval wall / this | lm-eval CPU / this |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for k in shots:
        names = {"lm-eval": f"lmeval_{k}", "Tenser, no prefix cache": f"tenser_noprefix_{k}", "Tenser": f"tenser_{k}"}
        if not (out / names["Tenser, no prefix cache"]).exists():
            del names["Tenser, no prefix cache"]
        ways = {way: lm_eval(out, k) if way == "lm-eval" else tenser(out, name) for way, name in names.items()}
        times = {way: timed(out, name) for way, name in names.items()}
        base = times["lm-eval"]
        for way, w in ways.items():
            wall, cpu = times[way]
            print(f"| {k} | {way} | {len(w['pred'])} | {wall:.1f} | {cpu:.1f} | {w['score_s']:.1f} | {w['tokens']:,} | "
                  f"{w['accuracy']:.3f} | {base[0] / wall:.2f} | {base[1] / cpu:.2f} |")
        lm, on, off = ways["lm-eval"], ways["Tenser"], ways.get("Tenser, no prefix cache")
        ids = sorted(lm["pred"])
        same_lm = sum(lm["pred"][i] == on["pred"][i] for i in ids)
        same_len = sum(lm["n_tokens"][i] == on["n_tokens"][i] for i in ids)
        uncached = ""
        if off is not None:
            same_off = sum(off["pred"][i] == on["pred"][i] for i in ids)
            diff = max(abs(on["probs"][i][c] - off["probs"][i][c]) for i in ids for c in on["labels"])
            uncached = f", Tenser = Tenser without the cache on {same_off}/{len(ids)} (largest probability difference {diff:.1e})"
        notes.append(f"- {k} shots: predictions Tenser = lm-eval on {same_lm}/{len(ids)}{uncached}; prompt lengths equal "
                     f"to lm-eval's context on {same_len}/{len(ids)}; prefix cache: {on['prefix']}")
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
