"""Resuming `tenser compare` (issue 16, item 6): killed with kill -9 in each phase, the same command
finishes with the results of an uninterrupted compare; a finished compare is reused; other settings
are refused naming the one that differs; OUT is locked while a compare writes it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.recipes import compare_folder
from harness.store import runs
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_finetune import separable
from tests.test_reliability import (
    REPO,
    _assert_same_run,
    _one_thread,  # noqa: F401  (one torch thread)
)

BEFORE, AFTER = "pretrained__imdb_zeroshot", "finetuned__imdb_classifier"

# The child stops at the phase the test names (TENSER_TEST_PHASE), writes the marker file and waits
# there for the test's kill -9: a crash at a known point, with no clean-up code run.
KILLABLE = """
import os, sys, time
from pathlib import Path
phase, marker = os.environ["TENSER_TEST_PHASE"], Path(os.environ["TENSER_TEST_MARKER"])
partial = Path(os.environ.get("TENSER_TEST_PARTIAL", "/nonexistent"))
def stop_here(*args, **kwargs):
    marker.write_text(phase)
    time.sleep(600)
import harness.backends.hf as inference
real_build = inference.build_scorer
def build(*args):
    real = real_build(*args)
    class Stopping:
        method, label_tokens = real.method, real.label_tokens
        def score(self, batch):
            if partial.is_file() and partial.read_bytes().count(b"\\n") >= 5:  # one batch of 4 kept
                stop_here()
            return real.score(batch)
    return Stopping()
inference.build_scorer = build
import harness.training.trainer as training
real_printer = training._epoch_printer
def printer():
    callback = real_printer()
    if phase == "fine-tuning":
        callback.on_save = stop_here  # after the first epoch's checkpoint is saved
    return callback
training._epoch_printer = printer
import harness.recipes.compare_folder as compare_state
real_mark = compare_state.CompareFolder.mark
def mark(self, now, **record):
    real_mark(self, now, **record)
    if phase == "report" and now == "the report":  # before the report is rendered
        stop_here()
compare_state.CompareFolder.mark = mark
from tenser.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def _args(folder: Path, data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    test, train = data
    return ["compare", "--model", str(folder), "--out", str(out), "--data", str(test), "--train-data", str(train),
            "--epochs", "2", "--max-length", "64", "--train-batch-size", "8", "--batch-size", "4", "--device", "cpu",
            "--lr", "1e-3", "--val-fraction", "0.25", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare_data")
    return (write_rows(root / "test.csv", separable(24, seed=31)), write_rows(root / "train.csv", separable(48, seed=32)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, gpt2_dir: Path, data: tuple[Path, Path]) -> Path:
    """An uninterrupted compare of the same command."""
    out = tmp_path_factory.mktemp("reference") / "cmp"
    assert main(_args(gpt2_dir, data, out)) == 0
    return out


def _kill_at(phase: str, args: list[str], out: Path, tmp_path: Path, partial: str | None = None) -> None:
    marker = tmp_path / "marker"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TENSER_TEST_PHASE": phase,
           "TENSER_TEST_MARKER": str(marker), **({"TENSER_TEST_PARTIAL": partial} if partial else {})}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # generous: starting torch on a busy machine can take a while
    while not marker.is_file():
        if proc.poll() is not None:
            pytest.fail(f"the compare ended before {phase}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"the compare did not reach {phase} in 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((out / compare_folder.STATE).read_text())["phase"] == phase.replace("report", "the report")


def _assert_same_compare(out: Path, ref: Path) -> None:
    from safetensors.torch import load_file

    for name in (BEFORE, AFTER):
        _assert_same_run(out / "runs" / name, ref / "runs" / name)
    a, b = load_file(out / "finetuned" / "model.safetensors"), load_file(ref / "finetuned" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    logs = [json.loads((d / "finetuned" / "training_log.json").read_text()) for d in (out, ref)]
    assert [e["epoch"] for e in logs[0]["epochs"]] == [1, 2] and logs[0]["epochs"] == logs[1]["epochs"]
    assert logs[0]["best_epoch"] == 2  # the saved weights are those trained after a resume
    # The Trainer averages a logged loss over the steps since the last log or the resume, so only the
    # steps logged in the first epoch compare exactly; validation losses and weights cover the rest.
    first = [(e["loss"], e["step"]) for e in logs[1]["train_loss"] if e["epoch"] <= 1]
    assert [(e["loss"], e["step"]) for e in logs[0]["train_loss"]][:len(first)] == first
    assert (out / "report.html").stat().st_size > 10_000 and not (out / "finetuned" / "checkpoints").exists()
    assert json.loads((out / compare_folder.STATE).read_text())["phase"] == "done"


def _spy_finetune(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    from harness.training import trainer

    calls: list[dict[str, Any]] = []
    real = trainer.finetune

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "finetune", spy)
    return calls


@pytest.mark.parametrize("phase", ["pretrained scoring", "fine-tuning", "fine-tuned scoring", "report"])
def test_kill_9_in_each_phase_then_the_same_command_finishes_like_an_uninterrupted_compare(
        phase, tmp_path, gpt2_dir, data, reference, monkeypatch, capsys):
    out = tmp_path / "cmp"
    args = _args(gpt2_dir, data, out)
    run = {"pretrained scoring": BEFORE, "fine-tuned scoring": AFTER}.get(phase)
    _kill_at(phase, args, out, tmp_path, partial=str(out / "runs" / run / runs.PARTIAL) if run else None)
    calls = _spy_finetune(monkeypatch)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"resuming the compare in {out} (it stopped during {phase.replace('report', 'the report')})" in err
    # Fine-tuning (and the validation check) come before any test scoring, so only a kill while
    # fine-tuning leaves a fine-tune to resume; later phases reuse it.
    expected = {"fine-tuning": [True]}.get(phase, [])  # resume=..., else reused
    assert [c["resume"] for c in calls] == expected
    if run:  # the killed run folder resumed from its partial predictions
        reused = runs.load_run(out / "runs" / run)[0]["runtime"]["reused"]
        assert reused["resumed"] >= 4 and reused["resumed"] + reused["cached"] + reused["scored"] == 24
    if phase != "fine-tuning":
        assert "reusing the finished fine-tune" in err
    if phase in ("fine-tuned scoring", "report"):
        assert f"{BEFORE}: reusing the finished run" in err
    _assert_same_compare(out, reference)


def test_a_finished_compare_is_reused_and_other_settings_are_refused(tmp_path, gpt2_dir, data, reference,
                                                                     monkeypatch, capsys):
    out = tmp_path / "cmp"
    shutil.copytree(reference, out)
    (out / "report.html").unlink()
    calls = _spy_finetune(monkeypatch)
    assert main(_args(gpt2_dir, data, out)) == 0
    assert calls == [] and (out / "report.html").is_file()
    err = capsys.readouterr().err
    assert "reusing the finished run" in err and "(it finished; reusing its results)" in err
    for extra, named in [(["--lr", "2e-3"], "--lr differs (0.001 then, 0.002 now)"),
                         (["--train-limit", "30"], "--train-limit differs (null then, 30 now)"),
                         (["--limit", "12"], "--limit differs"),
                         (["-T", "max_tokens=100"], "--task (or its -T overrides)'s field max_tokens differs")]:
        assert main([*_args(gpt2_dir, data, out), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert named in err and "--overwrite" in err and len(err.splitlines()) == 1, err
    write_rows(data[1].parent / "train2.csv", separable(40, seed=33))
    args = _args(gpt2_dir, (data[0], data[1].parent / "train2.csv"), out)
    assert main(args) == 2 and "--train-data differs" in capsys.readouterr().err


def test_overwrite_starts_a_compare_again_under_new_settings(tmp_path, gpt2_dir, data, reference):
    out = tmp_path / "cmp"
    shutil.copytree(reference, out)
    assert main([*_args(gpt2_dir, data, out, "--epochs", "1"), "--overwrite"]) == 0
    state = json.loads((out / compare_folder.STATE).read_text())
    assert state["phase"] == "done" and state["settings"]["training"]["epochs"] == 1
    assert [e["epoch"] for e in json.loads((out / "finetuned" / "training_log.json").read_text())["epochs"]] == [1]


def test_a_second_compare_into_the_same_out_stops(tmp_path, gpt2_dir, data, capsys):
    out = tmp_path / "cmp"
    with runs.run_lock(out):
        assert main(_args(gpt2_dir, data, out)) == 2
    assert "is in use by another tenser process" in capsys.readouterr().err
    assert not (out / compare_folder.STATE).exists()


def test_an_old_compare_folder_without_compare_json_is_refused(tmp_path, gpt2_dir, data, capsys):
    out = tmp_path / "cmp"
    (out / "runs").mkdir(parents=True)
    assert main(_args(gpt2_dir, data, out)) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err


def test_ctrl_c_during_compare_says_to_rerun_the_same_command():
    from harness.recipes.jobs import Interrupted, interrupted_message

    for exc in (KeyboardInterrupt(), Interrupted(Path("out/runs/x"))):
        assert "rerun the same command to continue" in interrupted_message(exc, "compare")
