"""What the report and the gate trust in a run folder. Runs are paired only when they provably
scored the same examples: the same data fingerprint, else the same text behind every shared id
(`text_sha`, or for older folders a complete preview). A folder whose predictions contradict its
results.json (count, metrics, a prediction that is not the most probable label) or hold a
non-finite probability is refused with one line naming the file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness import runs
from harness.data import load_examples
from harness.errors import UserError
from harness.runner import evaluate
from reports import render_report
from reports.comparison import compare
from reports.sources import load_runs
from tasks import get_task
from tenser.cli import main
from tests.conftest import make_reviews, write_rows
from tests.report_fixtures import flip_run, make_run

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _score(model: Any, data: Path, out: Path, limit: int | None = None) -> Path:
    task = get_task("imdb_zeroshot")
    examples, info = load_examples(task, data=str(data), limit=limit)
    run_dir = runs.prepare_run_dir(out, overwrite=False)
    evaluate(task, model, examples, info, run_dir, batch_size=4, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def scored(gpt2: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny GPT-2 on two different 12-review files without an id column (same ids, same gold labels),
    and on a 16-review file with ids and the 12 of them `limit=12` draws, written to a file of their own."""
    root = tmp_path_factory.mktemp("trust")
    a = write_rows(root / "a.csv", make_reviews(12, seed=1))
    b = write_rows(root / "b.csv", make_reviews(12, seed=2))
    full = write_rows(root / "full.jsonl", [{"id": f"r{i}", **r} for i, r in enumerate(make_reviews(16, seed=3))])
    chosen, _ = load_examples(get_task("imdb_zeroshot"), data=str(full), limit=12)
    subset = write_rows(root / "subset.jsonl", [{"id": e.id, "text": e.text, "label": e.label} for e in chosen])
    return {"a": _score(gpt2, a, root / "run_a"), "b": _score(gpt2, b, root / "run_b"),
            "full": _score(gpt2, full, root / "run_full", limit=12), "subset": _score(gpt2, subset, root / "run_subset"),
            "a.csv": a, "b.csv": b}


def _rewrite(run: Path, dst: Path, change: Any) -> Path:
    """A copy of run folder `run` at `dst` with each prediction record passed through `change`."""
    results, predictions = runs.load_run(run)
    dst.mkdir(parents=True)
    return runs.save_run(dst, {k: v for k, v in results.items() if k != "schema_version"},
                         [change(dict(p)) for p in predictions])


# ---------------------------------------------------------------- different data is never paired


def test_gate_refuses_two_files_of_the_same_size_in_one_line(scored: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert runs.load_run(scored["a"])[1][0]["id"] == runs.load_run(scored["b"])[1][0]["id"] == "test-00000"
    code = main(["gate", str(scored["a"]), str(scored["b"]), "--out", str(tmp_path / "g.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "different data" in err and str(scored["a.csv"]) in err and str(scored["b.csv"]) in err
    assert "12 shared ids hold different texts" in err
    assert not (tmp_path / "g.json").exists()


def test_report_shows_different_data_side_by_side_without_paired_statistics(scored: dict[str, Path],
                                                                              tmp_path: Path) -> None:
    page = render_report([scored["a"], scored["b"]], tmp_path / "report.html").read_text()
    assert "Paired statistics not computed" in page and "different data" in page
    assert "of the same 12 examples" not in page and "McNemar exact" not in page
    assert 'id="paired-table"' not in page
    saved = json.loads((tmp_path / "comparison.json").read_text())["comparisons"][0]
    assert saved["paired"] is False and str(scored["b.csv"]) in saved["reason"]


def test_readme_gate_pairs_only_the_same_examples(scored: dict[str, Path], tmp_path: Path) -> None:
    """README: the gate pairs only the same examples (same data fingerprint, else the same text per id)."""
    text = re.sub(r"\s+", " ", README)
    assert "It pairs only the same examples:" in text
    same = flip_run(scored["a"], tmp_path / "same", wrong=0)  # the same data, other predictions
    assert main(["gate", str(scored["a"]), str(same), "--out", str(tmp_path / "g.json")]) in (0, 1)
    assert main(["gate", str(scored["a"]), str(scored["b"]), "--out", str(tmp_path / "g.json")]) == 2


def test_the_same_examples_from_another_file_pair_by_their_text_hashes(scored: dict[str, Path]) -> None:
    full, subset = load_runs([scored["full"], scored["subset"]])
    assert full.results["data"]["fingerprint"] != subset.results["data"]["fingerprint"]
    assert all(len(p["text_sha"]) == 16 for p in full.predictions)
    comparison = compare(full, subset)
    assert comparison.paired, comparison.reason


def test_older_folders_without_text_hashes_are_not_paired_across_files(scored: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    def drop(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k != "text_sha"}

    full = _rewrite(scored["full"], tmp_path / "old_full", drop)
    subset = _rewrite(scored["subset"], tmp_path / "old_subset", drop)
    reason = compare(*load_runs([full, subset])).reason
    assert reason is not None and "different data" in reason and "cannot show" in reason
    a, b = (_rewrite(scored[k], tmp_path / f"old_{k}", drop) for k in ("a", "b"))
    reason = compare(*load_runs([a, b])).reason  # complete previews still tell different texts apart
    assert reason is not None and "hold different texts" in reason
    same = compare(*load_runs([full, flip_run(full, tmp_path / "old_same", wrong=1)]))
    assert same.paired  # one data fingerprint: the same examples


# ---------------------------------------------------------------- folders are checked on load


def _edit(run: Path, change: Any, line: int | None = None) -> None:
    records = [json.loads(x) for x in (run / runs.PREDICTIONS).read_text().splitlines()]
    records = [change(r) if line is None or i == line - 1 else r for i, r in enumerate(records)]
    (run / runs.PREDICTIONS).write_text("".join(json.dumps(r) + "\n" for r in records if r is not None))


def _refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The one line `tenser report` and `tenser gate` print for `run` (both exit 2)."""
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert main(["gate", str(run), str(run), "--out", str(tmp_path / "g.json")]) == 2
    gate_err = capsys.readouterr().err.strip()
    assert gate_err.split(": error: ")[1] == err.split(": error: ")[1]
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_nan_probability_is_one_line_naming_the_file_and_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r", n=50)
    _edit(run, lambda r: {**r, "probs": {**r["probs"], "positive": float("nan")}}, line=4)
    err = _refused(run, tmp_path, capsys)
    assert f"{run / runs.PREDICTIONS}: line 4: probs" in err and "nan" in err


@pytest.mark.parametrize("probs, named", [({"negative": 0.7, "positive": 0.7}, "sum to 1.4"),
                                          ({"negative": 1.5, "positive": -0.5}, "between 0 and 1"),
                                          ({"negative": 1.0}, "each task label")])
def test_probabilities_must_be_a_distribution_over_the_labels(tmp_path: Path, probs: dict[str, float], named: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r", n=20)
    _edit(run, lambda r: {**r, "probs": probs, "pred": "negative"}, line=2)
    assert named in _refused(run, tmp_path, capsys)


def test_edited_predictions_contradict_results_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r", n=200, accuracy=0.7)
    wrong = {"n": 0}

    def fix(r: dict[str, Any]) -> dict[str, Any]:  # 22 wrong predictions made right, results.json untouched
        if r["pred"] != r["label"] and wrong["n"] < 22:
            wrong["n"] += 1
            return {**r, "pred": r["label"], "probs": {x: 0.9 if x == r["label"] else 0.1 for x in r["probs"]}}
        return r

    _edit(run, fix)
    err = _refused(run, tmp_path, capsys)
    assert str(run / runs.PREDICTIONS) in err and "accuracy" in err and "results.json records" in err


def test_truncated_predictions_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r", n=30)
    lines = (run / runs.PREDICTIONS).read_text().splitlines(keepends=True)
    (run / runs.PREDICTIONS).write_text("".join(lines[:25]))
    assert "holds 25 predictions but results.json records n = 30" in _refused(run, tmp_path, capsys)


def test_a_prediction_that_is_not_the_most_probable_label_is_refused(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r", n=20)
    _edit(run, lambda r: {**r, "pred": min(r["probs"], key=r["probs"].get)}, line=5)
    assert f"{run / runs.PREDICTIONS}: line 5: pred" in _refused(run, tmp_path, capsys)


def test_a_run_folder_that_checks_out_still_renders(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", n=40, calibration="contextual")
    assert render_report([run], tmp_path / "ok.html").is_file()
    with pytest.raises(UserError, match="raw_probs"):
        _edit(run, lambda r: {**r, "raw_probs": {"negative": float("inf"), "positive": 0.0}}, line=1)
        load_runs([run])
