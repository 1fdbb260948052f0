"""Fine-tuning: a tiny GPT-2 learns a separable synthetic task, the checkpoint round-trips
through `tenser run`, early stopping restores the best epoch, resume continues, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserError
from harness.training.config import FinetuneConfig
from harness.training.data import split_train_val
from harness.training.trainer import finetune
from tasks import get_task
from tenser.cli import main
from tests.conftest import write_rows

GOOD = ["great", "wonderful", "loved", "brilliant", "best", "fun"]
BAD = ["terrible", "awful", "hated", "boring", "worst", "dull"]
FILLER = ["the", "movie", "film", "was", "plot", "acting", "story", "scene", "it", "this"]


def separable(n: int, seed: int, noise: bool = False) -> list[dict[str, Any]]:
    """Reviews whose label shows in their words (or random labels when `noise`)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(6)] + [rng.choice(GOOD if label else BAD) for _ in range(3)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": rng.randint(0, 1) if noise else label})
    return rows


FAST = dict(batch_size=8, max_length=64, warmup_ratio=0.0, device="cpu", logging_steps=5)


def test_finetune_learns_and_round_trips(tmp_path: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_rows(tmp_path / "train.csv", separable(160, seed=1))
    heldout = write_rows(tmp_path / "heldout.csv", separable(60, seed=2))
    out = tmp_path / "ckpt"
    cfg = FinetuneConfig(lr=3e-3, epochs=3, **FAST)
    finetune(str(gpt2_dir), get_task("imdb_classifier"), out, cfg, train_data=str(train))

    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["pad_token_id"] is not None and config["architectures"] == ["GPT2ForSequenceClassification"]
    log = json.loads((out / "training_log.json").read_text())
    assert log["hyperparameters"]["lr"] == 3e-3 and log["data"]["n_val"] == 16 and log["data"]["n_train"] == 144
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3]
    assert log["epochs"][-1]["val_accuracy"] >= 0.8  # separable data; a label/order mix-up would show
    assert log["train_loss"] and log["data"]["fingerprint"].startswith("sha256:")
    assert not (out / "checkpoints").exists() and not (out / "training_args.bin").exists()

    code = main(["run", "--task", "imdb_classifier", "--model", str(out), "--data", str(heldout),
                 "--out", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["accuracy"] >= 0.85  # chance is 0.5
    assert results["model"]["training_log"] == str((out / "training_log.json").resolve())


def test_prompt_objective_trains_the_label_word(tmp_path: Path, gpt2_dir: Path) -> None:
    train = write_rows(tmp_path / "train.csv", separable(80, seed=3))
    out = tmp_path / "prompt"
    cfg = FinetuneConfig(lr=3e-3, epochs=2, objective="prompt", **FAST)
    finetune(str(gpt2_dir), get_task("imdb_zeroshot"), out, cfg, train_data=str(train))
    log = json.loads((out / "training_log.json").read_text())
    assert log["objective"] == "prompt"
    assert log["epochs"][-1]["val_loss"] < log["epochs"][0]["val_loss"] or log["epochs"][-1]["val_accuracy"] >= 0.75
    assert json.loads((out / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]


def test_early_stopping_restores_best_epoch(tmp_path: Path, gpt2_dir: Path) -> None:
    # Random labels: the model can only memorise, so validation loss rises after the first epochs.
    rows = separable(96, seed=4, noise=True)
    train = write_rows(tmp_path / "train.csv", rows)
    out = tmp_path / "es"
    cfg = FinetuneConfig(lr=2e-2, epochs=12, patience=1, val_fraction=0.25, **FAST)
    finetune(str(gpt2_dir), get_task("imdb_classifier"), out, cfg, train_data=str(train))
    log = json.loads((out / "training_log.json").read_text())
    losses = [e["val_loss"] for e in log["epochs"]]
    assert log["stopped_early"] and len(losses) < 12
    best = min(range(len(losses)), key=losses.__getitem__)
    assert log["best_epoch"] == best + 1 and losses[-1] > losses[best]

    # The saved model is the best epoch's: its validation loss equals the logged best.
    import numpy as np

    from harness.backends.loading import load_model
    from harness.data.examples import load_examples
    from harness.scoring.inference import make_encoder, predict

    task = get_task("imdb_classifier")
    examples, _ = load_examples(task, data=str(train), split="train")
    _, val = split_train_val(examples, cfg)
    loaded = load_model(str(out), "classifier", device="cpu", dtype="float32")
    probs = predict(task, loaded, make_encoder(task, loaded).encode_many([e.text for e in val]), progress=False).probs
    loss = -np.log(probs[np.arange(len(val)), [e.label for e in val]]).mean()
    assert loss == pytest.approx(log["best_val_loss"], abs=2e-3)
    best_epoch = log["epochs"][log["best_epoch"] - 1]
    accuracy = float((probs.argmax(1) == [e.label for e in val]).mean())
    assert accuracy == pytest.approx(best_epoch["val_accuracy"])


class Interrupt(Exception):
    pass


def test_resume_continues_rather_than_restarts(tmp_path: Path, gpt2_dir: Path) -> None:
    from transformers import TrainerCallback

    class StopAfterFirstSave(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            raise Interrupt

    class CountSteps(TrainerCallback):
        steps: list[int] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.steps.append(state.global_step)

    train = write_rows(tmp_path / "train.csv", separable(80, seed=5))
    out = tmp_path / "resume"
    cfg = FinetuneConfig(lr=1e-3, epochs=3, patience=3, **FAST)
    task = get_task("imdb_classifier")
    with pytest.raises(Interrupt):
        finetune(str(gpt2_dir), task, out, cfg, train_data=str(train), callbacks=(StopAfterFirstSave(),))
    assert list((out / "checkpoints").glob("checkpoint-*"))
    counter = CountSteps()
    finetune(str(gpt2_dir), task, out, cfg, train_data=str(train), resume=True, callbacks=(counter,))
    per_epoch = 9  # 72 training examples / batch 8
    assert counter.steps[0] == per_epoch + 1 and counter.steps[-1] == 3 * per_epoch
    log = json.loads((out / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3]


def test_compare_end_to_end(tmp_path: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_rows(tmp_path / "train.csv", separable(40, seed=6))
    test = write_rows(tmp_path / "test.csv", separable(20, seed=7))
    out = tmp_path / "cmp"
    code = main(["compare", "--model", str(gpt2_dir), "--out", str(out), "--data", str(test),
                 "--train-data", str(train), "--epochs", "1", "--max-length", "64", "--device", "cpu"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert Path(last) == out / "report.html" and Path(last).stat().st_size > 10_000
    for name in ("pretrained__imdb_zeroshot", "finetuned__imdb_classifier"):
        assert (out / "runs" / name / "results.json").is_file()
    assert (out / "finetuned" / "training_log.json").is_file()


def test_compare_with_given_finetuned_checkpoint(tmp_path: Path, gpt2_dir: Path, gpt2_clf_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    test = write_rows(tmp_path / "test.csv", separable(12, seed=8))
    out = tmp_path / "cmp2"
    code = main(["compare", "--model", str(gpt2_dir), "--finetuned", str(gpt2_clf_dir), "--out", str(out),
                 "--data", str(test), "--device", "cpu"])
    assert code == 0 and not (out / "finetuned").exists()
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("report.html")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "--epochs 0"),
        (["--lr=-1e-5"], "learning rate must be positive"),
        (["--lr", "0"], "learning rate must be positive"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--max-length", "512"], "takes at most 128 tokens; pass --max-length 128 or less"),
    ],
)
def test_bad_hyperparameters(tmp_path: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str],
                             flags: list[str], message: str) -> None:
    train = write_rows(tmp_path / "train.csv", separable(20, seed=9))
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(tmp_path / "o"), "--data", str(train), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_refuses_non_empty_output_unless_overwrite(tmp_path: Path, gpt2_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    train = write_rows(tmp_path / "train.csv", separable(20, seed=10))
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(out), "--data", str(train)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").exists()


def test_one_label_training_data(tmp_path: Path, gpt2_dir: Path) -> None:
    rows = [r for r in separable(40, seed=11) if r["label"] == 1]
    train = write_rows(tmp_path / "train.csv", rows)
    with pytest.raises(UserError, match="every label"):
        finetune(str(gpt2_dir), get_task("imdb_classifier"), tmp_path / "o", FinetuneConfig(**FAST),
                 train_data=str(train))


def test_classifier_objective_on_model_without_head_class(tmp_path: Path, gpt2_tokenizer: Any) -> None:
    from transformers import CodeGenConfig, CodeGenForCausalLM

    folder = tmp_path / "codegen"
    eos = gpt2_tokenizer.eos_token_id
    config = CodeGenConfig(vocab_size=len(gpt2_tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=128,
                           rotary_dim=8, bos_token_id=eos, eos_token_id=eos)
    CodeGenForCausalLM(config).save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    train = write_rows(tmp_path / "train.csv", separable(20, seed=12))
    with pytest.raises(UserError, match="cannot take a classification head"):
        finetune(str(folder), get_task("imdb_classifier"), tmp_path / "o", FinetuneConfig(**FAST),
                 train_data=str(train))


def test_compare_refuses_finetuned_folder_that_is_not_a_classifier(
    tmp_path: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test = write_rows(tmp_path / "test.csv", separable(10, seed=13))
    code = main(["compare", "--model", str(gpt2_dir), "--finetuned", str(gpt2_dir), "--out", str(tmp_path / "c"),
                 "--data", str(test), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "not a fine-tuned classifier" in err


@pytest.mark.parametrize("objective", ["prompt", "classifier"])
def test_validation_metrics_equal_tenser_run_on_the_same_examples(
        objective: str, tmp_path: Path, gpt2_dir: Path, gpt2_tokenizer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Fine-tuning's validation scores the way `tenser run` scores the task: multi-token label words summed."""
    from transformers import TrainerCallback

    from harness.data.examples import load_examples
    from tasks import Task, register_family

    family = register_family(Task(name="multi_zeroshot", kind="zeroshot", labels=("negative", "positive"),
                                  prompt="Review: {text}\nVerdict:", label_words=(" hated it", " loved it")))
    assert all(len(gpt2_tokenizer(w)["input_ids"]) > 1 for w in (" hated it", " loved it"))
    task = get_task(family.zeroshot if objective == "prompt" else family.classifier)
    train = write_rows(tmp_path / "train.jsonl", separable(48, seed=5))
    seen: list[dict[str, float]] = []

    class Keep(TrainerCallback):  # type: ignore[misc]
        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            seen.append(dict(metrics))

    cfg = FinetuneConfig(lr=3e-3, epochs=1, objective=objective, **FAST)  # type: ignore[arg-type]
    out = finetune(str(gpt2_dir), task, tmp_path / "ckpt", cfg, train_data=str(train), callbacks=(Keep(),))
    examples, _ = load_examples(task, data=str(train), split="train")
    _, val = split_train_val(examples, cfg)
    val_file = write_rows(tmp_path / "val.jsonl", [{"text": e.text, "label": e.label} for e in val])
    code = main(["run", "--task", task.name, "--model", str(out), "--data", str(val_file), "--out",
                 str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((run_dir / "results.json").read_text())["metrics"]
    assert metrics["n"] == len(val) and len(seen) == 1
    assert seen[0]["eval_accuracy"] == pytest.approx(metrics["accuracy"])
    assert seen[0]["eval_f1_macro"] == pytest.approx(metrics["f1_macro"])
    assert seen[0]["eval_label_loss"] == pytest.approx(metrics["loss"], abs=1e-5)
