"""Tests for the report's paired-difference, power, noise-floor and secondary-metrics sections
and for comparison.json: the numbers on the page equal `reports.power` on the runs'
predictions, the noise floor comes from a bench.json, old runs without the new metrics still
render, and a bad --noise file is one clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.metrics import compute_metrics
from harness.runs import load_run, save_run
from reports import render_report
from reports.power import minimum_detectable_effect, paired_difference
from reports.sources import load_runs
from tests.report_fixtures import flip_run, make_run


def _with_harness_metrics(run_dir: Path) -> Path:
    """Replace the fixture's metrics with those `tenser run` records (harness.metrics)."""
    results, predictions = load_run(run_dir)
    labels = results["task"]["labels"]
    gold = np.array([labels.index(p["label"]) for p in predictions])
    probs = np.array([[p["probs"][x] for x in labels] for p in predictions])
    results["metrics"] = compute_metrics(gold, probs, labels)
    return save_run(run_dir, results, predictions)


def _bench(path: Path, disagreement: float) -> Path:
    path.write_text(json.dumps({"scoring": [{"task": "imdb_zeroshot", "n": 200, "runtime": {
        "dtype": "bfloat16", "batch_size": "auto"}, "agreement": {"disagreement": disagreement,
                                                                   "accuracy_gap": 0.0, "ok": True}}]}))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("paired")
    return [_with_harness_metrics(make_run(root / "before", accuracy=0.8, seed=1)),
            _with_harness_metrics(make_run(root / "after", accuracy=0.82, seed=2))]


def _section(html: str, name: str) -> str:
    match = re.search(rf'<section class="card" id="{name}">(.*?)</section>', html, re.S)
    assert match, name
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1)))


def test_paired_section_and_comparison_json_agree_with_the_formulas(runs: list[Path], tmp_path: Path) -> None:
    page = render_report(runs, tmp_path / "report.html", noise=_bench(tmp_path / "bench.json", 0.5))
    base, other = load_runs(runs)
    expected = paired_difference(base.correct, other.correct)
    saved = json.loads((tmp_path / "comparison.json").read_text())["comparisons"][0]
    assert saved["difference"]["mean"] == pytest.approx(expected.mean)
    assert saved["difference"]["se"] == pytest.approx(expected.se)
    assert saved["difference"]["ci95"] == pytest.approx([expected.low, expected.high])
    assert saved["unpaired_se"] == pytest.approx(expected.unpaired_se)
    assert saved["correlation"] == pytest.approx(expected.correlation)
    assert saved["power"]["mde"] == pytest.approx(minimum_detectable_effect(200, expected.discordance))
    assert saved["noise"] == {"floor": 1.0, "within_noise": True, "sources": [
        {"task": "imdb_zeroshot", "share": 0.5, "n": 200, "setting": "bfloat16, batch auto vs float32 batch 1"}] * 2}
    text = _section(page.read_text(), "paired")
    assert f"{expected.se:.4f}" in text and f"{expected.unpaired_se:.4f}" in text
    assert "100.0 points · within noise" in text
    summary = _section(page.read_text(), "summary")
    mde = minimum_detectable_effect(200, expected.discordance)
    assert f"With 200 examples and {expected.discordance:.0%} of them changing outcome, changes under " \
           f"~{100 * mde:.1f} points are not detectable" in summary  # type: ignore[operator]
    assert "within noise" in summary


def test_a_significant_change_under_the_mde_is_not_called_undetectable(tmp_path: Path) -> None:
    """b = 2, c = 12 of 200 (McNemar p = 0.013, +5 points) with a drop shown: every minus is a real one."""
    before = flip_run(make_run(tmp_path / "drawn", n=200, accuracy=0.8, seed=1), tmp_path / "before", wrong=0)
    after = flip_run(before, tmp_path / "after", wrong=2, right=12)
    worse = flip_run(before, tmp_path / "worse", wrong=8, right=6)
    summary = _section(render_report([before, after, worse], tmp_path / "r.html").read_text(), "summary")
    found = re.search(r"Run 2 versus Baseline: With 200 examples.*?(?=Run \d versus)", summary)
    assert found and "significant" in found[0] and "not detectable" not in found[0], found
    assert re.search(r"Run 3 versus Baseline: With 200 examples [^:]*, changes under ~[\d.]+ points are not detectable",
                     summary)
    assert "−1.0 points" in summary and not re.search(r"(?<![\w/:.-])-\s?\d", summary), summary


def test_without_a_bench_the_floor_is_not_measured(runs: list[Path], tmp_path: Path) -> None:
    page = render_report(runs, tmp_path / "r.html").read_text()
    assert "not measured" in _section(page, "paired") and "tenser report --noise" in _section(page, "paired")
    saved = json.loads((tmp_path / "comparison.json").read_text())["comparisons"][0]
    assert saved["noise"]["floor"] is None and saved["noise"]["within_noise"] is None


def test_secondary_table_shows_recorded_metrics_and_curves(runs: list[Path], tmp_path: Path) -> None:
    page = render_report(runs, tmp_path / "r.html").read_text()
    text = _section(page, "secondary")
    metrics = json.loads((runs[0] / "results.json").read_text())["metrics"]
    for key, name in (("mcc", "Matthews correlation"), ("roc_auc", "ROC-AUC"), ("brier", "Brier score")):
        assert name in text and f"{metrics[key]:.3f}" in text
    assert "Top-2" not in text  # two labels
    assert "ROC and precision-recall curves" in page
    headline = _section(page, "headline")
    assert "Matthews" not in headline  # the headline table stays as it was


def test_runs_without_the_new_metrics_render_without_the_table(tmp_path: Path) -> None:
    old = [make_run(tmp_path / "a", seed=1), make_run(tmp_path / "b", seed=2)]
    page = render_report(old, tmp_path / "r.html").read_text()
    assert 'id="secondary"' not in page and 'id="paired"' in page


def test_unpaired_runs_write_the_reason(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "a", seed=1), make_run(tmp_path / "b", seed=2, id_start=999)]
    render_report(runs, tmp_path / "r.html")
    saved = json.loads((tmp_path / "comparison.json").read_text())["comparisons"][0]
    assert saved["paired"] is False and "different examples" in saved["reason"]


def test_bad_noise_file_is_one_clear_error(runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--noise .*missing.json: not found"):
        render_report(runs, tmp_path / "r.html", noise=tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text(json.dumps({"scoring": [{"task": "x", "agreement": None}]}))
    with pytest.raises(UserError, match="no agreement check recorded"):
        render_report(runs, tmp_path / "r.html", noise=tmp_path / "empty.json")
