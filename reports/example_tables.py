"""The report's example tables: reviews fixed by the newer run (wrong in the baseline, right after),
reviews it broke (right before, wrong after) and each run's most confident errors. Only
these few previews enter the page, which keeps it small; the template escapes them, so
raw HTML in a review (IMDB has `<br />`) shows as text and never runs. A task with several
input fields shows each one under its column name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.store.runs import PREVIEW_CHARS
from reports.comparison import PairedComparison
from reports.sources import LoadedRun

SHOWN = 10  # rows per example table


def changed(comp: PairedComparison, limit: int = SHOWN) -> dict[str, Any] | None:
    """Fixed and broken examples of one paired comparison, most confident first; None if unpaired."""
    if not comp.paired or comp.order is None or comp.other_pred is None:
        return None
    base_ok = comp.base.correct
    other_ok = comp.other_pred == comp.base.gold
    rank = -comp.other.confidence[comp.order]
    out: dict[str, Any] = {"base": comp.base, "other": comp.other}
    for key, mask in (("fixed", ~base_ok & other_ok), ("broken", base_ok & ~other_ok)):
        chosen = np.flatnonzero(mask)
        chosen = chosen[np.argsort(rank[chosen], kind="stable")][:limit]
        out[key] = [_pair_row(comp, int(i)) for i in chosen]
        out[f"n_{key}"] = int(mask.sum())
    return out


def _pair_row(comp: PairedComparison, i: int) -> dict[str, Any]:
    assert comp.order is not None  # changed() only calls this for paired comparisons
    before = comp.base.predictions[i]
    after = comp.other.predictions[int(comp.order[i])]
    return {**_common(before), "before": prediction(before), "after": prediction(after)}


def confident_errors(run: LoadedRun, limit: int = SHOWN) -> list[dict[str, Any]]:
    """The run's wrong predictions with the highest probability on the predicted label."""
    wrong = np.flatnonzero(~run.correct)
    chosen = wrong[np.argsort(-run.confidence[wrong], kind="stable")][:limit]
    return [{**_common(run.predictions[i]), "pred": prediction(run.predictions[i])} for i in chosen]


def prediction(p: dict[str, Any]) -> dict[str, Any]:
    """The predicted label with its probability ('negative (0.61)') and whether it is right."""
    prob = p["probs"].get(p["pred"])
    text = p["pred"] if prob is None else f"{p['pred']} ({float(prob):.2f})"
    return {"text": text, "right": p["pred"] == p["label"]}


def _shortened(text: Any) -> str:
    text = str(text or "")
    return text + "…" if len(text) >= PREVIEW_CHARS else text


def _common(p: dict[str, Any]) -> dict[str, Any]:
    tokens = p.get("n_tokens")
    fields = p.get("fields") if isinstance(p.get("fields"), dict) else {}
    return {
        "id": str(p["id"]),
        "gold": p["label"],
        "preview": _shortened(p.get("preview")),
        "fields": [(str(name), _shortened(text)) for name, text in fields.items()],
        "tokens": "—" if tokens is None else f"{tokens:,}",
        "truncated": bool(p.get("truncated")),
        "truncated_field": str(p.get("truncated_field") or ""),
    }
