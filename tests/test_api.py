"""harness.api and the commands over it: a task family registered from TOML or Python gets the
whole product (compare, report wording, demo, bench) with tiny models; the Python API and the
CLI give identical run folders."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import Run, evaluate
from harness.errors import UserError
from tasks import TaskError, get_family, get_task
from tenser.cli import main
from tests.conftest import make_reviews, write_rows

LABELS = ("awful", "fine", "great")
WORDS = (" bad", " good", " boring")  # single tokens of the tiny BPE (checked below)
TOML = f'''
[[family]]
name = "trio_zeroshot"
description = "Three-way opinion strength on synthetic texts"
labels = {json.dumps(list(LABELS))}
dataset = "data/trio.jsonl"
prompt = "Text: {{text}}\\nOpinion:"
label_words = {json.dumps(list(WORDS))}
'''
PY = f'''
from tasks import Task, register_family
register_family(Task(name="pytrio_zeroshot", kind="zeroshot", labels={LABELS!r}, prompt="Text: {{text}}\\nOpinion:",
                     label_words={WORDS!r}, description="Python-registered three-way opinions"))
'''


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    texts = [r["text"].replace("movie", "thing").replace("Movie", "Thing") for r in make_reviews(n, seed=seed)]
    return [{"text": text, "label": LABELS[i % 3]} for i, text in enumerate(texts)]


@pytest.fixture
def trio(tmp_path: Path) -> Path:
    """A TOML family file whose data sits next to it (a relative path), plus a train file."""
    (tmp_path / "data").mkdir()
    write_rows(tmp_path / "data" / "trio.jsonl", _rows(9, seed=31))
    write_rows(tmp_path / "train.jsonl", _rows(30, seed=32))
    path = tmp_path / "trio.toml"
    path.write_text(TOML)
    return path


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return [line for line in out.splitlines() if line.startswith("/")]  # the Trainer prints its logs too


def _words(page: Path) -> str:
    """The report's text without its embedded images (base64 holds any letters)."""
    return re.sub(r"data:image/[^\"')\s]+", "", page.read_text())


def _check_report(page: Path, description: str) -> None:
    html = _words(page)
    assert description in html and "Task: trio" in html or "Task: pytrio" in html
    for label in LABELS:
        assert label in html
    for word in ("imdb", "movie"):
        assert word not in html.lower(), html[max(0, html.lower().find(word) - 300):html.lower().find(word) + 100]


def test_toml_family_compared_end_to_end(trio: Path, gpt2_dir: Path, gpt2_tokenizer: Any,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert all(len(gpt2_tokenizer(w)["input_ids"]) == 1 for w in WORDS)
    out = trio.parent / "cmp"
    lines = _cli(["compare", "--include", str(trio), "--task", "trio", "--model", str(gpt2_dir), "--out", str(out),
                  "--train-data", str(trio.parent / "train.jsonl"), "--epochs", "1", "--max-length", "64",
                  "--device", "cpu"], capsys)
    assert lines == [str(out / "runs" / "pretrained__trio_zeroshot"), str(out / "runs" / "finetuned__trio_classifier"),
                     str(out / "report.html")]
    before, after = Run.load(lines[0]), Run.load(lines[1])
    assert before.results["task"]["name"] == "trio_zeroshot" and after.results["task"]["name"] == "trio_classifier"
    assert before.metrics["n"] == after.metrics["n"] == 9  # the task's own local data, no --data
    assert set(after.predictions["pred"]) <= set(LABELS)
    _check_report(out / "report.html", "Three-way opinion strength on synthetic texts")


def test_python_family_compared_with_a_given_checkpoint(tmp_path: Path, gpt2_dir: Path,
                                                        make_classifier_dir: Callable[..., Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    include = tmp_path / "pytrio.py"
    include.write_text(PY)
    data = write_rows(tmp_path / "test.jsonl", _rows(6, seed=33))
    out = tmp_path / "cmp"
    lines = _cli(["compare", "--include", str(include), "--task", "pytrio_classifier", "--model", str(gpt2_dir),
                  "--finetuned", str(make_classifier_dir(LABELS)), "--data", str(data), "--out", str(out),
                  "--device", "cpu"], capsys)  # the include is loaded once, though both tasks are used
    assert lines[-1] == str(out / "report.html")
    assert Run.load(lines[1]).results["task"]["name"] == "pytrio_classifier"
    html = _words(out / "report.html")
    assert "Python-registered three-way opinions" in html and "pytrio:" in html  # the family names the title
    for word in ("imdb", "movie"):
        assert word not in html.lower(), html[max(0, html.lower().find(word) - 300):html.lower().find(word) + 100]


def test_unknown_family_gets_did_you_mean_everywhere(tmp_path: Path, gpt2_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["compare", "--out", str(tmp_path / "c")], ["bench"], ["demo", "--pretrained", "x",
                                                                              "--finetuned", "y"]):
        argv = [command[0], "--task", "imbd", *command[1:]] + (["--model", str(gpt2_dir)] if command[0] != "demo"
                                                                 else [])
        assert main(argv) == 2
        assert "Unknown task family 'imbd'. Did you mean 'imdb'?" in capsys.readouterr().err


def test_demo_on_the_family(trio: Path, gpt2_dir: Path, make_classifier_dir: Callable[..., Path]) -> None:
    from demo.app import build_app, classify_review
    from demo.predictors import Predictor
    from harness.backends.loading import load_model
    from tasks import include_file

    include_file(trio)
    family = get_family("trio_zeroshot")
    lm = load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="float32")
    clf = load_model(str(make_classifier_dir(LABELS)), "classifier", device="cpu", dtype="float32")
    app = build_app(lm, clf, pretrained_task=family.zeroshot, finetuned_task=family.classifier)
    page = json.dumps(app.config)
    assert "Three-way opinion strength on synthetic texts" in page and "awful, fine, great" in page
    assert "movie" not in page.lower() and "imdb" not in page.lower()
    predictors = [Predictor.create("pretrained", lm, get_task(family.zeroshot)),
                  Predictor.create("finetuned", clf, get_task(family.classifier))]
    out = classify_review(predictors, "the film was great and the music was good")
    assert set(out[1]) >= {"label", "confidences"} or isinstance(out[1], dict)
    assert {a.label for p in predictors for a in p.answer(["a text"])} <= set(LABELS)


def test_bench_on_the_family(trio: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = trio.parent / "bench"
    _cli(["bench", "--include", str(trio), "--task", "trio", "--model", str(gpt2_dir), "--limit", "6",
          "--ways", "tenser,one_at_a_time", "--device", "cpu", "--out", str(out)], capsys)
    saved = json.loads((out / "bench.json").read_text())["scoring"][0]
    assert saved["task"] == "trio_zeroshot" and saved["agreement"]["ok"]


def test_api_and_cli_give_identical_run_folders(tmp_path: Path, gpt2_dir: Path, data_csv: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = evaluate(str(gpt2_dir), "imdb_zeroshot", data=str(data_csv), limit=8, out=tmp_path / "api",
                   overrides={"calibration": "contextual"}, device="cpu", batch_size=4, use_cache=False)
    (folder,) = _cli(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--limit", "8", "--out",
                      str(tmp_path / "cli"), "-T", "calibration=contextual", "--device", "cpu", "--batch-size", "4",
                      "--no-cache"], capsys)
    assert run.path.name == Path(folder).name == "imdb_zeroshot.calibration-contextual__gpt2"
    cli = Run.load(folder)
    drop = ("created", "timings")
    assert {k: v for k, v in run.results.items() if k not in drop} == {k: v for k, v in cli.results.items()
                                                                      if k not in drop}
    assert (run.path / "predictions.jsonl").read_bytes() == (Path(folder) / "predictions.jsonl").read_bytes()
    assert run.metrics == cli.metrics and len(run.predictions) == 8
    assert list(run.predictions["id"]) == [r["id"] for r in cli.records]


def test_api_errors_are_the_clis(tmp_path: Path, gpt2_dir: Path) -> None:
    with pytest.raises(UserError, match="unknown option 'batchsize'. Did you mean 'batch_size'"):
        evaluate(str(gpt2_dir), "imdb_zeroshot", out=tmp_path, batchsize=4)
    with pytest.raises(TaskError, match="Did you mean 'imdb_zeroshot'"):
        evaluate(str(gpt2_dir), "imdb-zeroshot", out=tmp_path)
