"""Task files: Python, TOML or JSON files of tasks and families, each loaded once per process.

A Python file calls `register_task` / `register_family` itself (it is code: include only files
you trust). A TOML or JSON file is plain data: `[[task]]` tables of `Task` fields and
`[[family]]` tables of a zero-shot task's fields (`kind` may be left out) whose classifier twin
is made for it. A `dataset` naming a file or folder next to the task file (or starting with
`.`, `/` or `~`) is a local path, resolved against the task file's folder; otherwise a Hub id.
"""

from __future__ import annotations

import json
import runpy
import tomllib
from pathlib import Path
from typing import Any

from tasks.families import register_family
from tasks.registry import _REGISTRY, Task, TaskError, register_task, task_from_dict

_INCLUDED: dict[Path, list[str]] = {}  # each file's tasks, so a second include is a no-op


def include_file(path: str | Path, *, trust_metrics: bool = False) -> list[Task]:
    """Register the tasks defined in a Python, TOML or JSON file (once); return its tasks.

    A TOML/JSON file runs no code: its `metrics` (evaluate modules, which are code) need `trust_metrics`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TaskError(f"--include {path}: no such file")
    key = path.resolve()
    if key in _INCLUDED and all(name in _REGISTRY for name in _INCLUDED[key]):
        return [_REGISTRY[n] for n in _INCLUDED[key]]
    before = set(_REGISTRY)
    if path.suffix == ".py":
        runpy.run_path(str(path), run_name=f"tenser_include_{path.stem}")
    elif path.suffix in (".toml", ".json"):
        _register_declarative(path, trust_metrics)
    else:
        raise TaskError(f"--include {path}: expected a .py, .toml or .json file")
    _INCLUDED[key] = sorted(set(_REGISTRY) - before)
    return [_REGISTRY[n] for n in _INCLUDED[key]]


def _register_declarative(path: Path, trust_metrics: bool) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(f"--include {path}: not UTF-8 text (byte {exc.object[exc.start]:#x} at position {exc.start}); "
                        f"save it as UTF-8") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise TaskError(f"--include {path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if isinstance(data, dict) and ("task" in data or "family" in data):
        tables = {"task": _entries(data.get("task", []), path), "family": _entries(data.get("family", []), path)}
    else:
        tables = {"task": _entries(data, path), "family": []}
    where = f"--include {path}"
    for entry in [] if trust_metrics else tables["task"] + tables["family"]:
        if entry.get("metrics"):
            raise TaskError(f"{where}: task {entry.get('name')!r} names metrics {entry['metrics']!r}, evaluate modules "
                            f"whose code would run, and a TOML/JSON task file runs no code; pass --trust-metrics "
                            f"(include_file(..., trust_metrics=True)) if you trust them, or drop metrics")
    for entry in tables["task"]:
        register_task(task_from_dict(_local(entry, path), where))
    for entry in tables["family"]:
        register_family(task_from_dict({"kind": "zeroshot", **_local(entry, path)}, where))


def _entries(data: Any, path: Path) -> list[dict[str, Any]]:
    entries = data if isinstance(data, list) else [data]
    if not all(isinstance(e, dict) for e in entries):
        raise TaskError(f"--include {path}: expected a table of task fields or a list of them")
    return entries


def _local(entry: dict[str, Any], path: Path) -> dict[str, Any]:
    """`dataset` resolved against the task file's folder when it names a local file or folder."""
    dataset = entry.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        return entry
    local = (path.parent / Path(dataset).expanduser()).resolve()
    if dataset.startswith((".", "/", "~")) or local.exists():
        return {**entry, "dataset": str(local)}
    return entry
