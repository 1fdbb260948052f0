"""The run manifest: every recorded fact about how each run was made (model and its
hash or revision, task spec, scoring, data, sample, device, dtype, library versions,
timings; calibration, prompt selection and few-shot demonstrations where recorded), laid
out as one table per group with a column per run. Keys are shown as recorded, unknown
extra keys included, and rows whose values differ between runs are flagged so the reader
sees at once what changed. Long prompts are shortened to their first and last characters.
"""

from __future__ import annotations

from typing import Any

from reports import formatting as fmt
from reports.sources import LoadedRun


def manifest(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """Groups of rows (name, cells per run, differs) describing how each run was made."""
    groups = [
        ("Run", [_run_facts(r) for r in runs]),
        ("Model", [r.results.get("model") or {} for r in runs]),
        ("Task", [r.results.get("task") or {} for r in runs]),
        ("Scoring", [r.results.get("scoring") or {} for r in runs]),
        ("Data", [r.results.get("data") or {} for r in runs]),
        ("Sample", [r.results.get("sample") or {} for r in runs]),
        ("Runtime", [_without(r.results.get("runtime") or {}, "versions") for r in runs]),
        ("Library versions", [(r.results.get("runtime") or {}).get("versions") or {} for r in runs]),
        ("Timings", [r.results.get("timings") or {} for r in runs]),
        # Only zero-shot runs scored with these options have the groups below.
        ("Calibration", [_without(r.results.get("calibration") or {}, "content_free_each") for r in runs]),
        ("Prompt selection", [r.results.get("prompt_selection") or {} for r in runs]),
        ("Few-shot", [_fewshot_facts(r.results.get("fewshot") or {}) for r in runs]),
    ]
    return [{"name": name, "rows": _rows(facts)} for name, facts in groups if any(facts)]


def _run_facts(run: LoadedRun) -> dict[str, Any]:
    return {
        "folder": str(run.path),
        "created": run.results.get("created"),
        "tenser_version": run.results.get("tenser_version"),
        "schema_version": run.results.get("schema_version"),
    }


def _fewshot_facts(shots: dict[str, Any]) -> dict[str, Any]:
    """Demonstrations by id and label; their previews are shown in the prompts section."""
    demos = [d for d in shots.get("demonstrations") or [] if isinstance(d, dict)]
    listed = ", ".join(f"{d.get('id')} ({d.get('label')})" for d in demos)
    return {**_without(shots, "demonstrations"), "demonstrations": listed} if shots else {}


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def _rows(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys: list[str] = []
    for d in facts:
        keys += [k for k in d if k not in keys]
    rows = []
    for key in keys:
        cells = [_cell(key, d.get(key)) for d in facts]
        rows.append({"name": key, "cells": cells, "differs": len(facts) > 1 and len(set(cells)) > 1})
    return rows


def _cell(key: str, v: Any) -> str:
    """Timings get units, long prompts are shortened; everything else goes through the generic formatter."""
    if key == "prompt" and isinstance(v, str):
        return fmt.short_prompt(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if key.endswith("_per_s"):
            return f"{v:,.1f} /s"
        if key.endswith("_s"):
            return f"{v:,.2f} s"
        if key == "n_parameters":
            return f"{v:,} ({fmt.parameters(int(v))})"
    return fmt.value(v)
