"""Issue 16, the rest: a resumed run equals an uninterrupted one within the tolerance the README states
(exactly, one review per batch); a broken JSONL line is named by file and line; an unwritable report
path is not told to free space; `compare` names its own flags; `-T prompt=` on a classifier is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.backends import hf
from harness.store import runs
from tenser.cli import main
from tests import test_reliability as rel
from tests.conftest import make_reviews
from tests.test_reliability import _interrupt_at, _one_error_line, _score

RUN = "imdb_zeroshot__gpt2"
_one_thread, data = rel._one_thread, rel.data  # one torch thread; the 16-review JSONL fixture
README = Path(__file__).resolve().parents[1] / "README.md"
RESUME_TOLERANCE = 1e-6  # what README states


def _patch_scorer(monkeypatch: pytest.MonkeyPatch, on_call: Any) -> list[int]:
    """Wrap the real GPT-2 scorer (the tolerance is about real floats across batch shapes, so no fake backend
    here): `on_call(n, batch, real_probs)` answers the n-th batch (1-based)."""
    real_build = getattr(hf.build_scorer, "__wrapped__", hf.build_scorer)  # never wrap a wrapper
    calls: list[int] = []

    def build(*args: Any) -> Any:
        real = real_build(*args)

        class Wrapped:
            def __getattr__(self, name: str) -> Any:  # prefix sharing and the rest: the real scorer's
                return getattr(real, name)

            def score(self, batch: Any) -> Any:
                calls.append(len(batch))
                return on_call(len(calls), batch, real.score)

        return Wrapped()

    build.__wrapped__ = real_build  # type: ignore[attr-defined]
    monkeypatch.setattr(hf, "build_scorer", build)
    return calls


def _argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--data", str(data), "--out", str(out), "--device", "cpu", "--no-cache",
            *extra]


def _max_diff(a: Path, b: Path) -> float:
    _, pa = runs.load_run(a)
    _, pb = runs.load_run(b)
    assert [p["id"] for p in pa] == [p["id"] for p in pb] and [p["pred"] for p in pa] == [p["pred"] for p in pb]
    return max(abs(x["probs"][k] - y["probs"][k]) for x, y in zip(pa, pb) for k in x["probs"])


# --- item 7: resume equals an uninterrupted run, within the stated tolerance ------------------------

@pytest.mark.parametrize("batch, exact", [("3", False), ("auto", True)])
def test_a_resume_off_the_batch_grid_stays_within_the_stated_tolerance(batch, exact, tmp_path, gpt2_dir, data,
                                                                       monkeypatch, capsys):
    assert main(_argv(gpt2_dir, data, tmp_path / "ref", "--batch-size", batch)) == 0
    argv = _argv(gpt2_dir, data, tmp_path / "out", "--batch-size", batch)
    _patch_scorer(monkeypatch, _interrupt_at(3 if batch == "3" else 5))  # 6 or 4 scored: 10 or 12 left, regrouped
    assert main(argv) == 130
    _patch_scorer(monkeypatch, _score)
    assert main(argv) == 0
    diff = _max_diff(tmp_path / "out" / RUN, tmp_path / "ref" / RUN)
    assert diff == 0.0 if exact else diff <= RESUME_TOLERANCE
    ra, rb = runs.load_run(tmp_path / "out" / RUN)[0], runs.load_run(tmp_path / "ref" / RUN)[0]
    assert ra["metrics"]["accuracy"] == rb["metrics"]["accuracy"]
    assert ra["metrics"]["loss"] == pytest.approx(rb["metrics"]["loss"], abs=RESUME_TOLERANCE)


def test_the_readme_states_the_resume_tolerance_where_it_promises_equality():
    text = " ".join(README.read_text(encoding="utf-8").split())
    promise = text.index("only the missing examples are scored")
    assert "within 1e-6" in text[promise: promise + 700] and "bit-identical" in text[promise: promise + 700]


# --- item 9: messages that name the file, line and fix ----------------------------------------------

def test_a_broken_jsonl_line_is_named_by_file_and_line(tmp_path, gpt2_dir, capsys):
    lines = [json.dumps({"text": r["text"], "label": r["label"]}) for r in make_reviews(6)]
    lines[3] = lines[3][:-5]  # a line cut short
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(_argv(gpt2_dir, path, tmp_path / "runs")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--data {path}: line 4 is not valid JSON" in line and "position" not in line


def test_an_unwritable_report_path_is_not_told_to_free_space(tmp_path, gpt2_dir, data, capsys):
    assert main(_argv(gpt2_dir, data, tmp_path / "runs", "--limit", "4")) == 0
    capsys.readouterr()
    target = Path("/proc/tenser_report.html")  # no one may create files there, root included
    assert main(["report", str(tmp_path / "runs" / RUN), "--out", str(target)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"cannot write {target}" in line and "free some space" not in line and "folder you can write to" in line


def test_a_full_disk_is_still_told_to_free_space(tmp_path, monkeypatch):
    import errno
    import os

    from harness.errors import UserError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="free some space"):
        runs.write_atomic(tmp_path / "x.json", "{}")


def test_fewshot_without_train_data_names_train_data(tmp_path, gpt2_dir, data, capsys):
    missing = tmp_path / "missing.csv"
    assert main(_argv(gpt2_dir, data, tmp_path / "runs", "-T", "shots=2", "--train-data", str(missing))) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--train-data {missing}: no such file" in line and "--data " not in line


# --- item 11: zero-shot-only fields on a classifier task --------------------------------------------

@pytest.mark.parametrize("override", ["prompt=Movie: {text}\nVerdict:", "label_words= bad, good", "shots=2"])
def test_a_zeroshot_field_on_a_classifier_task_is_refused(override, tmp_path, gpt2_clf_dir, data, capsys):
    assert main(_argv(gpt2_clf_dir, data, tmp_path / "runs", "--task", "imdb_classifier", "-T", override)) == 2
    line = _one_error_line(capsys.readouterr().err)
    field = override.split("=")[0]
    assert f"{field} apply to zeroshot tasks only" in line
    assert not (tmp_path / "runs").exists()
