"""demo.predictors: the demo prepares a task as `tenser run` does (few-shot demonstrations,
calibration, encoder), so its probabilities equal the run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.predictors import Predictor
from harness.backends.loading import load_model
from tasks import Task, register_family
from tenser.cli import main
from tests.conftest import make_reviews, write_rows


@pytest.mark.parametrize("calibration", ["contextual", "pmi"])
def test_demo_equals_run_for_a_calibrated_few_shot_task(calibration: str, tmp_path: Path, gpt2_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    register_family(Task(name="cal_zeroshot", kind="zeroshot", labels=("negative", "positive"),
                         prompt="Review: {text}\nSentiment:", label_words=(" negative", " positive"),
                         calibration=calibration, shots=2, max_tokens=128))
    test = write_rows(tmp_path / "test.jsonl", make_reviews(6, seed=21))
    train = write_rows(tmp_path / "train.jsonl", make_reviews(12, seed=22))
    code = main(["run", "--task", "cal_zeroshot", "--model", str(gpt2_dir), "--data", str(test), "--train-data",
                 str(train), "--out", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["fewshot"]["k"] == 2 and results["calibration"]["method"] == calibration
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]

    from tasks import get_task

    loaded = load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="float32")
    predictor = Predictor.create("pretrained", loaded, get_task("cal_zeroshot"), train_data=str(train))
    answers = predictor.answer([r["text"] for r in make_reviews(6, seed=21)])
    assert predictor.shift is not None
    assert predictor.task.prompt.count("Sentiment:") == 3  # two demonstrations, then the prompt
    for answer, row in zip(answers, rows):
        assert answer.label == row["pred"]
        for label, p in row["probs"].items():
            assert answer.probs[label] == pytest.approx(p, abs=1e-6)
