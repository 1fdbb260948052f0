"""LoRA (harness.lora): adapters train for both objectives on tiny models, only they (and a
classifier's head) train, the merged checkpoint loads and scores like any folder, bad combinations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.runs import load_run
from harness.train_data import FinetuneConfig
from harness.training import finetune
from tasks import get_task
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_finetune import FAST, separable

pytest.importorskip("peft")


def test_lora_classifier_trains_adapters_then_scores(tmp_path: Path, gpt2_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    train = write_rows(tmp_path / "train.csv", separable(160, seed=1))
    heldout = write_rows(tmp_path / "heldout.csv", separable(40, seed=2))
    out = tmp_path / "ckpt"
    finetune(str(gpt2_dir), get_task("imdb_classifier"), out,
             FinetuneConfig(lr=1e-2, epochs=3, lora_r=4, **FAST), train_data=str(train))
    log = json.loads((out / "training_log.json").read_text())
    total, trainable = log["parameters"]["total"], log["parameters"]["trainable"]
    assert 0 < trainable < total / 5  # adapters + head only
    assert log["hyperparameters"]["lora_r"] == 4 and log["lora"]["target_modules"] == ["c_attn", "c_proj"]
    assert not list(out.glob("adapter_*"))  # merged: a plain folder
    assert log["epochs"][-1]["val_accuracy"] >= 0.8
    capsys.readouterr()
    assert main(["run", "--task", "imdb_classifier", "--model", str(out), "--data", str(heldout),
                 "--out", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    results, _ = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    assert results["metrics"]["accuracy"] >= 0.8


def test_lora_prompt_objective_on_llama(tmp_path: Path, llama_dir: Path) -> None:
    train = write_rows(tmp_path / "train.csv", separable(48, seed=3))
    out = finetune(str(llama_dir), get_task("imdb_zeroshot"), tmp_path / "ckpt",
                   FinetuneConfig(lr=1e-2, epochs=1, lora_r=2, objective="prompt", **FAST), train_data=str(train))
    log = json.loads((out / "training_log.json").read_text())
    assert log["lora"]["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert log["parameters"]["trainable"] < log["parameters"]["total"] / 5
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_lora_refusals(tmp_path: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="^lora_r 4 with train_layers 1: both choose what trains; pass one"):
        FinetuneConfig(lora_r=4, train_layers=1).check()
    train = write_rows(tmp_path / "train.csv", separable(40, seed=1))
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(tmp_path / "o"), "--data", str(train),
                 "--lora-r", "2", "--lora-targets", "q_proj", "--max-length", "64", "--device", "cpu", "--yes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "has no module named 'q_proj'" in err[-1]
