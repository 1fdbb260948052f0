"""Reliability of fine-tuning (issue 16): the same command gives the same model, `--resume` refuses
changed settings naming the one that differs, `--output` is locked while a fine-tune writes it, and
the hints name the flags of the command that was run."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from harness import runs
from harness.errors import UserError
from harness.train_data import FinetuneConfig
from harness.training import finetune
from tasks import get_task
from tenser.cli import flag as cli_flag
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_finetune import FAST, Interrupt, separable
from tests.test_reliability import _one_thread  # noqa: F401  (one torch thread)


def _stop_after_first_save() -> Any:
    from transformers import TrainerCallback

    class StopAfterFirstSave(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            raise Interrupt

    return StopAfterFirstSave()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


# --- item 2: reproducible --------------------------------------------------------------------------

def test_the_same_finetune_twice_gives_the_same_losses_and_weights(tmp_path, gpt2_dir):
    train = write_rows(tmp_path / "train.csv", separable(48, seed=21))
    cfg = FinetuneConfig(lr=1e-3, epochs=1, seed=3, **{**FAST, "logging_steps": 1})
    task = get_task("imdb_classifier")
    torch.manual_seed(123)  # whatever the process's RNG state before, the run must not depend on it
    a = finetune(str(gpt2_dir), task, tmp_path / "a", cfg, train_data=str(train), estimate=False)
    torch.rand(1000)
    b = finetune(str(gpt2_dir), task, tmp_path / "b", cfg, train_data=str(train), estimate=False)
    losses = [[e["loss"] for e in json.loads((d / "training_log.json").read_text())["train_loss"]] for d in (a, b)]
    assert len(losses[0]) >= 3 and losses[0] == losses[1]
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- item 4: --resume keyed on the settings --------------------------------------------------------

@pytest.fixture
def interrupted(tmp_path: Path, gpt2_dir: Path) -> tuple[Path, Path, FinetuneConfig]:
    """A fine-tune stopped after its first epoch's checkpoint: (output, training data, its config)."""
    train = write_rows(tmp_path / "train.csv", separable(40, seed=22))
    out = tmp_path / "ft"
    cfg = FinetuneConfig(lr=1e-3, epochs=2, patience=2, **FAST)
    with pytest.raises(Interrupt):
        finetune(str(gpt2_dir), get_task("imdb_classifier"), out, cfg, train_data=str(train),
                 callbacks=(_stop_after_first_save(),), estimate=False)
    return out, train, cfg


@pytest.mark.parametrize("change, name, flag", [({"lr": 2e-3}, "lr", "--lr"), ({"limit": 30}, "limit", "--limit"),
                                                ({}, "the training data (data)", "the training data (--data)"),
                                                ({"batch_size": 4}, "batch_size", "--batch-size")])
def test_resume_with_changed_settings_is_refused_naming_the_setting(change, name, flag, interrupted, gpt2_dir,
                                                                    tmp_path):
    out, train, cfg = interrupted
    if not change:
        train = write_rows(tmp_path / "other.csv", separable(40, seed=23))
    changed = dataclasses.replace(cfg, **change)
    with pytest.raises(UserError) as err:  # the Python caller reads parameter names, the CLI flags
        finetune(str(gpt2_dir), get_task("imdb_classifier"), out, changed, train_data=str(train), resume=True,
                 estimate=False)
    assert str(err.value).startswith(f"resume: {name} differs from the interrupted fine-tune's")
    assert err.value.speak(cli_flag).startswith(f"--resume: {flag} differs from the interrupted fine-tune's")
    assert list((out / "checkpoints").glob("checkpoint-*"))  # nothing lost: the same settings still resume


def test_resume_with_the_same_settings_finishes(interrupted, gpt2_dir):
    out, train, cfg = interrupted
    finetune(str(gpt2_dir), get_task("imdb_classifier"), out, cfg, train_data=str(train), resume=True, estimate=False)
    log = json.loads((out / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    assert not (out / "checkpoints").exists()


def test_resume_on_the_cli_names_the_flag_in_one_line(interrupted, gpt2_dir, capsys):
    out, train, _ = interrupted
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(out), "--data", str(train), "--device", "cpu",
                 "--lr", "5e-4", "--epochs", "2", "--patience", "2", "--max-length", "64", "--warmup-ratio", "0",
                 "--resume", "--yes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("tenser finetune: error: --resume: --lr differs") and "Traceback" not in "".join(err)


# --- item 5: --output is locked --------------------------------------------------------------------

def test_a_second_finetune_on_a_locked_output_stops_and_deletes_nothing(tmp_path, gpt2_dir, capsys):
    train = write_rows(tmp_path / "train.csv", separable(20, seed=24))
    out = tmp_path / "ft"
    out.mkdir()
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "checkpoint-9").mkdir()
    with runs.run_lock(out):  # as a first `tenser finetune` holds it while training
        code = main(["finetune", "--model", str(gpt2_dir), "--output", str(out), "--data", str(train),
                     "--device", "cpu", "--overwrite", "--yes"])
    err = capsys.readouterr().err
    assert code == 2 and "is in use by another tenser process" in err and "--output" in err
    assert (out / "checkpoints" / "checkpoint-9").is_dir()


def test_the_lock_is_held_while_training_even_with_overwrite(tmp_path, gpt2_dir):
    from transformers import TrainerCallback

    seen: list[str] = []

    class TryTheLock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not seen:
                try:
                    with runs.run_lock(out):
                        seen.append("free")
                except UserError:
                    seen.append("locked")

    train = write_rows(tmp_path / "train.csv", separable(20, seed=25))
    out = tmp_path / "ft"
    out.mkdir()
    (out / "old.txt").write_text("an earlier run")
    finetune(str(gpt2_dir), get_task("imdb_classifier"), out, FinetuneConfig(epochs=1, **FAST), train_data=str(train),
             overwrite=True, callbacks=(TryTheLock(),), estimate=False)
    assert seen == ["locked"] and not (out / "old.txt").exists() and not (out / runs.LOCK).exists()


# --- item 9: hints name the right flag --------------------------------------------------------------

def test_a_non_empty_output_names_output_and_resume(interrupted, gpt2_dir, capsys):
    out, train, _ = interrupted
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(out), "--data", str(train), "--device", "cpu",
                 "--yes"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and f"--output {out}: the folder is not empty" in line
    assert "pass --resume to continue" in line and "--overwrite" in line and "--out " not in line


def test_too_small_a_limit_names_limit_not_train_data(tmp_path, gpt2_dir):
    train = write_rows(tmp_path / "train.csv", separable(40, seed=26))
    cfg = FinetuneConfig(limit=3, **FAST)
    with pytest.raises(UserError, match=r"^limit 3: too few training examples .* give limit 8 or more$") as info:
        finetune(str(gpt2_dir), get_task("imdb_classifier"), tmp_path / "o", cfg, train_data=str(train),
                 estimate=False)
    assert info.value.param == "limit" and "train_data" not in str(info.value)
    assert re.match(r"^--limit 3: too few training examples .* give --limit 8 or more$", info.value.speak(cli_flag))


def test_compare_names_its_own_training_flags(tmp_path, gpt2_dir, capsys):
    train = write_rows(tmp_path / "train.csv", separable(40, seed=27))
    test = write_rows(tmp_path / "test.csv", separable(10, seed=28))
    code = main(["compare", "--model", str(gpt2_dir), "--out", str(tmp_path / "c"), "--data", str(test),
                 "--train-data", str(train), "--train-limit", "3", "--device", "cpu", "--yes"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "--train-limit 3: too few training examples" in line and "give --train-limit 8" in line
    assert not (tmp_path / "c" / "runs").exists() or not any((tmp_path / "c" / "runs").iterdir())  # nothing scored
