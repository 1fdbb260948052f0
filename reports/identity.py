"""Whether two runs scored the same examples, not just the same ids. Ids are the data's `id`
column, else `SPLIT-ROW`, so two files of one size share every id. Runs whose results.json
records the same data fingerprint read the same data; otherwise every shared id must hold the
same text: each prediction's `text_sha`, or, in run folders written before it, a `preview`
short enough to be the whole text. Anything else is not provably the same example, and the
comparison is shown without paired statistics (the gate refuses it).
"""

from __future__ import annotations

from typing import Any

from harness.runs import PREVIEW_CHARS, text_sha
from reports.sources import Run


def data_problem(base: Run, other: Run) -> str | None:
    """Why the ids the runs share may not be the same examples, or None when they provably are."""
    first = _fingerprint(base)
    if first is not None and first == _fingerprint(other):
        return None
    by_id = dict(zip(other.ids, other.predictions))
    shared = [(p, by_id[i]) for i, p in zip(base.ids, base.predictions) if i in by_id]
    if not shared:
        return None  # no id in common: the id check says the runs scored different examples
    texts = [(_text_key(a), _text_key(b)) for a, b in shared]
    differ = sum(a is not None and b is not None and a != b for a, b in texts)
    unknown = sum(a is None or b is None for a, b in texts)
    where = f"the runs read different data ({base.role}: {describe(base)}; {other.role}: {describe(other)})"
    if differ:
        return f"{where}, and {differ:,} of the {len(shared):,} shared ids hold different texts, so they are not the same examples"
    if unknown:
        return (f"{where}, and their run folders cannot show that {unknown:,} of the {len(shared):,} shared ids hold "
                f"the same texts (no per-example text_sha); score both with this version of Tenser to compare them")
    return None


def describe(run: Run) -> str:
    """The data a run read, in words: source, split and fingerprint as results.json records them."""
    data = run.results.get("data")
    if not isinstance(data, dict) or not data.get("source"):
        return "data not recorded"
    split = f" split {data['split']}" if data.get("split") else ""
    return f"{data['source']}{split}, fingerprint {data.get('fingerprint') or 'not recorded'}"


def _fingerprint(run: Run) -> str | None:
    data = run.results.get("data")
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _text_key(record: dict[str, Any]) -> str | None:
    """The hash of the example's text, when the record shows it; None when it cannot."""
    if isinstance(record.get("text_sha"), str):
        return str(record["text_sha"])
    preview = record.get("preview")
    if isinstance(preview, str) and len(preview) < PREVIEW_CHARS:  # shorter than the cut: the whole text
        return text_sha(preview)
    return None
