"""harness.errors: a UserError names Python parameters; a Python caller reads their names, the CLI
prints their flags (and exits 2), and an entry point that calls a shared parameter something else
(`compare`'s `train_data`) renames it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import api
from harness.errors import UserError, renamed_params
from tenser.cli import flag, main
from tests.conftest import make_reviews, write_rows


def test_placeholders_read_as_names_in_python_and_as_flags_on_the_cli():
    err = UserError("{batch_size} 0: must be at least 1; see {training.batch_size}", param="batch_size",
                    mentions=("training.batch_size",))
    assert str(err) == "batch_size 0: must be at least 1; see training.batch_size" and err.param == "batch_size"
    assert err.speak(flag) == "--batch-size 0: must be at least 1; see --train-batch-size"
    assert flag("training.lr") == "--lr" and flag("overrides") == "-T"


def test_a_value_holding_braces_is_left_alone():
    err = UserError("prompt {text}: {data} x", param="data")  # {text} is no parameter of this error
    assert str(err) == "prompt {text}: data x" and err.speak(flag) == "prompt {text}: --data x"


def test_renamed_params_renames_only_listed_parameters_and_keeps_the_type():
    class Special(UserError):
        def __init__(self, message: str, extra: int) -> None:
            super().__init__(message, param="data")
            self.extra = extra

    with pytest.raises(Special) as info, renamed_params({"data": "train_data"}):
        raise Special("{data} x.csv: no such file", 7)
    assert str(info.value) == "train_data x.csv: no such file" and info.value.extra == 7
    assert info.value.speak(flag) == "--train-data x.csv: no such file"
    with pytest.raises(UserError, match="^limit 0$"), renamed_params({"data": "train_data"}):
        raise UserError("{limit} 0", param="limit")
    extended = UserError("{lr} 0", param="lr").extended("; or pass {objective} prompt", mentions=("objective",))
    assert extended.speak(flag) == "--lr 0; or pass --objective prompt"


def test_python_api_reads_the_parameter_and_the_cli_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(UserError, match=r"^noise_examples -1: give 0 \(off\)") as info:
        api.compare("gpt2", "imdb", out=tmp_path / "c", noise_examples=-1)
    assert info.value.param == "noise_examples"
    code = main(["compare", "--model", "gpt2", "--out", str(tmp_path / "c"), "--noise-examples", "-1"])
    assert code == 2 and "tenser compare: error: --noise-examples -1: give 0 (off)" in capsys.readouterr().err

    with pytest.raises(UserError, match=r"^lr 0.0: the learning rate must be positive") as info:
        api.finetune("gpt2", output=tmp_path / "ft", lr=0.0)
    assert info.value.param == "lr"
    code = main(["finetune", "--model", "gpt2", "--output", str(tmp_path / "ft2"), "--lr", "0"])
    assert code == 2 and "tenser finetune: error: --lr 0.0: the learning rate must be positive" in \
        capsys.readouterr().err


def test_batch_size_zero_through_evaluate_names_batch_size(tmp_path: Path, gpt2_dir: Path):
    data = write_rows(tmp_path / "test.csv", make_reviews(4, seed=3))
    with pytest.raises(UserError, match=r"^batch_size 0: give a positive whole number or 'auto'$") as info:
        api.evaluate(str(gpt2_dir), "imdb_zeroshot", data=str(data), out=tmp_path / "runs", batch_size=0,
                     device="cpu")
    assert info.value.param == "batch_size"


def test_a_non_empty_folder_names_out_in_python_and_output_on_the_cli(tmp_path: Path, gpt2_dir: Path,
                                                                     capsys: pytest.CaptureFixture[str]):
    data = write_rows(tmp_path / "test.csv", make_reviews(4, seed=3))
    folder = tmp_path / "runs" / f"imdb_zeroshot__{gpt2_dir.name}"  # where evaluate writes
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"is not empty; pass overwrite or choose another out$"):
        api.evaluate(str(gpt2_dir), "imdb_zeroshot", data=str(data), out=tmp_path / "runs", device="cpu")
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(folder), "--data", str(data)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and f"--output {folder}: the folder is not empty; pass --overwrite" in line
