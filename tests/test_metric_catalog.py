"""harness.metrics.catalog is the one list of metrics: every row is computed by harness with an
interval, and the report's tables, chart and gate choices are exactly the catalog's rows (so a
new headline metric is its computation plus one row), with no second list left in reports/."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.metrics import catalog
from harness.metrics.classification import compute_metrics
from reports import gate
from reports.render import build_context
from reports.sources import load_runs
from tests.report_fixtures import make_run, with_real_metrics

ROOT = Path(__file__).resolve().parent.parent


def test_doctests_pass() -> None:
    result = doctest.testmod(catalog)
    assert result.attempted > 0 and result.failed == 0


def test_rows_are_unique_and_well_formed() -> None:
    keys = [m.key for m in catalog.METRICS]
    assert len(keys) == len(set(keys)) and all(catalog.get(k).key == k for k in keys)
    for m in catalog.METRICS:
        assert m.interval in catalog.INTERVALS and (m.gate is None or m.gate in catalog.GATE_METHODS), m
    # McNemar and the paired normal interval compare per-example correctness; the bootstrap redraws macro F1.
    assert {m.key for m in catalog.METRICS if m.paired_test == "mcnemar" or m.gate == "paired normal"} == {"accuracy"}
    assert {m.key for m in catalog.METRICS if m.paired_test == "macro-F1 bootstrap" or m.gate == "paired bootstrap"} \
        == {"f1_macro"}
    with pytest.raises(KeyError, match="nope"):
        catalog.get("nope")


def test_every_row_is_computed_with_its_interval() -> None:
    """Each catalog key is a results.json metric with a 95% interval (three labels: top-2 included)."""
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 90)
    m = compute_metrics(gold, rng.dirichlet(np.ones(3), 90), ("a", "b", "c"))
    for row in catalog.METRICS:
        assert isinstance(m[row.key], float) and len(m["ci95"][row.key]) == 2, row.key
    assert m["ci95"]["accuracy"] != m["ci95"]["f1_macro"]


def test_one_resample_constant() -> None:
    """The 2,000 resamples live in the catalog only (the secondary metrics' 1,000 beside them)."""
    hits = [f"{p.relative_to(ROOT)}: {line.strip()}" for pkg in ("harness", "reports") for p in (ROOT / pkg).rglob("*.py")
            for line in p.read_text().splitlines() if re.search(r"\b(2000|2_000|1000|1_000)\b", line)]
    not_resamples = ("harness/metrics/seed_power.py: MOST_SEEDS = 1000",)  # a search cap, not a resample count
    assert [h for h in hits if not h.startswith(("harness/metrics/catalog.py", *not_resamples))] == []


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """Two paired calibrated runs whose metrics are the real harness ones (secondary metrics included)."""
    return [with_real_metrics(make_run(tmp_path / f"r{i}", seed=i + 1, accuracy=0.75 + 0.05 * i,
                                       calibration="contextual")) for i in range(2)]


def test_report_tables_and_gate_are_the_catalog(runs: list[Path]) -> None:
    context = build_context(load_runs(runs))
    headline = [(r["key"], r["name"]) for r in context["headline"]]
    assert headline == [(m.key, m.label) for m in catalog.headline()] + [("n", "Examples")]
    secondary = [(r["key"], r["name"]) for r in context["secondary"]]
    assert secondary == [(m.key, m.label) for m in catalog.secondary() if m.key != "top2_accuracy"]  # two labels
    assert len(context["recalibrated"]) == 2
    for calibrated in context["recalibrated"]:
        assert [(r["key"], r["name"]) for r in calibrated["metrics"]] == \
            [(m.key, m.label) for m in catalog.METRICS if m.recalibration]
    tested = [r["key"] for r in context["headline"] if r["changes"][0]["test"]]
    assert tested == [m.key for m in catalog.METRICS if m.paired_test]
    for key, method in catalog.gated().items():
        assert gate.gate(runs[0], runs[1], metric=key).method == method
    with pytest.raises(UserError, match="Known: accuracy, f1_macro"):
        gate.check_metric("mcc")


def test_reports_keep_no_metric_list_of_their_own() -> None:
    """The deleted copies stay deleted: no metric label table or direction set in reports/."""
    text = "\n".join(p.read_text() for p in (ROOT / "reports").glob("*.py"))
    for copy in ("METRIC_NAMES", "LOWER_IS_BETTER", "HEADLINE =", "GATE_METRICS", "SECONDARY =", "ROWS =",
                 "def confusion(", "def macro_f1", '"Matthews correlation"', '"Precision (macro)"'):
        assert copy not in text, copy
