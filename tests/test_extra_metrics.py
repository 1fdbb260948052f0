"""Extra metrics as `evaluate` modules (harness.metrics.extra): the shipped local module computes
offline from the recorded predictions into results.json and the report, equals Tenser's own
scikit-learn metrics on the same predictions, and a Hub id offline is a one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.metrics.classification import compute_metrics
from harness.store.runs import load_run
from tenser.cli import main

pytest.importorskip("evaluate")
MODULE = str(Path(__file__).resolve().parents[1] / "metrics" / "macro_scores")


def test_local_module_lands_in_results_and_report(gpt2_dir: Path, data_csv: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path / "runs"),
                 "--device", "cpu", "-T", f"metrics={MODULE}"]) == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    results, records = load_run(run_dir)
    extra = results["extra_metrics"][MODULE]
    m = results["metrics"]
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        assert extra[key] == pytest.approx(m[key], abs=1e-12)
    assert extra["mcc"] == pytest.approx(m["mcc"], abs=1e-12)
    assert results["task"]["metrics"] == [MODULE]
    assert main(["report", run_dir, "--out", str(tmp_path / "r.html")]) == 0
    assert f"f1_macro (evaluate: {MODULE})" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sklearn_metrics_equal_the_evaluate_module(seed: int) -> None:
    import evaluate

    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200)
    probs[np.arange(200)[:120], gold[:120]] += 1  # better than chance, not perfect
    probs /= probs.sum(1, keepdims=True)
    ours = compute_metrics(gold, probs, ("a", "b", "c"))
    theirs = evaluate.load(MODULE).compute(predictions=probs.argmax(1).tolist(), references=gold.tolist())
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "mcc"):
        assert theirs[key] == pytest.approx(ours[key], abs=1e-12), key


def test_hub_metric_offline_is_one_line(gpt2_dir: Path, data_csv: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path), "--device", "cpu",
                 "-T", "metrics=matthews_correlation"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "cannot load the evaluate module 'matthews_correlation' from the Hub" in err[-1]
    assert "pass -T metrics=./matthews_correlation" in err[-1]
    assert not list(tmp_path.glob("*/predictions.jsonl"))  # refused before scoring


def _metric_task_file(tmp_path: Path, module: str, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nkind = "zeroshot"\nlabels = ["negative", "positive"]\n'
                    f'prompt = "Review: {{text}}\\nSentiment:"\nlabel_words = [" negative", " positive"]\n'
                    f'metrics = ["{module}"]\n')
    return path


def test_toml_task_file_metrics_run_no_code_without_trust_metrics(gpt2_dir: Path, data_csv: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """README: TOML/JSON task files are plain data and run no code, so a metrics module needs --trust-metrics."""
    marker = tmp_path / "ran"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    path = _metric_task_file(tmp_path, str(evil), "evil_task")
    argv = ["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path / "o"), "--device",
            "cpu", "--include", str(path), "--task", "evil_task"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(evil) in err[0] and "--trust-metrics" in err[0] and str(path) in err[0]
    assert not marker.exists() and not (tmp_path / "o").exists()
    assert main(["tasks", "--include", str(path)]) == 0 and "evil_task" in capsys.readouterr().out  # listing runs nothing
    assert not marker.exists()


def test_trust_metrics_lets_a_task_file_name_a_metric_module(gpt2_dir: Path, data_csv: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _metric_task_file(tmp_path, MODULE, "trusted_task")
    assert main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path / "o"), "--device",
                 "cpu", "--include", str(path), "--task", "trusted_task", "--trust-metrics"]) == 0
    results, _ = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(results["extra_metrics"]) == {MODULE}
