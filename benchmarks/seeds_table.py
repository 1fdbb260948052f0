"""Print the README's measured-seeds lines from a `tenser compare --seeds` folder, so the numbers
in README are copied, not typed: per-seed accuracy and gain, seed SD, test SE, pooled interval and
its method, the verdict, the validation check, and the wall time and peak memory of `/usr/bin/time -v`.

    python benchmarks/seeds_table.py OUT [TIME_LOG]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def wall_and_memory(log: Path) -> str:
    """'wall 1 h 2 min 3 s, peak memory 3.4 GB' from a `/usr/bin/time -v` log."""
    text = log.read_text(errors="replace")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not wall or not peak:
        return f"{log}: no /usr/bin/time -v summary (did the command finish?)"
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = round(sum(p * 60 ** i for i, p in enumerate(reversed(parts))))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    shown = (f"{h} h " if h else "") + (f"{m} min " if h or m else "") + f"{s} s"
    return f"wall {shown}, peak memory {int(peak.group(1)) / 1e6:.1f} GB"


def lines(out: Path) -> list[str]:
    """The seed table and the pooled figures of OUT/comparison.json, as README markdown."""
    comparison = json.loads((out / "comparison.json").read_text())
    seeds, validation = comparison["seeds"], comparison.get("validation") or {}
    val = {f["seed"]: f["accuracy"] for f in validation.get("finetuned", [])}
    base = seeds["baseline"]["accuracy"]
    rows = ["| | validation accuracy | test accuracy | gain (points) |", "|---|---|---|---|",
            f"| pretrained (zero-shot) | {validation.get('pretrained', float('nan')):.3f} | {base:.3f} | |"]
    rows += [f"| seed {s['seed']} | {val.get(s['seed'], float('nan')):.3f} | {s['accuracy']:.3f} | "
             f"{100 * s['gain']:+.1f} |" for s in seeds["per_seed"]]
    p = seeds["pooled"]
    low, high = p["ci95"]
    return rows + [
        "",
        f"Mean gain {100 * p['mean']:+.1f} points; seed SD {100 * p['seed_sd']:.1f} points; test-sampling SE "
        f"{100 * p['test_se']:.1f} points; both sources SE {100 * p['se']:.1f} points.",
        f"95% interval for the recipe's expected gain: {100 * low:+.1f} to {100 * high:+.1f} points "
        f"({p['interval']}, {p['df']} df).",
        f"Verdict: {seeds['verdict']}",
        f"Flips across seeds: {seeds['flips']}.",
        f"Validation check ({validation.get('n', '?')} examples): {validation.get('warning') or 'no warning'}",
    ]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    print("\n".join(lines(out)))
    if len(argv) > 1:
        print(wall_and_memory(Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
