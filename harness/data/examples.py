"""Loading examples: the Hub by default, or a local file or folder given with `--data`.

Everything becomes a list of `Example(id, text, label, fields)` with label ids in the task's
label order and the text of each input column the task reads (`tasks.fields`), plus a `DataInfo` record (source, split, fingerprint). `--limit` draws a
seeded sample stratified by label, never a prefix (IMDB files are sorted by label).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.embedded import data_path, is_embedded
from harness.data.hub import hub_endpoint_reachable, hub_offline
from harness.errors import UserError, first_line
from harness.store.identity import data_ref
from tasks import Task
from tasks.fields import input_columns, main_column

FILE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


@dataclass(frozen=True)
class Example:
    """One input to classify. `id` is stable across runs on the same data."""

    id: str
    text: str  # the main column's text (text_column's for a one-field task), for code that reads one text
    label: int
    # Every input column's text, in the task's order; {} = `text` alone (examples built by hand).
    fields: Mapping[str, str] = field(default_factory=dict)

    def inputs(self) -> str | Mapping[str, str]:
        """What the encoder and the score cache take: the text alone for one field, else every field."""
        return self.fields if len(self.fields) > 1 else self.text

    def __hash__(self) -> int:
        return hash((self.id, self.text, self.label, tuple(self.fields.items())))


@dataclass(frozen=True)
class DataInfo:
    """Where examples came from and how they were sampled (recorded in results.json)."""

    source: str
    split: str
    fingerprint: str
    n_available: int
    limit: int | None
    seed: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready `data` and `sample` sections of results.json."""
        return {
            "data": {"source": self.source, "split": self.split, "fingerprint": self.fingerprint,
                     "n_available": self.n_available},
            "sample": {"limit": self.limit, "seed": self.seed, "n": self.n,
                       "strategy": "all" if self.n == self.n_available else "stratified"},
        }


def load_examples(
    task: Task, *, data: str | None = None, split: str | None = None, limit: int | None = None, seed: int = 0
) -> tuple[list[Example], DataInfo]:
    """Load `split` of the task's data (Hub or `data` path) and sample `limit` examples."""
    split = split or task.split
    if limit is not None and limit < 1:
        raise UserError(f"{{limit}} {limit}: must be a positive number of examples", param="limit")
    data = data if data is not None else local_dataset(task)
    if data is None:
        ids, columns, raw_labels = _from_hub(task, split)
        source = f"hub:{task.dataset}" + (f"/{task.dataset_config}" if task.dataset_config else "")
    elif is_embedded(data):  # a sample shipped inside the package (see harness.backends.embedded)
        ids, columns, raw_labels = _from_path(Path(data_path(data)), task, split)
        source = data
    else:
        ids, columns, raw_labels = _from_path(Path(data).expanduser(), task, split)
        source = data_ref(data) or data
    examples = _to_examples(ids, columns, raw_labels, task, source)
    info_n = len(examples)
    chosen = sample_stratified(examples, limit, seed, source=source)
    info = DataInfo(source, split, _fingerprint(examples), info_n, limit, seed, len(chosen))
    return chosen, info


def local_dataset(task: Task) -> str | None:
    """The task's `dataset` when it is a local path (absolute, or starting with . or ~), None for a Hub id."""
    if not task.dataset:
        raise UserError(f"task {task.name!r} names no dataset; pass {{data}} PATH (a parquet/CSV/JSONL file or "
                        f"a folder), or set the task's dataset to a Hub id or a local path", param="data")
    if task.dataset.startswith(("/", ".", "~")) or Path(task.dataset).expanduser().exists():
        return task.dataset
    return None


def sample_stratified(examples: list[Example], limit: int | None, seed: int, *, source: str = "data") -> list[Example]:
    """A seeded sample of `limit` examples with label shares as in `examples`, in data order."""
    if limit is None or limit >= len(examples):
        if limit is not None and limit > len(examples):
            print(f"note: --limit {limit} is larger than {source} ({len(examples)} examples); using all of them",
                  file=sys.stderr)
        return list(examples)
    rng = np.random.default_rng(seed)
    labels = np.array([e.label for e in examples])
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * limit / len(examples)
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: limit - take.sum()]:
        take[i] += 1  # largest remainders get the leftover places
    picked = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take)]
    return [examples[i] for i in sorted(np.concatenate(picked).tolist())]


Columns = dict[str, list[Any]]  # each input column's values, in the task's order


def _to_examples(ids: list[str], columns: Columns, raw_labels: list[Any], task: Task, source: str) -> list[Example]:
    if not ids:
        raise UserError(f"{source}: no examples in the data; check the file or the split name")
    labels = _label_ids(raw_labels, task, source)
    for name, texts in columns.items():
        empty = [i for i, t in zip(ids, texts) if not isinstance(t, str) or not t.strip()]
        what = "text" if len(columns) == 1 else f"text in column {name!r}"
        if empty:
            raise UserError(
                f"{source}: {len(empty)} example(s) have empty {what} (ids: {', '.join(empty[:5])}); remove them and retry"
            )
    if len(set(ids)) != len(ids):
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise UserError(f"{source}: {len(dup)} example id(s) repeat ({', '.join(dup[:5])}); make the id column unique")
    main = main_column(task)
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return [Example(i, row[main], lab, row) for i, row, lab in zip(ids, rows, labels)]


def _label_ids(raw: list[Any], task: Task, source: str) -> list[int]:
    names = {name: i for i, name in enumerate(task.labels)}
    out, bad = [], set()
    for value in raw:
        if isinstance(value, str) and value in names:
            out.append(names[value])
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(task.labels):
            out.append(int(value))
        else:
            bad.add(repr(value))
    if bad:
        allowed = ", ".join(f"{i} or {n!r}" for n, i in names.items())
        raise UserError(
            f"{source}: labels outside the task's labels: {', '.join(sorted(bad)[:5])} (allowed: {allowed}); "
            f"fix the data or the task's labels"
        )
    return out


def _data_error(path: Path, why: str, also: str | None = None) -> UserError:
    """A problem with the data at `path` (given as `data`; `also`: another parameter the fix names)."""
    return UserError(f"{{data}} {path}: {why}", param="data", mentions=(also,) if also else ())


def _fingerprint(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:  # one field hashes as it always did, so one-field fingerprints stay the same
        text = e.text if len(e.fields) <= 1 else json.dumps(e.fields, ensure_ascii=False)
        h.update(f"{e.id}\x00{e.label}\x00{text}\x01".encode())
    return "sha256:" + h.hexdigest()[:16]


def _columns(table: dict[str, list[Any]], task: Task, source: str, split: str) -> tuple[list[str], Columns, list[Any]]:
    there = ", ".join(table) or "none"
    for column in input_columns(task):
        if column not in table:
            raise UserError(f"{source}: no column {column!r} (columns: {there}); " + _fix_column(task, column))
    if task.label_column not in table:
        raise UserError(f"{source}: no column {task.label_column!r} (columns: {there}); "
                        f"rename it or pass -T label_column=NAME")
    labels = table[task.label_column]
    ids = [str(i) for i in table["id"]] if "id" in table else [f"{split}-{i:05d}" for i in range(len(labels))]
    return ids, {c: table[c] for c in input_columns(task)}, labels


def _fix_column(task: Task, column: str) -> str:
    """How to point the task at another column: the field naming `column`, or the prompt's placeholder."""
    named = [f for f in ("text_column", "pair_column") if getattr(task, f) == column]
    if task.kind == "zeroshot" and column != task.text_column:
        return f"the prompt's placeholder {{{column}}} must name a column; fix the prompt or the data"
    return f"rename it or pass -T {named[0] if named else 'text_column'}=NAME"


def _from_path(path: Path, task: Task, split: str) -> tuple[list[str], Columns, list[Any]]:
    if not path.exists():
        raise _data_error(path, "no such file or folder")
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _columns(_from_disk(path, split), task, str(path), split)
        split_file = next((path / f"{split}{s}" for s in FILE_SUFFIXES if (path / f"{split}{s}").is_file()), None)
        if split_file is not None:  # a folder of SPLIT.parquet / SPLIT.csv / ... files
            return _from_path(split_file, task, split)
        if splits := sorted(p.stem for p in path.iterdir() if p.is_file() and p.suffix in FILE_SUFFIXES):
            raise _no_split(path, split, splits)
        return _from_folder(path, task, split)
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise _data_error(path, f"unsupported file type; use {', '.join(FILE_SUFFIXES)} or a folder")
    if path.stat().st_size == 0:
        raise _data_error(path, "the file is empty")
    return _columns(_read_table(path), task, str(path), split)


def _read_table(path: Path) -> dict[str, list[Any]]:
    import pandas as pd
    import pyarrow

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix == ".csv":
            df = pd.read_csv(path, encoding="utf-8", keep_default_na=False)
        else:
            # JSON is typed already: pandas' dtype guessing would turn "001" into 1 and a review "10" into 10.
            df = pd.read_json(path, lines=suffix == ".jsonl" or _looks_like_jsonl(path), dtype=False,
                              convert_dates=False)
    except UnicodeDecodeError as exc:
        raise _data_error(
            path, f"not UTF-8 (bad byte at position {exc.start}); re-save it as UTF-8, "
            f"e.g. iconv -f latin1 -t utf-8 {path.name} > fixed{suffix}"
        ) from None
    except (ValueError, OSError, pyarrow.ArrowException, pd.errors.ParserError) as exc:
        lines = suffix == ".jsonl" or (suffix == ".json" and _looks_like_jsonl(path))
        bad = _bad_json_line(path) if lines else None
        raise _data_error(path, bad or f"cannot read it as {suffix[1:]} ({first_line(exc)})") from None
    return {str(c): df[c].tolist() for c in df.columns}


def _bad_json_line(path: Path) -> str | None:
    """For JSON Lines: which line is not a JSON object (pandas only gives a character position)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        return f"line {lineno} is not valid JSON ({exc.msg} at character {exc.pos + 1}); fix or " \
                               f"remove that line"
                    if not isinstance(record, dict):
                        return f"line {lineno} is not a JSON object; each line must be one record"
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _looks_like_jsonl(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"{"


def _from_disk(path: Path, split: str) -> dict[str, list[Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise _data_error(path, f"no split {split!r} (splits: {', '.join(loaded)}); pass {{split}}", "split")
        loaded = loaded[split]
    assert isinstance(loaded, Dataset)
    return loaded.to_dict()


def _no_split(path: Path, split: str, splits: list[str]) -> UserError:
    return UserError(f"{{data}} {path}: no split {split!r} (splits: {', '.join(splits)}); pass {{split}} {splits[0]}",
                     param="data", mentions=("split",))


def _from_folder(path: Path, task: Task, split: str) -> tuple[list[str], Columns, list[Any]]:
    """An aclImdb-style folder: SPLIT/LABEL/*.txt where LABEL is a label name or its first 3 letters."""
    if len(input_columns(task)) > 1:
        raise _data_error(path, f"a folder of text files holds one text per example, but task {task.name!r} reads "
                                f"{', '.join(input_columns(task))}; give a parquet, CSV or JSONL file with those columns")
    names = {n for label in task.labels for n in (label, label[:3])}
    splits = sorted(d.name for d in path.iterdir() if d.is_dir() and any((d / n).is_dir() for n in names))
    if splits and not (path / split).is_dir():
        raise _no_split(path, split, splits)
    root = path / split if (path / split).is_dir() else path
    ids, texts, labels = [], [], []
    for label_id, name in enumerate(task.labels):
        folder = next((root / d for d in (name, name[:3]) if (root / d).is_dir()), None)
        if folder is None:
            raise _data_error(
                path, f"expected a folder per label ({', '.join(task.labels)} or "
                f"{', '.join(n[:3] for n in task.labels)}) in {root}, as in aclImdb/{split}/pos"
            )
        for file in sorted(folder.glob("*.txt")):
            try:
                texts.append(file.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                raise _data_error(file, "not UTF-8; re-save it as UTF-8") from None
            ids.append(f"{folder.name}/{file.name}")
            labels.append(label_id)
    return ids, {input_columns(task)[0]: texts}, labels


def _from_hub(task: Task, split: str) -> tuple[list[str], Columns, list[Any]]:
    import datasets

    fix = "pass a local copy with {data} PATH (parquet, CSV, JSONL, aclImdb folder or save_to_disk folder)"
    if not hub_offline() and not hub_endpoint_reachable():
        raise UserError(f"cannot reach the Hugging Face Hub to load dataset {task.dataset!r}; {fix}", mentions=("data",))
    try:
        ds = datasets.load_dataset(task.dataset, task.dataset_config, split=split)
    except (ConnectionError, FileNotFoundError, ValueError) as exc:
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if hub_offline() else first_line(exc)
        raise UserError(f"cannot load dataset {task.dataset!r} split {split!r} ({why}); {fix}", mentions=("data",)) from None
    return _columns(ds.to_dict(), task, f"hub:{task.dataset}", split)
