"""Tests for `tenser gate` (reports.gate): exit 0 for a non-inferior run (including identical
and near-identical runs), 1 for a clear regression or an underpowered comparison, 2 on bad
input (different examples, unknown metric, bad margin), one printed line and the JSON file."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from reports import gate as gate_module
from reports.gate import gate
from tenser.cli import main
from tests.report_fixtures import flip_run, make_run


def test_doctests_pass() -> None:
    result = doctest.testmod(gate_module)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("gate") / "before", n=2000, accuracy=0.85, seed=1)


def _gate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["gate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_identical_runs_pass(before: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same = flip_run(before, tmp_path / "same", wrong=0)
    code, out, _ = _gate([str(before), str(same), "--out", str(tmp_path / "gate.json")], capsys)
    assert code == 0
    assert out.strip() == ("gate accuracy: after - before = +0.0000 (n = 2,000), 95% lower bound +0.0000 vs "
                           "-0.0100: PASS (non-inferior)")
    saved = json.loads((tmp_path / "gate.json").read_text())
    assert saved["verdict"] == "pass" and saved["lower"] == 0.0 and saved["summary"] == out.strip()


def test_equivalent_run_with_a_few_changes_passes(before: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # 6 examples lost, 4 gained of 2,000: d = -0.001, SE = sqrt((10 - 2000 * 1e-6) / 1999 / 2000) = 0.00158
    after = flip_run(before, tmp_path / "after", wrong=6, right=4)
    code, out, _ = _gate([str(before), str(after), "--out", str(tmp_path / "g.json")], capsys)
    result = json.loads((tmp_path / "g.json").read_text())
    assert code == 0 and "PASS" in out
    assert result["estimate"] == pytest.approx(-0.001)
    assert result["lower"] == pytest.approx(-0.001 - 1.959964 * ((10 - 2000 * 1e-6) / 1999 / 2000) ** 0.5)


def test_clear_regression_fails(before: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    after = flip_run(before, tmp_path / "worse", wrong=200)  # 10 points lost
    code, out, _ = _gate([str(before), str(after), "--out", str(tmp_path / "g.json")], capsys)
    assert code == 1 and "after - before = -0.1000" in out and out.strip().endswith("FAIL (not shown non-inferior)")
    assert json.loads((tmp_path / "g.json").read_text())["verdict"] == "fail"


def test_small_drop_with_a_wide_interval_fails(tmp_path: Path) -> None:
    # The same 1-point drop passes at n = 2,000 only when the interval is narrow enough; on 100 examples it fails.
    small = make_run(tmp_path / "small", n=100, accuracy=0.85, seed=1)
    after = flip_run(small, tmp_path / "small_after", wrong=3, right=2)
    r = gate(small, after, margin=0.01)
    assert r.estimate == pytest.approx(-0.01) and not r.passed and r.lower < -0.01


def test_f1_metric_uses_the_paired_bootstrap(before: Path, tmp_path: Path) -> None:
    after = flip_run(before, tmp_path / "f1", wrong=200)
    r = gate(before, after, metric="f1_macro", margin=0.01)
    assert not r.passed and r.upper < 0 and "bootstrap" in r.method


def test_runs_on_different_examples_are_exit_2(before: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(tmp_path / "other", n=2000, accuracy=0.85, seed=2, id_start=5000)
    code, out, err = _gate([str(before), str(other), "--out", str(tmp_path / "g.json")], capsys)
    assert code == 2 and out == "" and "scored different examples" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.json").exists()


@pytest.mark.parametrize("flags, named", [
    (["--metric", "acuracy"], "Did you mean 'accuracy'"),
    (["--metric", "roc_auc"], "Known: accuracy, f1_macro"),
    (["--margin", "-0.1"], "--margin -0.1"),
])
def test_bad_flags_are_exit_2(before: Path, tmp_path: Path, flags: list[str], named: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _gate([str(before), str(before), "--out", str(tmp_path / "g.json"), *flags], capsys)
    assert code == 2 and named in err


def test_missing_run_folder_is_exit_2(before: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _gate([str(before), str(tmp_path / "nope"), "--out", str(tmp_path / "g.json")], capsys)
    assert code == 2 and "nope" in err


def test_gate_without_out_writes_nothing_and_leaves_an_existing_gate_json(
        before: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24 item 14: no --out, no file: ./gate.json from another check is not silently overwritten."""
    same = flip_run(before, tmp_path / "same", wrong=0)
    work = tmp_path / "ci"
    work.mkdir()
    (work / "gate.json").write_text('{"mine": true}\n')
    monkeypatch.chdir(work)
    code, out, _ = _gate([str(before), str(same)], capsys)
    assert code == 0 and "PASS" in out
    assert (work / "gate.json").read_text() == '{"mine": true}\n' and sorted(p.name for p in work.iterdir()) == [
        "gate.json"]
