"""What `benchmarks/gpu.sh` writes under OUT, step by step: results.json (every figure, rewritten
after each step), summary.md (appended as each step ends) and log.txt (the steps' own output).

A killed command still leaves every figure of the steps that ended before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def hardware() -> dict[str, Any]:
    """nvidia-smi's name, driver and memory, with the torch, CUDA and transformers versions.

    Read without initialising CUDA in this process, whose forks run the steps."""
    import platform

    import torch
    import transformers

    info: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"unavailable ({exc.__class__.__name__})"
    return {**info, "python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine()}


class Record:
    """results.json and summary.md under `out`, kept up to date as steps end."""

    def __init__(self, out: Path, settings: dict[str, Any], hw: dict[str, Any]) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"hardware": hw, "settings": settings, "steps": {}}
        self._save()
        lines = [f"# benchmarks/gpu.sh, {hw['date']}", "",
                 f"Hardware: {hw.get('nvidia_smi')}; torch {hw.get('torch')}, CUDA "
                 f"{hw.get('cuda')}, transformers {hw.get('transformers')}, Python {hw.get('python')}, "
                 f"{hw.get('cpus')} CPUs.", "",
                 "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), ""]
        (out / "summary.md").write_text("\n".join(lines) + "\n")

    def step(self, name: str, entry: dict[str, Any], text: str = "") -> None:
        """Save one step's entry (status, seconds, command, figures) and its summary lines."""
        self.data["steps"][name] = entry
        self._save()
        head = f"## {name}: {entry['status']}" + (f" ({entry['seconds']:.0f} s)" if "seconds" in entry else "")
        lines = [head, ""]
        if entry.get("command"):
            lines += [f"`{entry['command']}`", ""]
        if text:
            lines += [text.rstrip(), ""]
        with open(self.out / "summary.md", "a") as f:
            f.write("\n".join(lines) + "\n")
        print(head, file=sys.stderr, flush=True)

    def get(self, name: str) -> dict[str, Any]:
        """The entry of an earlier step ({} when it did not run)."""
        return dict(self.data["steps"].get(name) or {})

    def _save(self) -> None:
        tmp = self.out / "results.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        os.replace(tmp, self.out / "results.json")


def bench_figures(folder: Path, params: dict[str, Any], peak_tflops: float) -> tuple[dict[str, Any], str]:
    """bench.json's figures, each Tenser pass with its share of the peak matrix rate; bench.md."""
    path = folder / "bench.json"
    if not path.is_file():
        return {}, ""
    saved = json.loads(path.read_text())
    lines = []
    for r in saved["scoring"]:
        tenser = r["ways"].get("tenser")
        if tenser and params.get("non_embedding"):
            # 2 FLOPs per weight per token, useful tokens only (padding is waste); attention's own
            # FLOPs (a few % at IMDB lengths) are left out, so this is a lower bound.
            flops = 2 * params["non_embedding"] * r["tokens"] / tenser["seconds"]
            tenser["model_tflops"] = float(f"{flops / 1e12:.4g}")
            tenser["share_of_peak"] = float(f"{flops / (peak_tflops * 1e12):.4g}")
            lines.append(f"- {r['task']}: {flops / 1e12:.3g} model TFLOP/s, "
                         f"{100 * flops / (peak_tflops * 1e12):.3g}% of {peak_tflops:.0f} TFLOP/s (2 x non-embedding "
                         f"parameters x tokens, attention left out)")
    md = (folder / "bench.md").read_text() if (folder / "bench.md").is_file() else ""
    return saved, md + "\n".join(lines)
