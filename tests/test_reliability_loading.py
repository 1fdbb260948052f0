"""Reliability of model loading (issue 16): a checkpoint that does not fit the task kind, or whose
load would leave weights newly initialised, is refused; a missing or empty tokenizer is one line at
load time; a malicious or truncated pickle under --allow-pickle is one line and exit 2."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.backends.loading import load_model
from harness.errors import UserError
from tenser.cli import main
from tests.conftest import make_reviews, write_rows
from tests.test_reliability import _one_thread  # noqa: F401  (one torch thread)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "reviews.csv", make_reviews(8, seed=3))


def _copy(src: Path, dst: Path, *, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.name not in skip:
            shutil.copy(p, dst / p.name)
    return dst


def _one_error_line(err: str) -> str:
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("scoring ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _run(model: Path, data: Path, out: Path, task: str = "imdb_zeroshot", *extra: str) -> list[str]:
    return ["run", "--task", task, "--model", str(model), "--data", str(data), "--out", str(out), "--device", "cpu",
            "--no-cache", *extra]


@pytest.fixture(scope="module")
def untied_clf_dir(tmp_path_factory: pytest.TempPathFactory, gpt2_tokenizer: Any) -> Path:
    """A classifier whose input and output embeddings are not tied: as a causal LM its head is missing."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    eos = gpt2_tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(gpt2_tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=128,
                        bos_token_id=eos, eos_token_id=eos, tie_word_embeddings=False, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    folder = tmp_path_factory.mktemp("untied") / "clf"
    torch.manual_seed(0)
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def headless_lm_dir(tmp_path_factory: pytest.TempPathFactory, gpt2_tokenizer: Any) -> Path:
    """An untied causal LM saved without its LM head (`lm_head.weight` dropped from the weights)."""
    from safetensors.torch import load_file, save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = gpt2_tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(gpt2_tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=128,
                        bos_token_id=eos, eos_token_id=eos, tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("headless") / "lm"
    GPT2LMHeadModel(config).save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


# --- item 1: the checkpoint must fit the task kind; nothing newly initialised ------------------------

@pytest.mark.parametrize("which", ["tied", "untied"])
def test_a_zeroshot_task_on_a_classifier_checkpoint_is_refused(which, tmp_path, gpt2_clf_dir, untied_clf_dir, data,
                                                               capsys):
    folder = gpt2_clf_dir if which == "tied" else untied_clf_dir
    assert main(_run(folder, data, tmp_path / "runs")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "is a classifier checkpoint (GPT2ForSequenceClassification)" in line and "--task imdb_classifier" in line
    assert not (tmp_path / "runs").exists()


def test_a_classifier_task_on_a_plain_lm_names_the_task_kind_that_fits(tmp_path, gpt2_dir, data, capsys):
    assert main(_run(gpt2_dir, data, tmp_path / "runs", "imdb_classifier")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no trained classification head" in line and "--task imdb_zeroshot" in line


def test_a_load_with_newly_initialised_weights_is_refused(headless_lm_dir):
    with pytest.raises(UserError, match=r"lacks weights this model needs \(lm_head.weight\)"):
        load_model(str(headless_lm_dir), "causal_lm", device="cpu", dtype="float32")


def test_finetune_with_the_prompt_objective_refuses_a_missing_lm_head(tmp_path, headless_lm_dir, data, capsys):
    argv = ["finetune", "--model", str(headless_lm_dir), "--task", "imdb_zeroshot", "--objective", "prompt",
            "--data", str(data), "--output", str(tmp_path / "ft"), "--device", "cpu"]
    assert main(argv) == 2
    assert "lm_head.weight" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ft" / "checkpoints").exists()


def test_a_fitting_checkpoint_still_loads(gpt2_dir, gpt2_clf_dir):
    assert load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="float32").model is not None
    assert load_model(str(gpt2_clf_dir), "classifier", device="cpu", dtype="float32").model is not None


# --- item 8: a missing or empty tokenizer is found at load time ------------------------------------

@pytest.fixture
def no_tokenizer_dir(tmp_path: Path, gpt2_dir: Path) -> Path:
    return _copy(gpt2_dir, tmp_path / "no_tok", skip=TOKENIZER_FILES)


@pytest.fixture
def no_tokenizer_clf_dir(tmp_path: Path, gpt2_clf_dir: Path) -> Path:
    return _copy(gpt2_clf_dir, tmp_path / "no_tok_clf", skip=TOKENIZER_FILES)


def test_a_model_folder_without_tokenizer_files_is_one_line_everywhere(tmp_path, no_tokenizer_dir,
                                                                       no_tokenizer_clf_dir, data, capsys):
    assert main(_run(no_tokenizer_dir, data, tmp_path / "a")) == 2
    assert "has no tokenizer files" in _one_error_line(capsys.readouterr().err)
    assert main(_run(no_tokenizer_clf_dir, data, tmp_path / "b", "imdb_classifier")) == 2
    assert "has no tokenizer files" in _one_error_line(capsys.readouterr().err)
    out = tmp_path / "ft"
    argv = ["finetune", "--model", str(no_tokenizer_dir), "--data", str(data), "--output", str(out), "--device", "cpu"]
    assert main(argv) == 2
    assert "has no tokenizer files" in _one_error_line(capsys.readouterr().err)
    assert not (out / "checkpoints").exists()


def test_an_empty_tokenizer_is_one_line(tmp_path, gpt2_dir, data, capsys):
    from transformers import AutoTokenizer

    bare = _copy(gpt2_dir, tmp_path / "bare", skip=TOKENIZER_FILES)
    empty = AutoTokenizer.from_pretrained(bare)  # transformers makes a tokenizer with no vocabulary
    empty.save_pretrained(bare)
    assert main(_run(bare, data, tmp_path / "runs")) == 2
    assert "its tokenizer is empty" in _one_error_line(capsys.readouterr().err)


# --- item 10: --allow-pickle on a malicious or truncated pickle --------------------------------------

class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("damage", ["malicious", "truncated_head", "truncated_tail"])
def test_a_bad_pickle_under_allow_pickle_is_one_line_and_exit_2(damage, tmp_path, gpt2_dir, data, capsys):
    from safetensors.torch import load_file

    folder = _copy(gpt2_dir, tmp_path / "pickled", skip=("model.safetensors",))
    weights = folder / "pytorch_model.bin"
    torch.save(load_file(gpt2_dir / "model.safetensors"), weights)
    blob = weights.read_bytes()
    if damage == "malicious":
        torch.save({"transformer.wte.weight": _Evil()}, weights)
    else:
        weights.write_bytes(blob[:100] if damage == "truncated_head" else blob[: len(blob) // 2])
    assert main(_run(folder, data, tmp_path / "runs", "imdb_zeroshot", "--allow-pickle")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert ("were refused, as they could run code" if damage == "malicious" else "truncated or corrupt") in line
