"""`render_report`: run folders in, one self-contained HTML file out. It loads the runs
(baseline first), compares every other run with the baseline, gathers the tables and
charts into one template context and renders `templates/report.html.j2` with
autoescaping and strict undefined variables, so a review's HTML shows as text and a
missing template variable fails loudly instead of printing nothing. No model is run.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from harness.errors import UserError
from harness.metrics.catalog import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from harness.store.runs import write_atomic
from reports import charts, example_tables, paired, prompts, recalibration, secondary, sections
from reports.comparison import compare, findings, headline_rows
from reports.leaderboard import checkpoint_curve, leaderboard
from reports.manifest import manifest
from reports.noise import NoiseFloor, describe, load_noise
from reports.seeds import recipe_seeds
from reports.seeds import section as seed_section
from reports.sources import LoadedRun, load_runs
from reports.stats import EXACT_BELOW

TEMPLATES = Path(__file__).parent / "templates"


def render_report(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    baseline: str | Path | None = None,
    title: str | None = None,
    noise: str | Path | None = None,
    validation: str | Path | None = None,
) -> Path:
    """Render run folders into one self-contained HTML file at `out` and return its path.

    `noise` is a bench.json whose agreement check sets the noise floor of every change, or the noise.json
    a compare measured (`reports.noise`); `validation` the validation.json of a compare's validation check
    (pretrained vs fine-tuned on the fine-tune's validation carve). The paired numbers of each comparison,
    the pooled seed figures, the leaderboard and the validation check are also written to comparison.json.
    """
    runs = load_runs(list(run_dirs), baseline)
    context = build_context(runs, title=title, floors=load_noise(noise))
    context["validation"] = load_validation(validation)
    html = environment().get_template("report.html.j2").render(**context)
    target = _target(Path(out))
    write_atomic(target, html)
    if len(runs) > 1:
        extra = {"seeds": context["seeds"]["record"] if context["seeds"] else None,
                 "leaderboard": context["leaderboard"]["record"] if context["leaderboard"] else None,
                 "validation": context["validation"]}
        paired.write_comparison(context["paired_records"], target, {k: v for k, v in extra.items() if v})
    return target


def load_validation(path: str | Path | None) -> dict[str, Any] | None:
    """A compare's validation.json (`harness.recipes.seed_runs`), or None."""
    if path is None:
        return None
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable validation check ({exc}); rerun the compare") from None
    if not isinstance(record, dict) or "pretrained" not in record:
        raise UserError(f"{path}: not a Tenser validation check (no pretrained accuracy); rerun the compare")
    return record


def environment() -> jinja2.Environment:
    """The Jinja2 environment: templates from the package, HTML autoescaped, undefined names fatal."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _target(out: Path) -> Path:
    if out.is_dir():
        out = out / "report.html"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {out.parent} for the report: {exc.strerror}; choose another --out") from None
    return out


def build_context(runs: list[LoadedRun], *, title: str | None = None,
                  floors: dict[str, NoiseFloor] | None = None) -> dict[str, Any]:
    """Everything the template shows, as formatted plain data and base64 charts."""
    base = runs[0]
    comparisons = [compare(base, r) for r in runs[1:]]
    grouped = recipe_seeds(comparisons)
    records = [paired.record(c, floors or {}) for c in comparisons]
    calibration = sections.calibration(runs)
    length = sections.by_length(runs)
    headers = [_run_header(i, r) for i, r in enumerate(runs)]
    sensitivity = prompts.sensitivity(runs, headers)
    return {
        "title": title or default_title(runs),
        "task_cards": task_cards(runs),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": headers,
        "comparisons": [{"base": c.base.role, "other": c.other.role, "reason": c.reason} for c in comparisons],
        "findings": prompts.sensitivity_findings(sensitivity) + findings(runs, comparisons) + paired.findings(records)
        + _zeroshot_findings(runs),
        "paired_records": records,
        "validation": None,
        "seeds": seed_section(grouped) if grouped else None,
        "leaderboard": leaderboard(comparisons),
        "checkpoint_curve": checkpoint_curve(runs[1:]),
        "paired": paired.rows(records),
        "noise_measured": bool(floors),
        "noise_note": describe(floors) if floors else "",
        "secondary": secondary.rows(runs),
        "curves_chart": secondary.curves_chart(runs),
        "auc_averaging": f"AUCs: {secondary.averaging(runs)}." if secondary.averaging(runs) else "",
        "compared": _compared(runs),
        "sensitivity": sensitivity,
        "recalibrated": [recalibration.section(r, h) for r, h in zip(runs, headers) if recalibration.is_calibrated(r)],
        "prompting": [x for x in (prompts.prompting(r, h) for r, h in zip(runs, headers)) if x],
        "headline": headline_rows(runs, comparisons),
        "metrics_chart": charts.metrics_chart(runs),
        "per_class": [sections.per_class(r) for r in runs],
        "confusion_chart": charts.confusion_chart(runs),
        "calibration": calibration,
        "reliability_chart": charts.reliability_chart(runs, calibration),
        "training": _training(runs),
        "length": length,
        "length_chart": charts.length_chart(runs, length["buckets"], length["values"]) if length else None,
        "changed": [x for x in (example_tables.changed(c) for c in comparisons) if x is not None],
        "errors": [example_tables.confident_errors(r) for r in runs],
        "manifest": manifest(runs),
        "version": str(base.results.get("tenser_version", "")),
        "methods": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "exact_below": EXACT_BELOW},
    }


def task_cards(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """One card per dataset and label set the runs were scored on: the task's own description and labels.

    A family's zero-shot and classifier tasks share one card.
    """
    cards: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for run in runs:
        task = run.results["task"]
        data = run.results.get("data") or {}
        # What was scored (e.g. embedded:imdb or a local file), else the task's declared dataset.
        key = (str(data.get("source") or task.get("dataset") or ""), run.labels)
        card = cards.setdefault(key, {"name": "", "names": [], "description": str(task.get("description") or ""),
                                      "labels": list(run.labels), "dataset": key[0] or "given with --data",
                                      "split": data.get("split") or task.get("split"), "kind_list": []})
        card["names"].append(str(task.get("name", "task")))
        card["name"] = _family_name(card["names"])
        kind = "zero-shot prompt" if task.get("kind") == "zeroshot" else "classifier head"
        if kind not in card["kind_list"]:
            card["kind_list"].append(kind)
        card["kinds"] = ", ".join(card["kind_list"])
    return list(cards.values())


def _family_name(names: list[str]) -> str:
    """The common stem of a family's task names (rt_zeroshot, rt_classifier -> rt), else the names."""
    unique = list(dict.fromkeys(names))
    if len(unique) == 1:
        return unique[0]
    stem = os.path.commonprefix(unique).rstrip("_-.")
    return stem or ", ".join(unique)


def default_title(runs: list[LoadedRun]) -> str:
    """'<task>: A vs B' for runs of one task; 'A vs B' (models) when tasks differ.

    Prompt variants name each model once: '<base> (5 prompts): A' when all runs are variants of one task.
    """
    tasks = list(dict.fromkeys(str(r.results["task"].get("name", "task")) for r in runs))
    names = [r.name.split(" · ")[0] for r in runs]
    variants = [prompts.VARIANT.match(t) for t in tasks]
    bases = {v.group(1) for v in variants if v}
    if bases:
        models = " vs ".join(dict.fromkeys(names))
        return f"{bases.pop()} ({len(tasks)} prompts): {models}" if len(bases) == 1 and all(variants) else models
    family = _family_name(tasks) if len({r.labels for r in runs}) == 1 else ""
    if len(tasks) > 1 and family and family != ", ".join(tasks):
        return f"{family}: {' vs '.join(names)}"
    return f"{tasks[0]}: {' vs '.join(names)}" if len(tasks) == 1 else " vs ".join(names)


def _compared(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    rows = sections.compared(runs)
    extra = prompts.compared_row(runs)
    return rows[:3] + [extra] + rows[3:] if extra else rows  # after the Task row


def _zeroshot_findings(runs: list[LoadedRun]) -> list[str]:
    out: list[str] = []
    for run in runs:
        out += recalibration.findings(run) if recalibration.is_calibrated(run) else []
        out += prompts.selection_findings(run)
    return out


def _run_header(i: int, run: LoadedRun) -> dict[str, Any]:
    return {"role": run.role, "name": run.name, "colour": charts.colour(i), "path": str(run.path)}


def _training(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    out = []
    for i, run in enumerate(runs):
        log, note = sections.training_log(run)
        if log is None and note is None:
            continue
        entry: dict[str, Any] = {"run": _run_header(i, run), "note": note, "chart": None, "summary": None}
        if log is not None:
            entry["chart"] = charts.training_chart(log, charts.colour(i))
            entry["summary"] = sections.training_summary(log)
        out.append(entry)
    return out
