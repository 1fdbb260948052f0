"""Issue 22 on tiny real models: `tenser compare --seeds` (K checkpoints, one report with the seed
section and the pooled interval, reproducible, resumable seed by seed), the validation check, the
Holm leaderboard, the checkpoint curve and the gate over several AFTER runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.recipes import compare_folder
from harness.recipes.seed_runs import validation_line
from harness.store import runs
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_compare_resume import _args, _spy_finetune
from tests.test_finetune import separable
from tests.test_reliability import _one_thread  # noqa: F401  (one torch thread)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ("finetuned-seed0__imdb_classifier", "finetuned-seed1__imdb_classifier")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("seed_data")
    return (write_rows(root / "test.csv", separable(24, seed=41)), write_rows(root / "train.csv", separable(48, seed=42)))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, gpt2_dir: Path, data: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("seeded") / "cmp"
    assert main(_args(gpt2_dir, data, out, "--seeds", "0,1")) == 0
    return out


def _predictions(run_dir: Path) -> list[Any]:
    return [(p["id"], p["pred"], p["probs"]) for p in runs.load_run(run_dir)[1]]


def test_compare_seeds_writes_k_checkpoints_and_one_report_with_the_pooled_interval(seeded: Path) -> None:
    for seed in (0, 1):
        folder = seeded / f"finetuned-seed{seed}"
        log = json.loads((folder / "training_log.json").read_text())
        assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
        assert log["hyperparameters"]["seed"] == seed and log["hyperparameters"]["data_seed"] == 0
    logs = [json.loads((seeded / f"finetuned-seed{s}" / "training_log.json").read_text()) for s in (0, 1)]
    assert logs[0]["data"] == logs[1]["data"]  # the same carve: same data, same sizes
    assert all((seeded / "runs" / name / "results.json").is_file() for name in SEEDS)
    state = json.loads((seeded / compare_folder.STATE).read_text())
    assert state["phase"] == "done" and state["seeds"] == {"0": "scored", "1": "scored"}
    assert state["settings"]["seeds"] == [0, 1] and "pretrained" in state["validation"]
    html = (seeded / "report.html").read_text()
    assert 'id="seeds"' in html and "95% interval for the expected gain of this recipe" in html
    assert "seed-to-seed SD" in html and "test-sampling SE" in html and 'id="seed-table"' in html
    assert html.index('id="seeds"') < html.index('id="headline"')  # in the first lines
    comparison = json.loads((seeded / "comparison.json").read_text())
    pooled = comparison["seeds"]
    assert pooled["seeds"] == [0, 1] and len(pooled["per_seed"]) == 2
    low, high = pooled["pooled"]["ci95"]
    assert low <= pooled["pooled"]["mean"] <= high and pooled["pooled"]["interval"] == "t"
    assert comparison["validation"]["n"] == 12 and len(comparison["validation"]["finetuned"]) == 2
    # Three runs in one report: the Holm leaderboard over the two comparisons.
    assert 'id="leaderboard"' in html and len(comparison["leaderboard"]["runs"]) == 2


def test_a_resumed_compare_retrains_only_the_unfinished_seed_and_reproduces_it(
        seeded: Path, tmp_path: Path, gpt2_dir: Path, data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    shutil.copytree(seeded, out)
    for gone in (out / "finetuned-seed1", out / "runs" / SEEDS[1], out / "report.html"):
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    state = json.loads((out / compare_folder.STATE).read_text())
    (out / compare_folder.STATE).write_text(json.dumps({**state, "phase": "fine-tuning"}))
    calls = _spy_finetune(monkeypatch)
    assert main(_args(gpt2_dir, data, out, "--seeds", "0,1")) == 0
    err = capsys.readouterr().err
    assert len(calls) == 1 and f"reusing the finished fine-tune in {out / 'finetuned-seed0'}" in err
    assert (out / "finetuned-seed1" / "training_log.json").is_file()
    for name in SEEDS:  # seed 1 trained again gives the same predictions: reproducible
        assert _predictions(out / "runs" / name) == _predictions(seeded / "runs" / name)
    pooled = [json.loads((o / "comparison.json").read_text())["seeds"]["pooled"] for o in (out, seeded)]
    assert pooled[0] == pooled[1]


def test_the_same_command_twice_gives_identical_per_seed_results(seeded: Path, tmp_path: Path, gpt2_dir: Path,
                                                                data: tuple[Path, Path]) -> None:
    """Issue 22's constraint: a fresh folder, scores not cached, the same weights and predictions per seed."""
    from safetensors.torch import load_file

    again = tmp_path / "again"
    assert main(_args(gpt2_dir, data, again, "--seeds", "0,1", "--no-cache")) == 0
    for seed, name in zip((0, 1), SEEDS):
        weights = [load_file(o / f"finetuned-seed{seed}" / "model.safetensors") for o in (again, seeded)]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
        assert _predictions(again / "runs" / name) == _predictions(seeded / "runs" / name)
    records = [json.loads((o / "comparison.json").read_text())["seeds"] for o in (again, seeded)]
    assert [(r["seed"], r["accuracy"], r["gain"]) for r in records[0]["per_seed"]] == \
        [(r["seed"], r["accuracy"], r["gain"]) for r in records[1]["per_seed"]]
    assert records[0]["pooled"] == records[1]["pooled"]


def test_the_readme_seed_lines_are_copied_from_comparison_json(seeded: Path, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("seeds_table", ROOT / "benchmarks" / "seeds_table.py")
    assert spec and spec.loader
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    record = json.loads((seeded / "comparison.json").read_text())["seeds"]
    text = "\n".join(table.lines(seeded))
    for row in record["per_seed"]:
        assert f"| seed {row['seed']} |" in text and f"{row['accuracy']:.3f} | {100 * row['gain']:+.1f} |" in text
    assert f"Verdict: {record['verdict']}" in text and f"({record['pooled']['interval']}, " in text
    log = tmp_path / "time.log"
    log.write_text("\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03\n\tMaximum resident set size (kbytes): 3400000\n")
    assert table.wall_and_memory(log) == "wall 1 h 2 min 3 s, peak memory 3.4 GB"


def test_seeds_with_finetuned_is_refused_in_one_line(tmp_path: Path, gpt2_dir: Path, data: tuple[Path, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_args(gpt2_dir, data, tmp_path / "cmp", "--seeds", "0,1"), "--finetuned", str(gpt2_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seeds with --finetuned" in err and len(err.splitlines()) == 1
    assert main(_args(gpt2_dir, data, tmp_path / "cmp2", "--seeds", "0,0")) == 2
    assert "a seed repeats" in capsys.readouterr().err


def test_gate_pools_several_after_runs(seeded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = seeded / "runs" / "pretrained__imdb_zeroshot"
    afters = [str(seeded / "runs" / name) for name in SEEDS]
    pooled = json.loads((seeded / "comparison.json").read_text())["seeds"]["pooled"]
    code = main(["gate", str(before), *afters, "--margin", "0.5", "--out", str(tmp_path / "gate.json")])
    decision = json.loads((tmp_path / "gate.json").read_text())
    assert decision["seeds"] == 2 and decision["lower"] == pytest.approx(pooled["ci95"][0])
    assert code == (0 if pooled["ci95"][0] > -0.5 else 1)
    assert "mean of 2 seeds, pooled" in capsys.readouterr().out
    assert main(["gate", str(before), *afters, "--metric", "f1_macro", "--out", str(tmp_path / "g.json")]) == 2


def test_a_fine_tune_no_better_on_validation_is_said_before_any_test_number(
        tmp_path: Path, gpt2_dir: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    # A learning rate too small to move the weights: the fine-tune is the pretrained model, so not better.
    out = tmp_path / "cmp"
    assert main(_args(gpt2_dir, data, out, "--objective", "prompt", "--lr", "1e-12", "--epochs", "1",
                      "--noise-examples", "0")) == 0
    err = capsys.readouterr().err
    warning = next(line for line in err.splitlines() if line.startswith("warning: the fine-tuned model is not better"))
    assert "more seeds" in warning and "--objective" in warning
    assert err.index(warning) < err.index("imdb_zeroshot | ")  # before the first test score
    record = json.loads((out / "validation.json").read_text())
    assert record["not_better"] == [0] and record["finetuned"][0]["accuracy"] == pytest.approx(record["pretrained"])
    html = (out / "report.html").read_text()
    assert 'id="validation-warning"' in html and html.index("validation-warning") < html.index('id="headline"')
    assert json.loads((out / "comparison.json").read_text())["validation"]["warning"] == record["warning"]


def test_the_validation_warning_states_how_noisy_a_validation_accuracy_is() -> None:
    record = {"n": 100, "pretrained": 0.81, "not_better": [2],
              "finetuned": [{"accuracy": 0.86}, {"accuracy": 0.86}, {"accuracy": 0.81}]}
    line = validation_line(record)
    assert line is not None and line.startswith("warning: 1 of 3 seeds (2) are not better than the pretrained model")
    assert "(0.860, 0.860, 0.810 vs 0.810 on the same 100 validation examples;" in line
    assert "standard error of about 3.9 points" in line  # sqrt(0.81 * 0.19 / 100)
    assert "--val-fraction" in line and "--seeds" not in line  # three seeds ran: more seeds is not the advice
    one = validation_line({**record, "not_better": [0], "finetuned": [{"accuracy": 0.80}]})
    assert one is not None and "more seeds (--seeds 0,1,2)" in one and "--val-fraction" not in one
    assert validation_line({**record, "not_better": []}) is None


def test_checkpoints_of_one_fine_tune_render_as_a_curve(tmp_path: Path, gpt2_dir: Path,
                                                         data: tuple[Path, Path]) -> None:
    test, train = data
    output = tmp_path / "ft"
    assert main(["finetune", "--model", str(gpt2_dir), "--data", str(train), "--output", str(output), "--epochs", "2",
                 "--max-length", "64", "--batch-size", "8", "--device", "cpu", "--lr", "1e-3", "--val-fraction",
                 "0.25", "--keep-checkpoints"]) == 0
    checkpoints = sorted((output / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(checkpoints) == 2
    common = ["--task", "imdb_classifier", "--data", str(test), "--batch-size", "4", "--device", "cpu",
              "--out", str(tmp_path / "runs")]
    assert main(["run", "--model", str(gpt2_dir), "--task", "imdb_zeroshot", *common[2:]]) == 0
    assert main(["run", *[a for c in checkpoints for a in ("--model", str(c))], *common]) == 0
    folders = sorted((tmp_path / "runs").iterdir())
    base = next(f for f in folders if f.name.startswith("imdb_zeroshot"))
    report = tmp_path / "report.html"
    assert main(["report", str(base), *[str(f) for f in folders if f != base], "--out", str(report)]) == 0
    html = report.read_text()
    assert 'id="checkpoint-curve"' in html and "chosen on validation" in html and "is the one to trust" in html
    best = json.loads((output / "training_log.json").read_text())["epochs"]
    chosen = min(best, key=lambda e: e["val_loss"])["step"]
    assert f"step {chosen:,}, best validation loss" in html
