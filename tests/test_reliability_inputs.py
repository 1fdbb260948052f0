"""Issue 24: sizes that must be refused with the number (label lists, label words, LoRA rank), and
the small hostile inputs around quickstart, gate and the demo command compare prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UserError
from harness.scoring.encoding import Encoder
from tasks import Task, TaskError, get_task
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_finetune import separable

# --- item 11: sizes --------------------------------------------------------------------------------

def test_thousands_of_labels_are_refused_with_the_number():
    labels = tuple(f"l{i}" for i in range(5000))
    with pytest.raises(TaskError, match="5000 labels; at most 1000"):
        Task(name="many_labels", kind="classifier", labels=labels, dataset="d")


def test_a_label_word_of_hundreds_of_characters_is_refused_with_its_length():
    word = " " + "very " * 80
    with pytest.raises(TaskError, match=f"label word {word[:12]!r}... is {len(word)} characters; at most 100"):
        get_task("imdb_zeroshot", label_words=[" negative", word])


def test_label_words_that_eat_the_token_budget_say_so_without_a_negative_budget(gpt2_tokenizer):
    task = get_task("imdb_zeroshot", max_tokens="64")
    with pytest.raises(UserError) as err:
        Encoder(task, gpt2_tokenizer, 64, reserve=70)
    msg = str(err.value)
    assert "label words take up to 70 more tokens" in msg and "-6" not in msg and "-T max_tokens" in msg


def test_a_lora_rank_above_the_hidden_size_is_refused_with_both_numbers(tmp_path: Path, gpt2_dir: Path,
                                                                          capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("peft")
    train = write_rows(tmp_path / "train.csv", separable(40, seed=1))
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(tmp_path / "o"), "--data", str(train),
                 "--lora-r", "100000", "--max-length", "64", "--device", "cpu", "--yes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--lora-r 100000" in err[0] and "hidden size (32)" in err[0]
    assert not (tmp_path / "o" / "model.safetensors").exists()


# --- item 5: a full disk while saving a fine-tune checkpoint ------------------------------------------

def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_torn_checkpoint_is_not_resumed(
        tmp_path: Path, gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    import json

    import torch

    real_save, optimizer_saves = torch.save, []

    def full_disk(obj, f, *args, **kwargs):  # what torch raises when the disk fills mid-file (seen on /dev/full)
        if str(f).endswith("optimizer.pt"):
            optimizer_saves.append(f)
            if len(optimizer_saves) == 2:  # the second epoch's checkpoint
                Path(f).write_bytes(b"PK\x03\x04torn")
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real_save(obj, f, *args, **kwargs)

    train = write_rows(tmp_path / "train.csv", separable(40, seed=1))
    out = tmp_path / "ft"
    argv = ["finetune", "--model", str(gpt2_dir), "--output", str(out), "--data", str(train), "--epochs", "2",
            "--patience", "2", "--max-length", "64", "--device", "cpu", "--yes"]
    monkeypatch.setattr(torch, "save", full_disk)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [line for line in err if "error:" in line]  # the Trainer's progress bar may close after it
    assert "Traceback" not in "\n".join(err) and "disk" in line and "--resume" in line and str(out) in line
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1  # the torn one is gone, the first epoch's is kept
    monkeypatch.setattr(torch, "save", real_save)
    torn = out / "checkpoints" / "checkpoint-999"  # as a kill -9 mid-save leaves it: no trainer_state.json
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"torn")
    assert main([*argv, "--resume"]) == 0
    log = json.loads((out / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2  # item 9: a finished fine-tune has nothing to resume, and says so
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "finished" in line and "--overwrite" in line


# --- item 6: quickstart -------------------------------------------------------------------------------

def test_quickstart_with_an_unusable_tenser_cache_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]):
    cache = tmp_path / "cache-is-a-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("TENSER_CACHE", str(cache))
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert f"TENSER_CACHE={cache}" in line and "set TENSER_CACHE to a folder you can write to" in line
    assert cache.read_text() == "not a folder"


def test_quickstart_refused_as_too_long_names_its_own_yes_and_no_settings_it_already_uses(
        tmp_path: Path, gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from harness.training import estimate
    from tenser import commands
    from tenser.cli import build_parser

    argv = list(commands.QUICKSTART)
    for flag, value in (("--model", str(gpt2_dir)), ("--limit", "12"), ("--train-limit", "40"), ("--max-length", "64")):
        argv[argv.index(flag) + 1] = value
    argv[argv.index("-T") + 1] = "max_tokens=64"
    monkeypatch.setattr(commands, "QUICKSTART", [*argv, "--device", "cpu"])
    monkeypatch.setattr(estimate, "CPU_LIMIT_S", 0.0)  # as on a CPU so busy that the estimate passes the limit
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "tenser quickstart --yes" in line
    assert not any(flag in line for flag in ("--epochs 1", "--max-length 256", "--train-layers 2", "--limit N"))
    assert build_parser().parse_args(["quickstart", "--yes"]).yes


# --- item 14: noise -------------------------------------------------------------------------------------

def test_the_trainers_missing_tied_lm_head_warning_is_dropped_and_a_real_missing_key_still_warns(gpt2_dir: Path):
    """GPT-2's lm_head is its token embedding, saved once: when the Trainer reloads the best epoch it calls
    lm_head.weight missing, though nothing is. A key that is really missing still warns."""
    import logging

    from transformers import AutoModelForCausalLM

    from harness.training.trainer import _quiet_tied_head

    net = AutoModelForCausalLM.from_pretrained(str(gpt2_dir))
    seen: list[str] = []
    log = logging.getLogger("transformers.trainer")
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        with _quiet_tied_head(net):
            log.warning("There were missing keys in the checkpoint model loaded: ['lm_head.weight'].")
            log.warning("There were missing keys in the checkpoint model loaded: ['lm_head.weight', "
                        "'transformer.h.0.attn.c_attn.weight'].")
        log.warning("There were missing keys in the checkpoint model loaded: ['lm_head.weight'].")  # filter removed
    finally:
        log.removeHandler(handler)
    assert seen == ["There were missing keys in the checkpoint model loaded: ['lm_head.weight', "
                    "'transformer.h.0.attn.c_attn.weight'].",
                    "There were missing keys in the checkpoint model loaded: ['lm_head.weight']."]


# --- item 8: the demo command compare prints -----------------------------------------------------------

def test_the_printed_demo_command_carries_include_and_overrides_and_parses(tmp_path: Path):
    import shlex

    from tenser.cli import build_parser
    from tenser.commands import demo_command, prepare_family

    family_file = tmp_path / "my tasks.toml"  # a space: the command must quote it
    family_file.write_text('[[family]]\nname = "stars_zeroshot"\nlabels = ["bad", "good"]\ndataset = "me/s"\n'
                           'prompt = "R: {text}\\nV:"\nlabel_words = [" bad", " good"]\nmetrics = ["./m"]\n')
    line = demo_command("gpt2", str(tmp_path / "ft"), "stars", include=[str(family_file)],
                        overrides=["calibration=contextual", "prompt=Q: {text}\\nA:"], train_data="train.csv",
                        trust_metrics=True)
    argv = shlex.split(line)
    assert argv[:2] == ["tenser", "demo"]
    args = build_parser().parse_args(argv[1:])
    assert args.include == [str(family_file)] and args.overrides == ["calibration=contextual", "prompt=Q: {text}\\nA:"]
    assert args.task == "stars" and args.train_data == "train.csv" and args.finetuned == str(tmp_path / "ft")
    assert prepare_family(args).zeroshot == "stars_zeroshot"  # the task from the file is found, with the flags given


# --- item 9: hints that name IMDB or the wrong thing -----------------------------------------------------

def test_an_unknown_task_says_that_tasks_from_files_need_include():
    with pytest.raises(TaskError, match=r"Unknown task 'stars_zeroshot'.*a task from a file needs --include FILE"):
        get_task("stars_zeroshot")


def test_run_with_a_family_name_says_it_is_a_family_and_names_its_tasks(tmp_path: Path, gpt2_dir: Path,
                                                                          capsys: pytest.CaptureFixture[str]):
    assert main(["run", "--model", str(gpt2_dir), "--task", "imdb", "--out", str(tmp_path)]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "--task imdb is a task family" in line and "imdb_zeroshot" in line and "imdb_classifier" in line


def test_a_split_the_bundled_sample_lacks_names_the_splits_it_has():
    from harness.data.examples import load_examples
    from tenser.cli import flag

    with pytest.raises(UserError, match=r"no split 'validation' \(splits: test, train\); pass split test") as err:
        load_examples(get_task("imdb_zeroshot"), data="embedded:imdb", split="validation")
    assert err.value.speak(flag).endswith("pass --split test")  # as the CLI prints it


def test_the_demo_names_a_bad_finetuned_model_by_its_own_flag(tmp_path: Path, gpt2_dir: Path):
    from demo.app import serve
    from tests import demo_fixtures

    with pytest.raises(UserError) as err:
        serve(str(gpt2_dir), str(tmp_path / "nope"), port=demo_fixtures.free_port(), device="cpu",
              prevent_thread_lock=True)
    from tenser.cli import flag

    said = err.value.speak(flag)  # as `tenser demo` prints it
    assert said.startswith(f"--finetuned {tmp_path / 'nope'}") and "--model" not in said
    assert str(err.value).startswith(f"finetuned {tmp_path / 'nope'}")  # as a Python caller reads it


def test_finetune_help_speaks_of_any_task_and_documents_include_and_t(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "review" not in text.lower()
    assert "--include FILE register tasks from" in text and "-T FIELD=VALUE override a task field" in text
    assert "--trust-metrics" in text
