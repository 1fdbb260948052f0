"""Tests for `reports`: statistics against hand-computed cases, the headline table against
the runs' recorded metrics, escaping, self-containment, one/two/three-run layouts,
unpaired runs, loud errors for bad run folders, and the page size for large runs."""

from __future__ import annotations

import doctest
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.metrics import confusion_matrix, macro_f1
from reports import formatting, render_report, stats
from reports.comparison import compare
from reports.sources import load_runs
from tests.report_fixtures import HOSTILE, LABELS, make_run, make_training_log

# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize("module", [stats, formatting])
def test_doctests_pass(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def _pairs(b: int, c: int, both: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Correctness arrays with b first-only, c second-only and `both` concordant-right examples."""
    first = np.array([True] * b + [False] * c + [True] * both)
    second = np.array([False] * b + [True] * c + [True] * both)
    return first, second


def test_mcnemar_exact_hand_case() -> None:
    # b=10, c=2, n=12: two-sided exact p = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2**12 = 2 * 79 / 4096
    result = stats.mcnemar(*_pairs(10, 2))
    assert (result.b, result.c, result.method) == (10, 2, "exact")
    assert result.p_value == pytest.approx(2 * 79 / 4096)
    assert round(result.p_value, 4) == 0.0386


def test_mcnemar_exact_is_symmetric_and_capped() -> None:
    assert stats.mcnemar(*_pairs(2, 10)).p_value == pytest.approx(2 * 79 / 4096)
    assert stats.mcnemar(*_pairs(3, 3)).p_value == 1.0  # 2 * P(X <= 3) > 1 is capped
    assert stats.mcnemar(*_pairs(0, 0)).p_value == 1.0


def test_mcnemar_chi_square_hand_case() -> None:
    # b=30, c=10: 40 discordant >= 25, so chi-square with continuity correction:
    # X2 = (|30 - 10| - 1)^2 / 40 = 9.025; for one degree of freedom p = erfc(sqrt(X2 / 2)).
    result = stats.mcnemar(*_pairs(30, 10))
    assert result.method == "chi2"
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert result.p_value == pytest.approx(0.002663, abs=1e-6)


def test_mcnemar_switches_method_at_25() -> None:
    assert stats.mcnemar(*_pairs(20, 4)).method == "exact"
    assert stats.mcnemar(*_pairs(20, 5)).method == "chi2"


def _f1(gold: np.ndarray, pred: np.ndarray) -> float:
    return float(macro_f1(confusion_matrix(gold, pred, 2)))


def test_bootstrap_identical_runs_give_zero() -> None:
    gold = np.array([0, 1] * 50)
    pred = np.array([0, 1, 1, 1] * 25)
    result = stats.paired_bootstrap_f1(gold, pred, pred.copy(), 2)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)


def test_bootstrap_certain_improvement() -> None:
    # First run always wrong (macro F1 0), second always right (macro F1 1): every resample
    # that keeps both labels differs by exactly 1, and with 200 examples all of them do.
    gold = np.array([0, 1] * 100)
    result = stats.paired_bootstrap_f1(gold, 1 - gold, gold.copy(), 2, resamples=500, seed=3)
    assert (result.difference, result.low, result.high) == (1.0, 1.0, 1.0)


def test_bootstrap_matches_naive_resampling() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 400)
    first = np.where(rng.random(400) < 0.75, gold, 1 - gold)
    second = np.where(rng.random(400) < 0.82, gold, 1 - gold)
    fast = stats.paired_bootstrap_f1(gold, first, second, 2, resamples=2000, seed=1)
    again = stats.paired_bootstrap_f1(gold, first, second, 2, resamples=2000, seed=1)
    assert fast == again  # seeded: the same runs always give the same interval
    naive = []
    for _ in range(2000):
        i = rng.integers(0, 400, 400)
        naive.append(_f1(gold[i], second[i]) - _f1(gold[i], first[i]))
    low, high = np.percentile(naive, [2.5, 97.5])
    assert fast.difference == pytest.approx(_f1(gold, second) - _f1(gold, first))
    assert fast.low == pytest.approx(low, abs=0.015) and fast.high == pytest.approx(high, abs=0.015)


def test_ece_hand_case() -> None:
    # bin [0.9, 1.0): conf 0.9, acc 0.5, gap 0.4, weight 1/2; bin [0.6, 0.7): conf 0.6, acc 1, gap 0.4, weight 1/2
    ece = stats.expected_calibration_error(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 0, 1, 1]))
    assert ece == pytest.approx(0.4)
    assert stats.expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == 0.0


def test_reliability_bins_edges() -> None:
    bins = stats.reliability_bins(np.array([0.5, 0.55, 0.999, 1.0]), np.array([1, 0, 1, 1]))
    assert len(bins) == 10 and [b.n for b in bins][5:] == [2, 0, 0, 0, 2]
    assert bins[5].accuracy == 0.5 and bins[6].accuracy is None


def test_accuracy_by_length_buckets_are_right_inclusive() -> None:
    tokens = np.array([1, 128, 129, 256, 1024, 1025])
    correct = np.array([1, 1, 0, 0, 1, 0])
    assert stats.accuracy_by_length(tokens, correct) == [(2, 1.0), (2, 0.0), (0, None), (1, 1.0), (1, 0.0)]


# ---------------------------------------------------------------- rendering helpers


class _TableReader(HTMLParser):
    """Cells of the headline table: {metric: [{span class: text, "text": all text}, ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.in_table = False
        self.metric: str | None = None
        self.cell: dict[str, str] | None = None
        self.span: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "headline-table":
            self.in_table = True
        elif self.in_table and tag == "tr" and a.get("data-metric"):
            self.metric = a["data-metric"]
            self.rows[self.metric] = []
        elif self.metric and tag == "td":
            self.cell = {"text": ""}
            self.rows[self.metric].append(self.cell)
        elif self.cell is not None and tag == "span":
            self.span.append((a.get("class") or "").split()[0] if a.get("class") else "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self.span:
            self.span.pop()
        elif tag == "td":
            self.cell = None
        elif tag == "tr":
            self.metric = None
        elif tag == "table":
            self.in_table = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell["text"] += data
            if self.span and self.span[-1]:
                self.cell[self.span[-1]] = self.cell.get(self.span[-1], "") + data.strip()


def _headline(html: str) -> dict[str, list[dict[str, str]]]:
    reader = _TableReader()
    reader.feed(html)
    return reader.rows


def _minus(text: str) -> str:
    return text.replace("−", "-")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("two_runs")
    before = make_run(root / "before", accuracy=0.72, seed=1, model="gpt2")
    log = make_training_log(root / "ft" / "training_log.json")
    after = make_run(root / "after", accuracy=0.86, seed=2, model="/models/gpt2-imdb", training_log=log)
    return [before, after]


@pytest.fixture(scope="module")
def two_run_html(two_runs: list[Path]) -> str:
    """Rendered once for the module: the tests below only read it."""
    return render_report(two_runs, two_runs[0].parent / "report.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------- report content


def test_headline_numbers_equal_recorded_metrics(two_runs: list[Path], two_run_html: str) -> None:
    metrics = [json.loads((d / "results.json").read_text())["metrics"] for d in two_runs]
    rows = _headline(two_run_html)
    assert set(rows) == {"accuracy", "precision_macro", "recall_macro", "f1_macro", "loss", "n"}
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"):
        before, after, change = rows[key]
        for cell, m in ((before, metrics[0]), (after, metrics[1])):
            assert float(cell["value"]) == pytest.approx(m[key], abs=5e-4)
            lo, hi = (float(x) for x in cell["ci"].strip("[]").split(","))
            assert (lo, hi) == pytest.approx(tuple(m["ci95"][key]), abs=5e-4)
        assert float(_minus(change["value"])) == pytest.approx(metrics[1][key] - metrics[0][key], abs=5e-4)
    assert [c["value"] for c in rows["n"][:2]] == ["200", "200"]


def test_headline_changes_carry_paired_tests(two_runs: list[Path], two_run_html: str) -> None:
    runs = load_runs(two_runs)
    expected = stats.mcnemar(runs[0].correct, runs[1].correct)
    accuracy_change = _headline(two_run_html)["accuracy"][2]
    assert formatting.p_value(expected.p_value) in accuracy_change["test"]
    word = "significant at 5%" if expected.p_value < 0.05 else "not significant at 5%"
    assert accuracy_change["pill"] == word
    boot = stats.paired_bootstrap_f1(runs[0].gold, runs[0].pred, runs[1].pred, 2, resamples=2000, seed=0)
    f1_change = _headline(two_run_html)["f1_macro"][2]
    assert formatting.interval((boot.low, boot.high), sign=True) in f1_change["test"]
    assert f"{expected.c:,} went from wrong to right and {expected.b:,} from right to wrong" in two_run_html


def test_fixed_and_broken_tables_agree_with_mcnemar(two_runs: list[Path], two_run_html: str) -> None:
    runs = load_runs(two_runs)
    test = stats.mcnemar(runs[0].correct, runs[1].correct)
    assert f"Fixed by After (wrong in Before, right in After) <span class=\"count\">· {test.c:,} in all" in two_run_html
    assert f"Broken by After (right in Before, wrong in After) <span class=\"count\">· {test.b:,} in all" in two_run_html
    assert two_run_html.count('<tr><td class="mono">') <= 10 + 10 + 2 * 10


def test_review_html_is_escaped(two_run_html: str) -> None:
    assert HOSTILE not in two_run_html
    assert "<br />" not in two_run_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in two_run_html
    assert "&lt;br /&gt;" in two_run_html


def test_page_is_self_contained(two_run_html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", two_run_html, re.IGNORECASE)
    assert "<script" not in two_run_html.lower()
    assert "<link" not in two_run_html.lower()
    sources = re.findall(r'<img src="([^"]+)"', two_run_html)
    assert len(sources) >= 5 and all(s.startswith("data:image/png;base64,") for s in sources)


def test_sections_of_a_two_run_report(two_run_html: str) -> None:
    for anchor in ("summary", "headline", "per-class", "confusion", "calibration", "training", "length",
                   "examples", "manifest"):
        assert f'id="{anchor}"' in two_run_html
    assert ">Before<" in two_run_html and ">After<" in two_run_html and ">Change<" in two_run_html
    assert "best epoch" in two_run_html.lower()
    assert "Paired statistics not computed" not in two_run_html
    assert "sha256:" + "ab12" * 16 in two_run_html  # the manifest shows the full hash


def test_one_run_report_has_no_comparison(tmp_path: Path) -> None:
    # One run also covers: an explicit title, a hostile model name, a missing training log, `out` as a folder.
    run = make_run(tmp_path / "only", model="<img src=x onerror=alert(2)>",
                   training_log=tmp_path / "nowhere" / "training_log.json")
    (tmp_path / "out").mkdir()
    out = render_report([run], tmp_path / "out", title="Zero-shot GPT-2")
    assert out == tmp_path / "out" / "report.html"
    html = out.read_text(encoding="utf-8")
    assert "<title>Zero-shot GPT-2</title>" in html
    rows = _headline(html)
    assert len(rows["accuracy"]) == 1 and "Change" not in html and "McNemar" not in html
    assert "Fixed by" not in html and "Most confident errors" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "not found; curves omitted" in html


def test_three_run_report_compares_each_with_the_baseline(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / f"r{i}", accuracy=a, seed=i, model=f"model-{i}")
            for i, a in enumerate((0.7, 0.75, 0.9))]
    html = render_report(runs, tmp_path / "three.html").read_text(encoding="utf-8")
    rows = _headline(html)
    assert len(rows["accuracy"]) == 5  # three values, two changes
    assert "Δ Run 2" in html and "Δ Run 3" in html and ">Baseline<" in html
    assert html.count("McNemar exact") + html.count("McNemar χ²") == 2


def test_baseline_argument_picks_the_reference(two_runs: list[Path]) -> None:
    before, after = two_runs
    runs = load_runs([before, after], baseline=after)
    assert [(r.path, r.role) for r in runs] == [(after, "Before"), (before, "After")]
    runs = load_runs([before], baseline=after)  # a baseline outside run_dirs is added first
    assert [r.path for r in runs] == [after, before]


def test_different_examples_are_shown_without_paired_statistics(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", n=150, seed=1)
    b = make_run(tmp_path / "b", n=150, seed=2, id_start=100)
    html = render_report([a, b], tmp_path / "unpaired.html").read_text(encoding="utf-8")
    assert "Paired statistics not computed" in html
    assert "100 ids only in Before, 100 only in After, 50 shared" in html
    assert "not tested: different examples" in html and "McNemar exact," not in html
    assert "Fixed by" not in html
    assert len(_headline(html)["accuracy"]) == 3


def test_different_gold_labels_are_not_paired(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", n=100, seed=1, data_seed=0)
    b = make_run(tmp_path / "b", n=100, seed=2, data_seed=9)
    comparison = compare(*load_runs([a, b]))
    assert not comparison.paired and comparison.mcnemar is None
    assert comparison.reason is not None and "the gold label differs" in comparison.reason


def test_a_one_epoch_training_chart_has_plain_tick_labels() -> None:
    """Validation accuracy 0.829900 and F1 0.829905 on one epoch: no offset axis like 1e−6+8.299e−1."""
    import io

    from reports import charts

    with charts.figure(5, 3) as fig:
        ax = fig.subplots()
        ax.plot([1], [0.82990], "-o")
        ax.plot([1], [0.829905], "--s")
        fig.savefig(io.BytesIO(), format="png")
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert ax.xaxis.get_offset_text().get_text() == ""


# ---------------------------------------------------------------- errors


def test_missing_run_folder_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"results\.json: missing"):
        render_report([tmp_path / "absent"], tmp_path / "x.html")


def test_malformed_predictions_name_the_file_and_line(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", n=20)
    lines = (run / "predictions.jsonl").read_text().splitlines()
    (run / "predictions.jsonl").write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n")
    with pytest.raises(UserError, match=r"predictions\.jsonl: line 4"):
        render_report([run], tmp_path / "x.html")


def test_malformed_results_name_the_file(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", n=20)
    (run / "results.json").write_text("{broken")
    with pytest.raises(UserError, match=r"results\.json: malformed JSON"):
        render_report([run], tmp_path / "x.html")


def test_results_without_metrics_name_the_key(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", n=20)
    results = json.loads((run / "results.json").read_text())
    del results["metrics"]["f1_macro"]
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match=r"results\.json: metrics lack f1_macro"):
        render_report([run], tmp_path / "x.html")


def test_unknown_label_in_predictions_is_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", n=5)
    records = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    records[2]["pred"] = "neutral"
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(UserError, match=r"predictions\.jsonl: line 3: pred 'neutral' is not a task label"):
        render_report([run], tmp_path / "x.html")


def test_no_runs_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no run folders"):
        render_report([], tmp_path / "x.html")


# ---------------------------------------------------------------- size and shape


def test_two_runs_of_25000_examples_stay_under_2_mb(tmp_path: Path) -> None:
    log = make_training_log(tmp_path / "ft" / "training_log.json", epochs=3, steps_per_epoch=500)
    runs = [make_run(tmp_path / "a", n=25_000, accuracy=0.7, seed=1),
            make_run(tmp_path / "b", n=25_000, accuracy=0.9, seed=2, training_log=log)]
    out = render_report(runs, tmp_path / "big" / "report.html")
    assert out.stat().st_size < 2 * 1024 * 1024
    assert "25,000" in out.read_text(encoding="utf-8")


def test_three_labels_render(tmp_path: Path) -> None:
    labels = ("negative", "neutral", "positive")
    runs = [make_run(tmp_path / f"r{i}", n=120, seed=i, labels=labels) for i in (1, 2)]
    html = render_report(runs, tmp_path / "k3.html").read_text(encoding="utf-8")
    assert all(label in html for label in labels) and LABELS[0] in html
