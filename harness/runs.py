"""Run folders: the only interface between scoring and the report or demo.

A run folder holds `results.json` (everything about the run plus its metrics) and
`predictions.jsonl` (one JSON object per example, in example order). Files are written
atomically (temporary file, then rename) so a crash never leaves a half-written result;
while scoring, predictions are appended to `predictions.partial.jsonl` batch by batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import UserError

SCHEMA_VERSION = 1
RESULTS = "results.json"
PREDICTIONS = "predictions.jsonl"
PARTIAL = "predictions.partial.jsonl"
PREVIEW_CHARS = 200


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def prepare_run_dir(path: Path, *, overwrite: bool) -> Path:
    """Create `path` for a new run; refuse a non-empty folder unless `overwrite`."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output {path} exists and is not a folder; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"output folder {path} is not empty; pass --overwrite or choose another --out")
        for name in (RESULTS, PREDICTIONS, PARTIAL):
            (path / name).unlink(missing_ok=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {path}: {exc.strerror}; choose another --out") from None
    return path


class PredictionLog:
    """Appends prediction records to the partial file, flushed and fsynced per batch."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / PARTIAL
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self._file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def save_run(run_dir: Path, results: dict[str, Any], predictions: list[dict[str, Any]]) -> Path:
    """Write the final `predictions.jsonl` and `results.json`; drop the partial file."""
    results = {"schema_version": SCHEMA_VERSION, **results}
    write_atomic(run_dir / PREDICTIONS, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    write_atomic(run_dir / RESULTS, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (run_dir / PARTIAL).unlink(missing_ok=True)
    return run_dir


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a run folder; a missing or malformed file raises UserError naming it."""
    run_dir = Path(run_dir)
    results_path, preds_path = run_dir / RESULTS, run_dir / PREDICTIONS
    for p in (results_path, preds_path):
        if not p.is_file():
            raise UserError(f"{p}: missing; is {run_dir} a finished run folder (from `tenser run`)?")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{results_path}: malformed JSON ({exc})") from None
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{results_path}: not a Tenser results file of schema version {SCHEMA_VERSION}")
    predictions = []
    with open(preds_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                predictions.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"{preds_path}: line {lineno} is not valid JSON; re-run the evaluation") from None
    return results, predictions
