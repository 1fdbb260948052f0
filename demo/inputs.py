"""Checking what users type or upload, before any tokenizing: one text, or a batch of
texts pasted one per line or uploaded as a CSV with a `text` column. A task with several input
fields takes one text per field, and a batch as a CSV with a column per field (or pasted lines
with the fields separated by tabs).

Problems raise `InputProblem`, whose message the app shows as is. Checks are cheap
(lengths and counts), so oversize input is refused before it costs model time. Review
text is kept exactly as given (no stripping), so scores equal `tenser run`'s.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from harness.errors import UserError
from harness.scoring.encoding import Inputs

MAX_CHARS = 20_000  # per text; IMDB's longest is ~14,000 characters
MAX_ROWS = 500  # per batch; about a minute of CPU time for GPT-2 small
TEXT_COLUMN = "text"
EMPTY_REVIEW = "Type or paste a text first (or pick one of the examples below, where there are some)."
EMPTY_BATCH = f"Paste texts, one per line, or upload a CSV file with a `{TEXT_COLUMN}` column."


class InputProblem(UserError):
    """Input the demo refuses; the message tells the user what to change."""


def check_review(text: str | None) -> str:
    """The text unchanged; empty or over-long text raises InputProblem."""
    if text is None or not text.strip():
        raise InputProblem(EMPTY_REVIEW)
    if len(text) > MAX_CHARS:
        raise InputProblem(
            f"This text is {len(text):,} characters long; the demo takes at most {MAX_CHARS:,}. "
            f"Paste a shorter part of it."
        )
    return text


def check_fields(texts: Sequence[str | None], fields: Sequence[str]) -> Inputs:
    """One text per input field (the text alone for a one-field task); each checked as `check_review`."""
    if len(fields) <= 1:
        return check_review(texts[0] if texts else None)
    empty = [f for f, t in zip(fields, texts) if t is None or not t.strip()]
    if empty:
        raise InputProblem(f"Fill in every field first (empty: {', '.join(empty)}).")
    long = [f for f, t in zip(fields, texts) if len(t or "") > MAX_CHARS]
    if long:
        raise InputProblem(f"Field(s) {', '.join(long)} are longer than {MAX_CHARS:,} characters; shorten them.")
    return {f: str(t) for f, t in zip(fields, texts)}


def read_batch(pasted: str | None, csv_path: str | Path | None, fields: Sequence[str] = ()) -> list[Inputs]:
    """Reviews from an uploaded CSV (preferred when given) or pasted lines; checked for size. With
    several `fields`, a CSV column per field, or pasted lines of tab-separated fields."""
    if len(fields) > 1:
        return _read_fields(pasted, csv_path, fields)
    if csv_path:
        return list(_check_rows(read_csv_texts(Path(csv_path)), "row"))
    if pasted is None or len(pasted) > MAX_ROWS * (MAX_CHARS + 1):
        raise InputProblem(EMPTY_BATCH if pasted is None else f"Too much text; paste at most {MAX_ROWS} texts.")
    lines = [line.rstrip("\r") for line in pasted.split("\n")]
    return list(_check_rows([line for line in lines if line.strip()], "line"))


def _read_fields(pasted: str | None, csv_path: str | Path | None, fields: Sequence[str]) -> list[Inputs]:
    if csv_path:
        columns = {f: read_csv_texts(Path(csv_path), f) for f in fields}
        rows = [dict(zip(fields, values)) for values in zip(*columns.values())]
    else:
        if not pasted or len(pasted) > MAX_ROWS * len(fields) * (MAX_CHARS + 1):
            raise InputProblem(EMPTY_BATCH if not pasted else f"Too much text; paste at most {MAX_ROWS} rows.")
        lines = [line.rstrip("\r").split("\t") for line in pasted.split("\n") if line.strip()]
        bad = [str(i + 1) for i, parts in enumerate(lines) if len(parts) != len(fields)]
        if bad:
            raise InputProblem(f"Line(s) {_few(bad)} do not hold {len(fields)} tab-separated fields "
                               f"({', '.join(fields)}); upload a CSV with those columns instead.")
        rows = [dict(zip(fields, parts)) for parts in lines]
    _check_rows(["".join(r.values())[: MAX_CHARS + 1] for r in rows], "row")
    long = [str(i + 1) for i, r in enumerate(rows) if any(len(t) > MAX_CHARS for t in r.values())]
    if long:
        raise InputProblem(f"Row(s) {_few(long)} have a field longer than {MAX_CHARS:,} characters; shorten them.")
    return list(rows)


def read_csv_texts(path: Path, column: str = TEXT_COLUMN) -> list[str]:
    """The `column` column of a CSV file (read at most MAX_ROWS + 1 rows)."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", nrows=MAX_ROWS + 1)
    except UnicodeDecodeError:
        raise InputProblem("The CSV file is not UTF-8 text; save it as UTF-8 and upload it again.") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputProblem(f"Cannot read the file as CSV ({as_text(first)}).") from None
    if column not in df.columns:
        found = ", ".join(f'"{as_text(str(c))}"' for c in df.columns) or "none"
        raise InputProblem(f"The CSV has no `{as_text(column)}` column (columns found: {found}). "
                           f"Name the column holding the texts `{as_text(column)}`.")
    texts = df[column].tolist()
    blank = [str(i + 1) for i, t in enumerate(texts) if not t.strip()]
    if blank:
        raise InputProblem(f"The CSV has an empty `{as_text(column)}` in row(s) {_few(blank)}; fill or remove them.")
    return texts


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def as_text(untrusted: str, limit: int = 80) -> str:
    r"""Text from an upload, safe inside the app's Markdown: HTML and Markdown syntax shown as characters.

    >>> print(as_text('<img src=x onerror=alert(1)>'))
    &lt;img src=x onerror=alert\(1\)&gt;
    """
    short = untrusted if len(untrusted) <= limit else untrusted[: limit - 1] + "…"
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(short, quote=True))


def _check_rows(texts: list[str], unit: str) -> list[str]:
    if not texts:
        raise InputProblem(EMPTY_BATCH)
    if len(texts) > MAX_ROWS:
        raise InputProblem(f"Too many texts: the demo scores at most {MAX_ROWS} at a time. "
                           f"Split the input into smaller batches (or use `tenser run` for a whole data set).")
    long = [str(i + 1) for i, t in enumerate(texts) if len(t) > MAX_CHARS]
    if long:
        raise InputProblem(f"Review {unit}(s) {_few(long)} are longer than {MAX_CHARS:,} characters; shorten them.")
    return texts


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
