"""Prompts of zero-shot runs: how much a score depends on the prompt, how a run's prompt was
chosen, and the few-shot demonstrations put before each input. Runs of one model whose task
names are variants of one base task (`BASE-p0`, `BASE-p1`, …, as `tenser run --prompts all`
writes them) and that were scored the same way (shots, calibration) form a sensitivity
group: each variant's prompt and scores, and the spread of accuracy across variants. Long
prompts (a few-shot prompt holds its demonstrations) are shortened for display.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.store.runs import PREVIEW_CHARS
from reports import formatting as fmt
from reports import prompt_charts
from reports.sources import LoadedRun, setup

VARIANT = re.compile(r"^(.*)-p(\d+)$")


def sensitivity(runs: list[LoadedRun], headers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sensitivity groups: runs of one model on two or more prompt variants of one base task."""
    groups: dict[tuple[str, str, str], dict[int, int]] = {}
    repeats: dict[tuple[str, str, str], int] = {}
    for i, run in enumerate(runs):
        match = VARIANT.match(str(run.results["task"].get("name", "")))
        if not match:
            continue
        key = (str(run.results["model"].get("name_or_path", "model")), match.group(1), setup(run.results))
        members = groups.setdefault(key, {})
        if int(match.group(2)) in members:  # the same variant twice: the first run counts
            repeats[key] = repeats.get(key, 0) + 1
        members.setdefault(int(match.group(2)), i)
    return [_group(key, dict(sorted(m.items())), repeats.get(key, 0), runs, headers)
            for key, m in groups.items() if len(m) > 1]


def _group(key: tuple[str, str, str], members: dict[int, int], repeats: int, runs: list[LoadedRun],
           headers: list[dict[str, Any]]) -> dict[str, Any]:
    model, base, how = key
    picked = [runs[i] for i in members.values()]
    acc = np.array([r.metrics["accuracy"] for r in picked], dtype=float)
    spread = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)), "min": float(acc.min()), "max": float(acc.max())}
    intervals = [(r.metrics.get("ci95") or {}).get("accuracy") for r in picked]
    halves = [(ci[1] - ci[0]) / 2 for ci in intervals if isinstance(ci, list) and len(ci) == 2]
    notes = []
    if repeats:
        notes.append(f"{repeats} repeated variant run(s) left out: the first run of each variant counts.")
    if len({frozenset(r.ids) for r in picked}) > 1:
        notes.append("The variants were scored on different examples, so part of this spread is sampling, not prompt.")
    title = " · ".join(x for x in (Path(model).name or model, base, how) if x)
    return {
        "title": title,
        "rows": [_variant_row(v, runs[i], headers[i], spread) for v, i in members.items()],
        "values": spread,
        "stats": {k: fmt.num(v) for k, v in spread.items()} | {"range": fmt.num(spread["max"] - spread["min"])},
        "scale": "" if not halves else f"For scale, one run's 95% accuracy interval is about ±{fmt.num(float(np.median(halves)))}.",
        "notes": notes,
        "chart": prompt_charts.sensitivity_chart([f"p{v}" for v in members], acc.tolist(), intervals,
                                          [headers[i]["colour"] for i in members.values()], spread["mean"], spread["std"]),
    }


def _variant_row(variant: int, run: LoadedRun, header: dict[str, Any], spread: dict[str, float]) -> dict[str, Any]:
    task, m = run.results["task"], run.metrics
    mark = ""
    if spread["max"] > spread["min"]:
        mark = "highest" if m["accuracy"] == spread["max"] else "lowest" if m["accuracy"] == spread["min"] else ""
    return {
        "run": header,
        "variant": f"p{variant}",
        "task": str(task.get("name")),
        "prompt": fmt.short_prompt(str(task.get("prompt", ""))),
        "label_words": fmt.value(list(task.get("label_words") or [])),
        "accuracy": fmt.num(m["accuracy"]),
        "ci": fmt.interval((m.get("ci95") or {}).get("accuracy")),
        "f1": fmt.num(m["f1_macro"]),
        "mark": mark,
    }


def sensitivity_findings(groups: list[dict[str, Any]]) -> list[str]:
    """One sentence per sensitivity group for the summary."""
    return [
        f"Prompt sensitivity ({g['title']}, {len(g['rows'])} prompts): accuracy ranges from {g['stats']['min']} to "
        f"{g['stats']['max']} (mean {g['stats']['mean']}, SD {g['stats']['std']}), so the prompt alone moves "
        f"accuracy by up to {g['stats']['range']}."
        for g in groups
    ]


def prompting(run: LoadedRun, header: dict[str, Any]) -> dict[str, Any] | None:
    """How the run's prompt was chosen and its few-shot demonstrations; None when it has neither."""
    sel, shots = run.results.get("prompt_selection"), run.results.get("fewshot")
    if not sel and not shots:
        return None
    task = run.results["task"]
    return {
        "run": header,
        "prompt": fmt.short_prompt(str(task.get("prompt", ""))),
        "label_words": fmt.value(list(task.get("label_words") or [])),
        "selection": _selection(sel) if sel else None,
        "fewshot": _fewshot(shots) if shots else None,
    }


def _selection(sel: dict[str, Any]) -> dict[str, Any]:
    scores = {str(k): v for k, v in (sel.get("validation_accuracy") or {}).items() if isinstance(v, (int, float))}
    spread = ""
    if len(scores) > 1:
        spread = (f"Validation accuracy ranged from {fmt.num(min(scores.values()))} to {fmt.num(max(scores.values()))} "
                  f"across {len(scores)} prompts.")
    return {
        "chosen": str(sel["chosen"]),
        "method": str(sel.get("method") or "method not recorded"),
        "rows": [{"name": k, "accuracy": fmt.num(v), "chosen": k == sel["chosen"]} for k, v in scores.items()],
        "spread": spread,
    }


def _fewshot(shots: dict[str, Any]) -> dict[str, Any]:
    demos = [d for d in shots["demonstrations"] if isinstance(d, dict)]
    where = " · ".join(str(x) for x in (shots.get("source"), shots.get("split")) if x)
    return {
        "k": fmt.value(shots.get("k", len(demos))),
        "where": where or fmt.DASH,
        "seed": fmt.value(shots.get("seed")),
        "demos": [{"id": str(d.get("id", fmt.DASH)), "label": str(d.get("label", fmt.DASH)),
                   "preview": _preview(str(d.get("preview") or ""))} for d in demos],
    }


def _preview(text: str) -> str:
    return text + "…" if len(text) >= PREVIEW_CHARS else text


def selection_findings(run: LoadedRun) -> list[str]:
    """A sentence naming the chosen prompt and how it was chosen, when the run chose one."""
    sel = run.results.get("prompt_selection")
    if not sel:
        return []
    return [f"{run.role} ({run.name}) uses prompt {sel['chosen']}, chosen on validation data: {sel.get('method') or '—'}."]


def compared_row(runs: list[LoadedRun]) -> dict[str, Any] | None:
    """The 'Prompting' row of the what-was-compared table; None when no run used these options."""
    cells = []
    for run in runs:
        r = run.results
        shots, cal, sel = r.get("fewshot"), r.get("calibration"), r.get("prompt_selection")
        parts = [f"{shots.get('k')}-shot" if shots else "zero-shot",
                 f"{cal['method']} calibration" if cal else "no calibration",
                 f"prompt {sel['chosen']} chosen on validation" if sel else ""]
        cells.append(" · ".join(p for p in parts if p) if r["task"].get("kind", "zeroshot") == "zeroshot" else fmt.DASH)
    if not any(r.results.get(k) for r in runs for k in ("fewshot", "calibration", "prompt_selection")):
        return None
    return {"name": "Prompting", "cells": cells}
