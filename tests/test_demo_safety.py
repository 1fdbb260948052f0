"""Demo hardening (issue 16): the CSV download cannot carry spreadsheet formulas, an uploaded CSV's
column names are shown as text (never HTML), and the demo refuses model pairs that make no sense."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import demo_fixtures  # noqa: E402

from demo.app import classify_batch, serve  # noqa: E402
from demo.inputs import InputProblem, read_csv_texts  # noqa: E402
from demo.outputs import write_csv  # noqa: E402
from demo.pairing import check_pair  # noqa: E402
from harness.errors import UserError  # noqa: E402

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\tTAB", "\rCR"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> demo_fixtures.TinyModels:
    return demo_fixtures.save_tiny_models(tmp_path_factory.mktemp("models"))


# --- item 12: formula injection in the CSV download ---------------------------------------------------

def test_the_csv_download_neutralises_formulas(tmp_path: Path) -> None:
    df = pd.DataFrame({"row": range(1, len(FORMULAS) + 2), "text": [*FORMULAS, "a fine = film"],
                       "pretrained_p_negative": [-0.0] * (len(FORMULAS) + 1)})
    path = write_csv(df, tmp_path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == ["'" + t for t in FORMULAS] + ["a fine = film"]
    assert {r["pretrained_p_negative"] for r in rows} == {"-0.0"}  # numbers are not text: unchanged


def test_a_batch_of_formula_reviews_downloads_safely(tiny: demo_fixtures.TinyModels, tmp_path: Path) -> None:
    from demo.predictors import Predictor
    from harness.backends.loading import load_model
    from tasks import get_task

    pre = Predictor.create("pretrained", load_model(str(tiny.lm), "causal_lm", device="cpu", dtype="float32"),
                           get_task("imdb_zeroshot"))
    _, _, path = classify_batch([pre], "\n".join(t for t in FORMULAS if t.strip()), None, tmp_path)
    assert path is not None
    cells = [row[1] for row in list(csv.reader(open(path, newline="", encoding="utf-8")))[1:]]
    assert cells and all(c.startswith("'") for c in cells) and not any(c[:1] in "=+-@" for c in cells)


# --- item 13: HTML in an uploaded CSV's column names --------------------------------------------------

def test_html_in_a_column_name_is_shown_as_text(tmp_path: Path) -> None:
    upload = tmp_path / "evil.csv"
    upload.write_text('"<img src=x onerror=alert(1)>","`</code><b>x</b>"\nsome,review\n', encoding="utf-8")
    with pytest.raises(InputProblem) as info:
        read_csv_texts(upload)
    message = str(info.value)
    assert "<img" not in message and "<b>" not in message and "&lt;img src=x onerror=alert\\(1\\)&gt;" in message
    assert "\\`&lt;/code&gt;&lt;b&gt;x&lt;/b&gt;" in message  # a backtick cannot end a code span either


# --- item 14: the model pair ------------------------------------------------------------------------

def test_the_same_model_as_pretrained_and_finetuned_is_refused(tiny: demo_fixtures.TinyModels, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="are the same model"):
        check_pair(str(tiny.lm), str(tiny.lm))
    copy = shutil.copytree(tiny.lm, tmp_path / "copy")
    (copy / "training_log.json").write_text("{}")
    with pytest.raises(UserError, match="are the same model"):  # a copy is still the same weights
        check_pair(str(tiny.lm), str(copy))
    with pytest.raises(UserError, match="are the same model"):
        serve(str(tiny.lm), str(tiny.lm), port=demo_fixtures.free_port(), device="cpu", prevent_thread_lock=True)


def test_a_classifier_as_pretrained_is_refused(tiny: demo_fixtures.TinyModels) -> None:
    with pytest.raises(UserError, match=r"--pretrained .*: is a classifier checkpoint .* pass this folder as --finetuned"):
        check_pair(str(tiny.classifier), str(tiny.lm))


def test_a_plain_lm_as_finetuned_is_warned_about(tiny: demo_fixtures.TinyModels, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = _other_lm(tiny.lm, tmp_path / "other")
    check_pair(str(tiny.lm), str(other))
    assert "warning: --finetuned" in capsys.readouterr().err
    (other / "training_log.json").write_text(json.dumps({"objective": "prompt"}))
    check_pair(str(tiny.lm), str(other))
    check_pair(str(tiny.lm), str(tiny.classifier))
    assert capsys.readouterr().err == ""


def _other_lm(lm: Path, folder: Path) -> Path:
    """The tiny LM with its weights nudged: another model of the same shape."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(lm)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(lm).save_pretrained(folder)
    return folder
