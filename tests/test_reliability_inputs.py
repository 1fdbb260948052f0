"""Issue 24: sizes that must be refused with the number (label lists, label words, LoRA rank), and
the small hostile inputs around quickstart, gate and the demo command compare prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.encoding import Encoder
from harness.errors import UserError
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
