"""Run folders: the only interface between scoring and the report or demo.

A finished run folder holds `results.json` (everything about the run plus its metrics) and
`predictions.jsonl` (one JSON object per example, in example order). Files are written
atomically (temporary file, then rename) so a crash never leaves a half-written result.
While scoring, `run.json` names the job (its key and how to restart it) and predictions are
appended to `predictions.partial.jsonl` (`predictions.rankR.jsonl` per process when several
share the job) batch by batch, flushed and fsynced, each file opening with a header line that
holds the key. A re-run of the same job resumes from them; a crash can tear only the last line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.store import keyed_folder

SCHEMA_VERSION = 1
RESULTS = "results.json"
PREDICTIONS = "predictions.jsonl"
PARTIAL = "predictions.partial.jsonl"
RUN_META = "run.json"
RANK_GLOB = "predictions.rank*.jsonl"
LOCK = keyed_folder.LOCK
HEADER = "tenser_partial"
PREVIEW_CHARS = 200


def text_sha(text: str) -> str:
    """The `text_sha` of an example's text in predictions.jsonl: reports pair runs by id only when it matches.

    >>> text_sha("A fine film.")
    '2b9e8b7903e329c1'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def resume_command(run_dir: Path) -> str:
    """The command that finishes the unfinished run in `run_dir`."""
    return f"tenser run --resume {shlex.quote(str(run_dir))}"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename; a failed write is a UserError."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        fix = "free some space or choose another output folder" if full else "choose a path in a folder you can write to"
        raise UserError(f"cannot write {path} ({exc.strerror or exc}); {fix}") from None


def partial_name(rank: int, size: int) -> str:
    """The partial file one process appends to: one per rank when several share a job."""
    return PARTIAL if size == 1 else f"predictions.rank{rank}.jsonl"


def _rank_of(path: Path) -> int:
    digits = path.stem.removeprefix("predictions.rank")
    return int(digits) if digits.isdigit() else -1


def partial_files(run_dir: Path, rank: int = 0, size: int = 1) -> list[Path]:
    """The partial files process `rank` of `size` resumes from: its own, and (rank 0) any no rank owns."""
    if rank > 0:
        return [p for p in [run_dir / partial_name(rank, size)] if p.is_file()]
    ranks = [p for p in sorted(run_dir.glob(RANK_GLOB)) if _rank_of(p) == 0 or _rank_of(p) >= size]
    return [p for p in [run_dir / PARTIAL, *ranks] if p.is_file()]


def _unfinished_key(path: Path) -> str | None:
    """The key of the unfinished run in `path` (run.json, no results.json), else None."""
    if (path / RESULTS).exists() or not (path / RUN_META).is_file():
        return None
    try:
        key = json.loads((path / RUN_META).read_text(encoding="utf-8")).get("key")
    except (ValueError, AttributeError, OSError):
        return None
    return key if isinstance(key, str) else None


RUN_WORDING = keyed_folder.Wording(
    "out", not_folder="output {path} exists and is not a folder; choose another {out}",
    not_empty="output folder {path} is not empty; pass {overwrite} or choose another {out}",
    cannot_create="cannot create output folder {path}: {why}; choose another {out}")


def prepare_run_dir(path: Path, *, overwrite: bool, key: str | None = None,
                    spec: dict[str, Any] | None = None) -> Path:
    """Create `path` for a run. A non-empty folder is refused unless `overwrite` (our files are removed),
    or unless it holds an unfinished run of the same `key`, which is then resumed."""
    found = _unfinished_key(path) if path.is_dir() else None
    if key is not None and found == key and not overwrite:
        return path
    if found is not None and not overwrite:
        raise UserError(f"output folder {path} holds an unfinished run of another job (model, task, data or "
                        f"sample differ); pass {{overwrite}} to discard it or choose another {{out}}", param="out",
                        mentions=("overwrite",))
    keyed_folder.make_ready(path, RUN_WORDING, overwrite=overwrite, clear=_our_files)
    if key is not None:
        write_atomic(path / RUN_META, json.dumps({"key": key, "job": spec or {}}, indent=2, ensure_ascii=False) + "\n")
    return path


def _our_files(path: Path) -> list[Path]:
    """What `--overwrite` removes from a run folder: the files a run writes, nothing else."""
    return [path / n for n in (RESULTS, PREDICTIONS, PARTIAL, RUN_META)] + list(path.glob(RANK_GLOB))


run_lock = keyed_folder.lock
lock_on_main = keyed_folder.lock_on_main


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """run.json of an unfinished run folder (for `tenser run --resume`)."""
    path = run_dir / RUN_META
    if (run_dir / RESULTS).is_file():
        raise UserError(f"{{resume}} {run_dir}: this run is finished (results.json exists); nothing to resume", param="resume")
    if not path.is_file():
        raise UserError(f"{{resume}} {run_dir}: no {RUN_META} there; give a run folder left by an interrupted "
                        f"`tenser run`", param="resume")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); re-run the original command with --overwrite") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("job"), dict) or "model" not in meta["job"]:
        raise UserError(f"{path}: not a Tenser run.json; re-run the original command with --overwrite")
    return meta


class PredictionLog:
    """Appends prediction records to a partial file, flushed and fsynced per batch.

    With a `key`, a new file opens with a header line naming the job, so that a leftover file is
    never mistaken for another job's.
    """

    def __init__(self, run_dir: Path, *, name: str = PARTIAL, key: str | None = None) -> None:
        self.path, self.run_dir = run_dir / name, run_dir
        try:
            self._file = open(self.path, "a", encoding="utf-8")
            if key is not None and self._file.tell() == 0:
                self._write([{HEADER: 1, "key": key}])
        except OSError as exc:
            raise self._error(exc) from None

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        try:
            self._write(records)
        except OSError as exc:
            raise self._error(exc) from None

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        self._file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._file.flush()
        os.fsync(self._file.fileno())

    def _error(self, exc: OSError) -> UserError:
        return UserError(f"cannot write {self.path} ({exc.strerror or exc}); the predictions written before are "
                         f"kept; free some space, then resume with: {resume_command(self.run_dir)}")

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a failed write was reported when it happened
            self._file.close()


def read_partial(path: Path, *, key: str | None,
                 check: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[dict[str, Any]]:
    """The records of a partial file. An unterminated last line is a write torn by a crash: it is dropped
    (and cut from the file). Any other damaged line, or a file of another job, is a UserError."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    redo = "pass --overwrite to score this run again from the start"
    records = []
    for lineno, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise UserError(f"{path}: line {lineno} is damaged (not valid JSON); {redo}") from None
        if lineno == 1 and (key is not None or (isinstance(record, dict) and HEADER in record)):
            if key is not None and (not isinstance(record, dict) or record.get("key") != key):
                raise UserError(f"{path}: holds predictions of another job (model, task, data or sample differ); {redo}")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not check(record):
            raise UserError(f"{path}: line {lineno} is not a prediction record of this run; {redo}")
        records.append(record)
    if torn:
        os.truncate(path, len(data) - len(torn))
    return records


def count_partial(run_dir: Path) -> int:
    """How many prediction records the run folder's partial files hold."""
    n = 0
    for p in [run_dir / PARTIAL, *run_dir.glob(RANK_GLOB)]:
        if p.is_file():
            n += sum(1 for line in p.read_bytes().split(b"\n")[:-1] if not line.startswith(b'{"' + HEADER.encode()))
    return n


def save_run(run_dir: Path, results: dict[str, Any], predictions: list[dict[str, Any]]) -> Path:
    """Write the final `predictions.jsonl` and `results.json`; then drop the partial files and run.json."""
    results = {"schema_version": SCHEMA_VERSION, **results}
    try:
        write_atomic(run_dir / PREDICTIONS, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
        write_atomic(run_dir / RESULTS, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    except UserError as exc:
        if (run_dir / RUN_META).is_file():
            raise exc.extended(f"; the scored predictions are kept, resume with: {resume_command(run_dir)}") from None
        raise
    for p in [run_dir / PARTIAL, run_dir / RUN_META, *run_dir.glob(RANK_GLOB)]:
        p.unlink(missing_ok=True)
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
    lines = preds_path.read_bytes().split(b"\n")
    for lineno, line in enumerate(lines[:-1] if not lines[-1] else lines, 1):
        try:
            predictions.append(json.loads(line))
        except ValueError:  # also bytes that are not UTF-8
            raise UserError(f"{preds_path}: line {lineno} is not valid JSON; re-run the evaluation") from None
    return results, predictions


@dataclass(frozen=True)
class Run:
    """A finished run folder: `results.json` as `.results` (`.metrics` its metrics) and
    `predictions.jsonl` as `.records` or, for notebooks, `.predictions` (a pandas DataFrame)."""

    path: Path
    results: dict[str, Any]
    records: list[dict[str, Any]]

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Open the run folder at `path` (UserError when it is not a finished one)."""
        results, records = load_run(path)
        return cls(Path(path), results, records)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.results["metrics"])

    @property
    def predictions(self) -> Any:
        """predictions.jsonl as a pandas DataFrame, one row per example in data order."""
        import pandas as pd

        return pd.DataFrame(self.records)
