"""Run folders as the report sees them: `load_runs` reads each folder with
`harness.runs.load_run`, checks the fields the report relies on (raising `UserError` that
names the file, the bad value and the fix) and, with `reports.verify`, that the folder agrees
with itself, orders the runs so the baseline comes first, and turns predictions into numpy
arrays once. A `Run` also carries its role in the page
("Before"/"After" for two runs, "Baseline"/"Run k" for more) and a short display name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import metric_catalog as catalog
from harness.errors import UserError
from harness.runs import PREDICTIONS, RESULTS, load_run
from reports import verify

PREDICTION_FIELDS = ("id", "label", "pred", "probs")
# (section, key it must hold, type of that key) for results.json sections only some runs have
OPTIONAL = (("calibration", "method", str), ("prompt_selection", "chosen", str), ("fewshot", "demonstrations", list))


@dataclass(frozen=True, eq=False)
class Run:
    """One loaded run folder plus the arrays the statistics need."""

    path: Path
    results: dict[str, Any]
    predictions: list[dict[str, Any]]
    labels: tuple[str, ...]
    gold: np.ndarray  # label index per example
    pred: np.ndarray
    confidence: np.ndarray  # probability of the predicted label
    n_tokens: np.ndarray | None  # None when the run did not record lengths
    truncated: np.ndarray | None
    role: str = ""
    name: str = ""

    @property
    def correct(self) -> np.ndarray:
        return self.gold == self.pred

    @property
    def ids(self) -> list[str]:
        return [str(p["id"]) for p in self.predictions]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.results["metrics"]


def load_runs(run_dirs: list[str | Path], baseline: str | Path | None = None) -> list[Run]:
    """Load run folders, baseline first (it is added when not among `run_dirs`)."""
    paths = [Path(p) for p in run_dirs]
    if baseline is not None:
        base = Path(baseline)
        paths = [base] + [p for p in paths if p.resolve() != base.resolve()]
    if not paths:
        raise UserError("no run folders given; pass at least one folder written by `tenser run`")
    runs = [_load_one(p) for p in paths]
    roles = _roles(len(runs))
    names = _names(runs)
    return [replace(run, role=r, name=n) for run, r, n in zip(runs, roles, names)]


def _roles(n: int) -> list[str]:
    if n == 1:
        return ["Run"]
    if n == 2:
        return ["Before", "After"]
    return ["Baseline"] + [f"Run {i}" for i in range(2, n + 1)]


def _names(runs: list[Run]) -> list[str]:
    """Model names, plus the task when runs differ in task, plus the folder when still ambiguous."""
    names = [Path(str(r.results["model"].get("name_or_path", "model"))).name or "model" for r in runs]
    if len({r.results["task"].get("name") for r in runs}) > 1:
        names = [f"{n} · {r.results['task'].get('name')}" for n, r in zip(names, runs)]
    setups = [setup(r.results) for r in runs]
    if len(set(setups)) > 1:  # e.g. the same prompt scored with and without calibration
        names = [f"{n} · {s}" if s else n for n, s in zip(names, setups)]
    if len(set(names)) < len(names):
        names = [f"{n} ({r.path.name})" for n, r in zip(names, runs)]
    return names


def setup(results: dict[str, Any]) -> str:
    """How a zero-shot run asked beyond its prompt ('2-shot · contextual'); '' for a plain run."""
    shots = (results.get("fewshot") or {}).get("k")
    method = (results.get("calibration") or {}).get("method")
    return " · ".join(x for x in (f"{shots}-shot" if shots else "", method or "") if x)


def _load_one(path: Path) -> Run:
    results, predictions = load_run(path)
    labels = _check_results(results, path / RESULTS)
    index = {label: i for i, label in enumerate(labels)}
    preds_path = path / PREDICTIONS
    if not predictions:
        raise UserError(f"{preds_path}: no predictions; re-run the evaluation")
    gold, pred, conf = [], [], []
    for line, p in enumerate(predictions, 1):
        _check_prediction(p, index, preds_path, line)
        verify.check_record(p, labels, f"{preds_path}: line {line}")
        gold.append(index[p["label"]])
        pred.append(index[p["pred"]])
        conf.append(float(p["probs"].get(p["pred"], max(p["probs"].values()))))
    verify.check_metrics(preds_path, results, predictions, labels, np.array(gold, dtype=int))
    return Run(
        path=path,
        results=results,
        predictions=predictions,
        labels=labels,
        gold=np.array(gold, dtype=int),
        pred=np.array(pred, dtype=int),
        confidence=np.array(conf, dtype=float),
        n_tokens=_optional_column(predictions, "n_tokens", int),
        truncated=_optional_column(predictions, "truncated", bool),
    )


def _check_results(results: dict[str, Any], path: Path) -> tuple[str, ...]:
    """Return the task labels after checking the keys the report reads."""
    for section in ("task", "model", "metrics"):
        if not isinstance(results.get(section), dict):
            raise UserError(f"{path}: missing the {section!r} section; re-run the evaluation")
    labels = results["task"].get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{path}: task.labels must list at least two label names, got {labels!r}")
    missing = [m.key for m in catalog.headline() if not isinstance(results["metrics"].get(m.key), (int, float))]
    if missing:
        raise UserError(f"{path}: metrics lack {', '.join(missing)}; re-run the evaluation")
    _check_optional(results, path)
    return tuple(labels)


def _check_optional(results: dict[str, Any], path: Path) -> None:
    """Sections only some runs have (calibration, prompt selection, few-shot) must be well formed when present."""
    for section, key, kind in OPTIONAL:
        value = results.get(section)
        if value is not None and not (isinstance(value, dict) and isinstance(value.get(key), kind)):
            raise UserError(f"{path}: {section} must be an object with {key!r}, got {value!r:.80}; re-run the evaluation")
    raw = results.get("metrics_raw")
    if raw is not None:
        missing = [m.key for m in catalog.headline()
                   if not isinstance(raw.get(m.key) if isinstance(raw, dict) else None, (int, float))]
        if missing:
            raise UserError(f"{path}: metrics_raw lacks {', '.join(missing)}; re-run the evaluation")


def _check_prediction(p: Any, index: dict[str, int], path: Path, line: int) -> None:
    where = f"{path}: line {line}"
    if not isinstance(p, dict) or any(k not in p for k in PREDICTION_FIELDS):
        raise UserError(f"{where} must be an object with {', '.join(PREDICTION_FIELDS)}; re-run the evaluation")
    for key in ("label", "pred"):
        if p[key] not in index:
            raise UserError(f"{where}: {key} {p[key]!r} is not a task label ({', '.join(index)})")
    if not isinstance(p["probs"], dict) or not p["probs"]:
        raise UserError(f"{where}: probs must map labels to probabilities, got {p['probs']!r}")


def _optional_column(predictions: list[dict[str, Any]], key: str, kind: type) -> np.ndarray | None:
    if not all(key in p and p[key] is not None for p in predictions):
        return None
    return np.array([p[key] for p in predictions], dtype=kind)
