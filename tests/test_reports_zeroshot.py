"""Tests for the report's zero-shot sections: calibrated runs beside their raw scores, prompt
sensitivity across variants, prompt selection and few-shot demonstrations. Numbers on the
page are checked against what the runs recorded (or numpy over it); previews and prompts
must be escaped; runs without these keys must show none of it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import UserError
from reports import render_report, stats
from reports.prompts import sensitivity
from reports.recalibration import raw_predictions
from reports.render import default_title
from reports.sources import load_runs
from tests.report_fixtures import (
    HOSTILE,
    SELECTION_METHOD,
    fewshot_prompt,
    fewshot_record,
    make_run,
    make_variant_runs,
    selection_record,
)


def _results(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def _between(html: str, start: str, end: str) -> str:
    """The part of the page from the element with id `start` to the one with id `end`."""
    return html[html.index(f'id="{start}"'):html.index(f'id="{end}"')]


def _number(text: str) -> float:
    return float(text.replace("−", "-").rstrip("%"))


def _cell(block: str, row: str, kind: str) -> re.Match[str]:
    """Value and interval of one cell of a calibrated block's metric table."""
    pattern = (rf'<tr data-metric="{row}">.*?<td class="num" data-kind="{kind}"><span class="value">([^<]+)</span>'
               rf'(?:<span class="ci">\[([^,]+), ([^\]]+)\]</span>)?')
    match = re.search(pattern, block, re.S)
    assert match, f"no {kind} cell for {row}"
    return match


def _shares(block: str) -> dict[str, dict[str, float]]:
    """{label: {kind: share}} from a calibrated block's label-share table (percent cells as fractions)."""
    out: dict[str, dict[str, float]] = {}
    for label, row in re.findall(r'<tr data-label="([^"]+)">(.*?)</tr>', block, re.S):
        cells = re.findall(r'data-kind="(\w+)">([^<]+)</td>', row)
        out[label] = {kind: _number(text) / 100 for kind, text in cells}
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("zeroshot")
    shots = fewshot_record()
    paths = {
        "variants": make_variant_runs(root / "variants"),
        "contextual": make_run(root / "contextual", accuracy=0.8, seed=3, task="imdb_zeroshot-p0",
                               calibration="contextual"),
        "pmi": make_run(root / "pmi", accuracy=0.82, seed=4, task="imdb_zeroshot-p3", calibration="pmi",
                        prompt=fewshot_prompt(shots), extra={"fewshot": shots, "prompt_selection": selection_record()}),
    }
    return paths


@pytest.fixture(scope="module")
def html(runs: dict[str, Any]) -> str:
    """One report over five variants, a contextual run and a PMI few-shot run with a chosen prompt."""
    folders = [*runs["variants"], runs["contextual"], runs["pmi"]]
    out = render_report(folders, folders[0].parent.parent / "report.html")
    return out.read_text(encoding="utf-8")


# ---------------------------------------------------------------- calibration


@pytest.mark.parametrize(("name", "block"), [("contextual", 1), ("pmi", 2)])
def test_raw_and_calibrated_metrics_equal_recorded(runs: dict[str, Any], html: str, name: str, block: int) -> None:
    recorded = _results(runs[name])
    part = _between(html, f"calibrated-{block}", "calibrated-2" if block == 1 else "prompting")
    for key in ("accuracy", "f1_macro", "loss"):
        for kind, metrics in (("raw", recorded["metrics_raw"]), ("calibrated", recorded["metrics"])):
            value, low, high = _cell(part, key, kind).groups()
            assert _number(value) == pytest.approx(metrics[key], abs=5e-4)
            assert (_number(low), _number(high)) == pytest.approx(tuple(metrics["ci95"][key]), abs=5e-4)


@pytest.mark.parametrize(("name", "block"), [("contextual", 1), ("pmi", 2)])
def test_label_shares_equal_recorded_distributions(runs: dict[str, Any], html: str, name: str, block: int) -> None:
    recorded = _results(runs[name])
    gold = [json.loads(line)["label"] for line in (runs[name] / "predictions.jsonl").read_text().splitlines()]
    bias = recorded["calibration"].get("content_free_probs") or recorded["calibration"]["domain_probs"]
    shares = _shares(_between(html, f"calibrated-{block}", "calibrated-2" if block == 1 else "prompting"))
    assert set(shares) == set(recorded["task"]["labels"])
    for label, cells in shares.items():
        assert cells["raw"] == pytest.approx(recorded["metrics_raw"]["pred_distribution"][label], abs=5e-4)
        assert cells["calibrated"] == pytest.approx(recorded["metrics"]["pred_distribution"][label], abs=5e-4)
        assert cells["gold"] == pytest.approx(gold.count(label) / len(gold), abs=5e-4)
        assert cells["bias"] == pytest.approx(bias[label], abs=5e-4)


def test_changed_predictions_follow_raw_probs(runs: dict[str, Any], html: str) -> None:
    run = load_runs([runs["contextual"]])[0]
    raw = raw_predictions(run)
    assert raw is not None
    assert float((raw == run.gold).mean()) == pytest.approx(run.results["metrics_raw"]["accuracy"])
    test = stats.mcnemar(raw == run.gold, run.correct)
    assert f"calibration turned {test.c:,} wrong predictions right and {test.b:,} right predictions wrong" in html


def test_methods_are_explained_with_their_sources(html: str) -> None:
    assert "Zhao et al. 2021, “Calibrate Before Use”" in html
    assert "Holtzman et al. 2021, “Surface Form Competition”" in html
    assert "Content-free inputs: <code>&#34;N/A&#34;, &#34;&#34;, &#34;[MASK]&#34;</code>" in html
    assert "Domain prompt: <code>&#34;Sentiment:&#34;</code>" in html
    assert "Contextual calibration moved accuracy" in html  # the summary says what calibration did


def test_calibrated_run_without_raw_probs_still_renders(tmp_path: Path) -> None:
    run = make_run(tmp_path / "cal", n=60, calibration="contextual")
    lines = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    (run / "predictions.jsonl").write_text("".join(json.dumps({**p, "raw_probs": None}) + "\n" for p in lines))
    page = render_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert "raw_probs) were not recorded" in page
    assert _number(_cell(page, "accuracy", "raw").group(1)) == pytest.approx(_results(run)["metrics_raw"]["accuracy"],
                                                                            abs=5e-4)


def test_three_label_calibrated_run_renders(tmp_path: Path) -> None:
    labels = ("negative", "neutral", "positive")
    run = make_run(tmp_path / "k3", n=90, labels=labels, calibration="contextual")
    shares = _shares(render_report([run], tmp_path / "k3.html").read_text(encoding="utf-8"))
    distribution = _results(run)["metrics_raw"]["pred_distribution"]
    assert {label: s["raw"] for label, s in shares.items()} == pytest.approx(distribution, abs=5e-4)


# ---------------------------------------------------------------- prompt sensitivity


def test_sensitivity_statistics_equal_numpy(runs: dict[str, Any], html: str) -> None:
    accuracy = np.array([_results(r)["metrics"]["accuracy"] for r in runs["variants"]])
    part = _between(html, "sensitivity", "headline")
    shown = {k: _number(v) for k, v in re.findall(r'data-stat="(\w+)">([^<]+)<', part)}
    expected = {"mean": accuracy.mean(), "std": accuracy.std(ddof=1), "min": accuracy.min(), "max": accuracy.max(),
                "range": accuracy.max() - accuracy.min()}
    assert shown == pytest.approx(expected, abs=5e-4)
    rows = re.findall(r'<tr data-variant="(p\d)">.*?data-metric="accuracy"><span class="value">([^<]+)<.*?'
                      r'data-metric="f1_macro"><span class="value">([^<]+)<', part, re.S)
    assert [v for v, _, _ in rows] == ["p0", "p1", "p2", "p3", "p4"]
    for (_, acc, f1), run in zip(rows, runs["variants"]):
        m = _results(run)["metrics"]
        assert (_number(acc), _number(f1)) == pytest.approx((m["accuracy"], m["f1_macro"]), abs=5e-4)


def test_sensitivity_sits_under_the_summary_and_escapes_prompts(html: str) -> None:
    assert html.index('id="summary"') < html.index('id="sensitivity"') < html.index('id="headline"')
    findings = _between(html, "summary", "sensitivity").split("<li>")
    assert findings[1].startswith("Prompt sensitivity (gpt2 · imdb_zeroshot, 5 prompts)")
    assert "&lt;review&gt;{text}&lt;/review&gt;" in html and "<review>" not in html
    assert "&#34; bad&#34;, &#34; good&#34;" in html  # label words keep their leading space, quoted


def test_sensitivity_groups_one_model_and_one_way_of_scoring(tmp_path: Path, runs: dict[str, Any]) -> None:
    other = make_run(tmp_path / "other", task="imdb_zeroshot-p1", model="gpt2-medium")
    calibrated = make_run(tmp_path / "cal", task="imdb_zeroshot-p1", calibration="contextual")
    again = make_run(tmp_path / "again", task="imdb_zeroshot-p0", seed=99)
    loaded = load_runs([*runs["variants"][:2], other, calibrated, again])
    headers = [{"colour": "#000000", "role": r.role, "name": r.name} for r in loaded]
    groups = sensitivity(loaded, headers)
    assert len(groups) == 1 and [row["variant"] for row in groups[0]["rows"]] == ["p0", "p1"]
    assert groups[0]["notes"] == ["1 repeated variant run(s) left out: the first run of each variant counts."]
    assert sensitivity(loaded[2:4], headers[2:4]) == []  # one variant per model or per scoring: no group


def test_variants_on_different_examples_are_flagged(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", n=50, task="t-p0")
    b = make_run(tmp_path / "b", n=50, task="t-p1", id_start=500)
    page = render_report([a, b], tmp_path / "r.html").read_text(encoding="utf-8")
    assert "scored on different examples, so part of this spread is sampling" in page


def test_variant_runs_get_a_short_default_title(runs: dict[str, Any]) -> None:
    assert default_title(load_runs(runs["variants"])) == "imdb_zeroshot (5 prompts): gpt2"


# ---------------------------------------------------------------- selection and few-shot


def test_chosen_prompt_and_method_are_shown(html: str) -> None:
    part = _between(html, "prompting", "per-class")
    assert "Chosen prompt: <code>imdb_zeroshot-p3</code>" in part and SELECTION_METHOD in part
    rows = re.findall(r"<tr( class=\"chosen\")?><th>([\w-]+)[^<]*(?:<span[^>]*>chosen</span>)?</th>"
                      r"<td class=\"num\">([^<]+)</td>", part)
    recorded = selection_record()["validation_accuracy"]
    assert {name: _number(acc) for _, name, acc in rows} == pytest.approx(recorded, abs=5e-4)
    assert [name for chosen, name, _ in rows if chosen] == ["imdb_zeroshot-p3"]


def test_demonstrations_are_listed_escaped_and_the_prompt_shortened(runs: dict[str, Any], html: str) -> None:
    assert HOSTILE not in html and "<br />" not in html
    part = _between(html, "prompting", "per-class")
    for demo in fewshot_record()["demonstrations"]:
        assert demo["id"] in part
        assert demo["preview"].replace("<", "&lt;").replace(">", "&gt;") + "…" in part
    prompt = _results(runs["pmi"])["task"]["prompt"]
    escaped = prompt.replace("<", "&lt;").replace(">", "&gt;")
    assert escaped not in html and escaped[:300] in part and escaped[-40:] in part
    assert f"[… {len(prompt) - 600:,} characters omitted …]" in part


# ---------------------------------------------------------------- old runs and bad input


def test_runs_without_zeroshot_keys_show_none_of_it(tmp_path: Path) -> None:
    page = render_report([make_run(tmp_path / "a", seed=1), make_run(tmp_path / "b", seed=2, model="m2")],
                         tmp_path / "r.html").read_text(encoding="utf-8")
    for absent in ('id="sensitivity"', 'id="calibrated-scoring"', 'id="prompting"', "<th>Prompting</th>",
                   "pre.prompt", "<h3>Calibration</h3>", "<h3>Few-shot</h3>", "<h3>Prompt selection</h3>"):
        assert absent not in page


@pytest.mark.parametrize(("key", "value", "message"), [
    ("metrics_raw", {"accuracy": 0.5}, r"metrics_raw lacks precision_macro"),
    ("fewshot", {"k": 2}, r"fewshot must be an object with 'demonstrations'"),
    ("calibration", "contextual", r"calibration must be an object with 'method'"),
    ("prompt_selection", {"method": "x"}, r"prompt_selection must be an object with 'chosen'"),
])
def test_malformed_zeroshot_sections_name_the_key(tmp_path: Path, key: str, value: Any, message: str) -> None:
    run = make_run(tmp_path / "r", n=20)
    results = _results(run)
    results[key] = value
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match=rf"results\.json: {message}"):
        render_report([run], tmp_path / "x.html")


def test_raw_probs_without_a_label_name_the_line(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", n=10, calibration="pmi")
    records = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    records[4]["raw_probs"] = {"negative": 1.0}
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(UserError, match=r"predictions\.jsonl: line 5: raw_probs must give a probability for each"):
        render_report([run], tmp_path / "x.html")
