"""Reliability: interrupted runs resume to the same results (Ctrl-C, kill -9, disk full, NaN), the
score cache never re-scores and survives corruption, pickle and damaged weights are refused, and
bad input (truncated files, torn lines, huge reviews, duplicate ids) gives one clear line."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.backends import registry
from harness.backends.base import Encoded
from harness.backends.fake import FakeModel, FakeScorer
from harness.backends.registry import register_backend
from harness.data.examples import load_examples
from harness.errors import UserError
from harness.scoring import encoding
from harness.scoring.inference import make_encoder
from harness.store import runs
from tasks import get_task
from tenser.cli import main
from tests.conftest import make_reviews, write_rows

REPO = Path(__file__).resolve().parents[1]
RUN = "imdb_zeroshot__gpt2"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Two threads on two shared cores make each tiny forward pass 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "reviews.jsonl", [{"id": f"r{i:02d}", **r} for i, r in enumerate(make_reviews(16, 4))])


def _argv(model: str | Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--data", str(data), "--out", str(out), "--device", "cpu",
            "--batch-size", "2", *extra]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("scoring ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _assert_same_run(a: Path, b: Path) -> None:
    """Same predictions (ids, preds, probs within 1e-9) and the same metrics."""
    ra, pa = runs.load_run(a)
    rb, pb = runs.load_run(b)
    assert [p["id"] for p in pa] == [p["id"] for p in pb] and [p["pred"] for p in pa] == [p["pred"] for p in pb]
    for x, y in zip(pa, pb):
        for key in ("probs", "raw_probs"):
            for label in x.get(key, {}):
                assert math.isclose(x[key][label], y[key][label], rel_tol=0, abs_tol=1e-9)
        assert (x["n_tokens"], x["truncated"], x["label"]) == (y["n_tokens"], y["truncated"], y["label"])
    for key in ("metrics", "metrics_raw"):
        assert json.dumps(ra.get(key), sort_keys=True) == json.dumps(rb.get(key), sort_keys=True)
    assert ra["task"] == rb["task"] and ra["data"] == rb["data"] and ra["sample"] == rb["sample"]


# --- the `scripted:` backend: fake:seeded-7, except where the test answers its n-th batch (Ctrl-C, NaN, a spy) ---
Probs = Callable[[list[Encoded]], np.ndarray]
OnCall = Callable[[int, list[Encoded], Probs], np.ndarray]  # (n-th call, 1-based; the batch; the real scores)
MODEL = "scripted:seeded-7"
SCRIPTED = "imdb_zeroshot__scripted-seeded-7"  # its run folder


@dataclass
class Script:
    """What the `scripted:` scorer does with each batch, and the batch sizes it was given."""

    on_call: OnCall
    calls: list[int] = field(default_factory=list)

    def then(self, on_call: OnCall) -> list[int]:
        """From now on answer with `on_call`, counting calls afresh."""
        self.on_call, self.calls = on_call, []
        return self.calls


class ScriptedScorer:
    def __init__(self, real: FakeScorer, script: Script) -> None:
        self.real, self.script = real, script
        self.method, self.label_tokens = real.method, real.label_tokens

    def prepare(self, ordered: list[Encoded], status: Any) -> None:
        pass

    def probs(self, batch: list[Encoded]) -> np.ndarray:
        self.script.calls.append(len(batch))
        return self.script.on_call(len(self.script.calls), batch, self.real.probs)

    def account(self, n: int) -> dict[str, Any]:
        return {}


@dataclass
class ScriptedModel(FakeModel):
    script: Script | None = None

    def scorer(self, task: Any, *, shift: np.ndarray | None = None, n_inputs: int = 0) -> Any:
        assert self.script is not None
        return ScriptedScorer(super().scorer(task, shift=shift, n_inputs=n_inputs), self.script)


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    """`scripted:` registered for this test only (on a copy of the registry), scoring plainly until told."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    plan = Script(_score)
    register_backend("scripted", lambda name, kind, **options: ScriptedModel(name, 7, script=plan))
    return plan


def _score(n: int, batch: Any, probs: Probs) -> np.ndarray:
    return probs(batch)


def _interrupt_at(n: int) -> OnCall:
    def on_call(call: int, batch: Any, probs: Probs) -> np.ndarray:
        if call == n:
            raise KeyboardInterrupt
        return probs(batch)

    return on_call


# --- resume ------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [(), ("-T", "calibration=contextual")])
def test_ctrl_c_then_the_same_command_resumes_to_the_same_results(extra, tmp_path, script, data, capsys):
    assert main(_argv(MODEL, data, tmp_path / "ref", "--no-cache", *extra)) == 0
    argv = _argv(MODEL, data, tmp_path / "out", *extra)
    calls = script.then(_interrupt_at(4 + 2 * bool(extra)))  # contextual: 2 content-free batches
    capsys.readouterr()
    assert main(argv) == 130
    name = SCRIPTED.replace("__", ".calibration-contextual__") if extra else SCRIPTED  # -T overrides name the folder
    run_dir = tmp_path / "out" / name
    err = capsys.readouterr().err
    assert f"the 6 predictions scored so far are kept in {run_dir}; resume with: tenser run --resume {run_dir}" in err
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.PARTIAL, runs.RUN_META]
    header, *records = [json.loads(x) for x in (run_dir / runs.PARTIAL).read_text().splitlines()]
    assert header["key"] == json.loads((run_dir / runs.RUN_META).read_text())["key"] and len(records) == 6
    calls = script.then(_score)
    assert main(argv) == 0
    assert sum(calls) == 16 - 6 + 3 * bool(extra)  # only the rest, plus the content-free inputs
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.PREDICTIONS, runs.RESULTS]
    _assert_same_run(run_dir, tmp_path / "ref" / name)
    assert runs.load_run(run_dir)[0]["runtime"]["reused"] == {"resumed": 6, "cached": 0, "scored": 10}


def test_resume_flag_finishes_the_run_from_its_folder(tmp_path, script, data, monkeypatch, capsys):
    assert main(_argv(MODEL, data, tmp_path / "ref", "--limit", "10", "--seed", "3")) == 0
    script.then(_interrupt_at(2))
    assert main(_argv(MODEL, data, tmp_path / "out", "--limit", "10", "--seed", "3", "--no-cache")) == 130
    script.then(_score)
    monkeypatch.chdir(tmp_path)  # run.json holds absolute paths: resume from anywhere
    capsys.readouterr()
    assert main(["run", "--resume", str(tmp_path / "out" / SCRIPTED), "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "out" / SCRIPTED) and "(2 resumed)" in err
    _assert_same_run(tmp_path / "out" / SCRIPTED, tmp_path / "ref" / SCRIPTED)
    assert main(["run", "--resume", str(tmp_path / "out" / SCRIPTED)]) == 2
    assert "this run is finished" in _one_error_line(capsys.readouterr().err)


def test_leftovers_of_another_job_are_refused_and_overwrite_starts_again(tmp_path, script, data, capsys):
    script.then(_interrupt_at(2))
    assert main(_argv(MODEL, data, tmp_path, "--seed", "1", "--limit", "8")) == 130
    script.then(_score)
    capsys.readouterr()
    assert main(_argv(MODEL, data, tmp_path, "--seed", "2", "--limit", "8")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "holds an unfinished run of another job" in line and "--overwrite" in line
    assert main(_argv(MODEL, data, tmp_path, "--seed", "2", "--limit", "8", "--overwrite")) == 0
    assert runs.load_run(tmp_path / SCRIPTED)[0]["runtime"]["reused"]["resumed"] == 0


def test_torn_last_line_is_dropped_and_a_damaged_line_is_reported(tmp_path, script, data, capsys):
    assert main(_argv(MODEL, data, tmp_path / "ref", "--no-cache")) == 0
    argv = _argv(MODEL, data, tmp_path / "out", "--no-cache")
    script.then(_interrupt_at(3))
    assert main(argv) == 130
    script.then(_score)
    partial = tmp_path / "out" / SCRIPTED / runs.PARTIAL
    good = partial.read_bytes()
    partial.write_bytes(good + b'{"id": "r07", "label": "positive", "probs": {"nega')  # kill -9 mid-write
    capsys.readouterr()
    assert main(argv) == 0
    _assert_same_run(tmp_path / "out" / SCRIPTED, tmp_path / "ref" / SCRIPTED)
    assert runs.load_run(tmp_path / "out" / SCRIPTED)[0]["runtime"]["reused"]["resumed"] == 4

    script.then(_interrupt_at(3))
    assert main([*argv, "--overwrite"]) == 130
    script.then(_score)
    lines = partial.read_bytes().split(b"\n")
    partial.write_bytes(b"\n".join([lines[0], lines[1][:-9], *lines[2:]]))  # a damaged line that is not the last
    capsys.readouterr()
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{partial}: line 2 is damaged (not valid JSON)" in line and "--overwrite" in line


def test_read_partial_keeps_complete_lines_and_cuts_the_torn_tail(tmp_path):
    path = tmp_path / runs.PARTIAL
    log = runs.PredictionLog(tmp_path, key="job:k")
    log.append([{"id": "a", "probs": {}}, {"id": "b", "probs": {}}])
    log.close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"id": "c", "pro')
    assert [r["id"] for r in runs.read_partial(path, key="job:k")] == ["a", "b"]
    assert path.read_bytes() == whole  # appends now start on a fresh line
    with pytest.raises(UserError, match="holds predictions of another job"):
        runs.read_partial(path, key="job:other")
    (tmp_path / "predictions.rank0.jsonl").write_text("")
    (tmp_path / "predictions.rank1.jsonl").write_text("")
    (tmp_path / "predictions.rank3.jsonl").write_text("")
    names = lambda files: [p.name for p in files]  # noqa: E731
    assert names(runs.partial_files(tmp_path, 0, 1)) == [runs.PARTIAL, "predictions.rank0.jsonl",
                                                         "predictions.rank1.jsonl", "predictions.rank3.jsonl"]
    assert names(runs.partial_files(tmp_path, 0, 2)) == [runs.PARTIAL, "predictions.rank0.jsonl",
                                                         "predictions.rank3.jsonl"]
    assert names(runs.partial_files(tmp_path, 1, 2)) == ["predictions.rank1.jsonl"]


SLOW_RUN = """
import sys, time
from harness.backends.registry import register_backend
from tests.test_reliability import Script, ScriptedModel

def slow(n, batch, probs):
    time.sleep(0.1)  # slow enough to be killed mid-run on any machine
    return probs(batch)

register_backend("scripted", lambda name, kind, **options: ScriptedModel(name, 7, script=Script(slow)))
from tenser.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_kill_9_mid_run_then_the_same_command_finishes_like_an_uninterrupted_run(tmp_path, script):
    rows = [{"id": f"k{i:03d}", **r} for i, r in enumerate(make_reviews(60, seed=9))]
    data = write_rows(tmp_path / "big.csv", rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["run", "--model", MODEL, "--data", str(data), "--out", str(tmp_path / "out"), "--device", "cpu",
            "--batch-size", "1", "--no-cache"]
    partial = tmp_path / "out" / SCRIPTED / runs.PARTIAL
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # generous: starting Python on a busy machine can take a while
    while not partial.is_file() or partial.read_bytes().count(b"\n") < 11:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run wrote no predictions in 300 s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = partial.read_bytes().count(b"\n") - 1
    assert 10 <= kept < 60 and not (tmp_path / "out" / SCRIPTED / runs.RESULTS).exists()
    again = subprocess.run([sys.executable, "-c", SLOW_RUN, *args], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert main([a if a != str(tmp_path / "out") else str(tmp_path / "ref") for a in args]) == 0  # one thread too
    _assert_same_run(tmp_path / "out" / SCRIPTED, tmp_path / "ref" / SCRIPTED)
    reused = runs.load_run(tmp_path / "out" / SCRIPTED)[0]["runtime"]["reused"]
    assert reused["resumed"] >= kept and reused["resumed"] + reused["scored"] == 60


# --- the score cache ------------------------------------------------------------------------------

def _never(n: int, batch: Any, probs: Probs) -> np.ndarray:
    raise AssertionError("scored although cached")


def test_a_finished_job_is_never_scored_again_unless_no_cache(tmp_path, script, data, capsys):
    assert main(_argv(MODEL, data, tmp_path / "a")) == 0
    script.then(_never)
    assert main(_argv(MODEL, data, tmp_path / "b")) == 0
    assert "nothing scored (16 cached)" in capsys.readouterr().err
    _assert_same_run(tmp_path / "a" / SCRIPTED, tmp_path / "b" / SCRIPTED)
    calls = script.then(_score)
    assert main(_argv(MODEL, data, tmp_path / "d", "--no-cache")) == 0
    assert sum(calls) == 16
    calls.clear()
    assert main(_argv(MODEL, data, tmp_path / "e", "-T", "prompt=Text: {text}\nSentiment:")) == 0
    assert sum(calls) == 16  # another prompt: another cache key


def test_corrupt_cache_entries_are_ignored_and_rescored(tmp_path, script, data, capsys):
    assert main(_argv(MODEL, data, tmp_path / "a")) == 0
    (shard,) = Path(os.environ["TENSER_CACHE"]).glob("scores/*/*.jsonl")
    lines = shard.read_bytes().split(b"\n")[:-1]
    bad = [b"\xff\xfe garbage", lines[1][:20], lines[2].replace(b'"p": [', b'"p": [NaN, '),
           lines[3].replace(b'"n": ', b'"n": -'), json.dumps({**json.loads(lines[4]), "p": [0.5]}).encode()]
    shard.write_bytes(b"\n".join(bad + lines[5:]) + b"\n")
    calls = script.then(_score)
    assert main(_argv(MODEL, data, tmp_path / "b")) == 0
    assert sum(calls) == 5
    _assert_same_run(tmp_path / "a" / SCRIPTED, tmp_path / "b" / SCRIPTED)
    assert runs.load_run(tmp_path / "b" / SCRIPTED)[0]["runtime"]["reused"] == {"resumed": 0, "cached": 11, "scored": 5}


def test_an_unusable_cache_folder_warns_and_the_run_goes_on(tmp_path, gpt2_dir, data, monkeypatch, capsys):
    (tmp_path / "not_a_folder").write_text("x")
    monkeypatch.setenv("TENSER_CACHE", str(tmp_path / "not_a_folder"))
    assert main(_argv(gpt2_dir, data, tmp_path / "out")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: cannot write the score cache") == 1 and "--no-cache" in err
    assert runs.load_run(tmp_path / "out" / RUN)[1]


# --- safe loading ---------------------------------------------------------------------------------

@pytest.fixture
def pickle_only_dir(tmp_path: Path, gpt2_dir: Path) -> Path:
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    for p in gpt2_dir.glob("*.json"):
        (folder / p.name).write_bytes(p.read_bytes())
    torch.save(load_file(gpt2_dir / "model.safetensors"), folder / "pytorch_model.bin")
    return folder


def test_pickle_weights_are_refused_unless_allowed(tmp_path, pickle_only_dir, data, capsys):
    assert main(_argv(pickle_only_dir, data, tmp_path / "a")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "has only pickle weights (pytorch_model.bin)" in line and "--allow-pickle" in line
    assert main(["finetune", "--model", str(pickle_only_dir), "--data", str(data), "--output", str(tmp_path / "f"),
                 "--device", "cpu"]) == 2
    assert "--allow-pickle" in _one_error_line(capsys.readouterr().err)
    assert main(_argv(pickle_only_dir, data, tmp_path / "b", "--allow-pickle", "--limit", "4")) == 0
    capsys.readouterr()
    bench = ["bench", "--model", str(pickle_only_dir), "--data", str(data), "--limit", "4", "--device", "cpu",
             "--ways", "tenser,one_at_a_time", "--out", str(tmp_path / "bench")]
    assert main(bench) == 2
    assert "--allow-pickle" in _one_error_line(capsys.readouterr().err)
    assert main([*bench, "--allow-pickle"]) == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_safetensors_file_is_named_in_one_line(damage, tmp_path, gpt2_dir, data, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    for p in gpt2_dir.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    weights = folder / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"\x00garbage" * 64)
    assert main(_argv(folder, data, tmp_path / "out")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"weights file {weights} is corrupt or truncated" in line


# --- disk full, NaN ---------------------------------------------------------------------------------

def test_disk_full_while_scoring_keeps_the_partial_and_resumes(tmp_path, gpt2_dir, data, monkeypatch, capsys):
    assert main(_argv(gpt2_dir, data, tmp_path / "ref", "--no-cache")) == 0
    real_write = runs.PredictionLog._write
    writes: list[int] = []

    def full(self: Any, records: Any) -> None:
        writes.append(1)
        if len(writes) == 4:  # the header, two batches, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, records)

    monkeypatch.setattr(runs.PredictionLog, "_write", full)
    argv = _argv(gpt2_dir, data, tmp_path / "out", "--no-cache")
    capsys.readouterr()
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    run_dir = tmp_path / "out" / RUN
    assert f"cannot write {run_dir / runs.PARTIAL} (No space left on device)" in line
    assert f"resume with: tenser run --resume {run_dir}" in line
    assert runs.count_partial(run_dir) == 4
    monkeypatch.setattr(runs.PredictionLog, "_write", real_write)
    assert main(argv) == 0
    _assert_same_run(run_dir, tmp_path / "ref" / RUN)


def test_disk_full_when_saving_results_keeps_everything_for_resume(tmp_path, script, data, monkeypatch, capsys):
    real_atomic = runs.write_atomic

    def fsync_fails(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "full").mkdir()
    with monkeypatch.context() as m:  # the real write_atomic turns ENOSPC into a one-line error
        m.setattr(runs.os, "fsync", fsync_fails)
        with pytest.raises(UserError, match=r"cannot write .*x.json \(No space left on device\); free some space"):
            real_atomic(tmp_path / "full" / "x.json", "{}")
    assert list((tmp_path / "full").iterdir()) == []  # no temporary file left

    def results_fail(path: Path, text: str) -> None:
        if path.name == runs.RESULTS:
            raise UserError(f"cannot write {path} (No space left on device); free some space")
        real_atomic(path, text)

    monkeypatch.setattr(runs, "write_atomic", results_fail)
    argv = _argv(MODEL, data, tmp_path / "out")
    capsys.readouterr()
    assert main(argv) == 2
    assert "the scored predictions are kept, resume with: tenser run --resume" in _one_error_line(capsys.readouterr().err)
    run_dir = tmp_path / "out" / SCRIPTED
    assert runs.count_partial(run_dir) == 16 and (run_dir / runs.RUN_META).is_file()
    monkeypatch.setattr(runs, "write_atomic", real_atomic)
    calls = script.then(_never)
    assert main(argv) == 0 and not calls
    assert runs.load_run(run_dir)[0]["runtime"]["reused"]["resumed"] == 16


def test_nan_scores_are_reported_not_predicted_and_the_rest_is_kept(tmp_path, script, data, capsys):
    def nan_in_third_batch(n: int, batch: Any, probs: Probs) -> np.ndarray:
        out = probs(batch).copy()
        if n == 3:
            out[1] = float("nan")
        return out

    script.then(nan_in_third_batch)
    argv = _argv(MODEL, data, tmp_path / "out")
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    run_dir = tmp_path / "out" / SCRIPTED
    kept = [json.loads(x)["id"] for x in (run_dir / runs.PARTIAL).read_text().splitlines()[1:]]
    assert "NaN/inf scores for 1 input(s)" in line and "they get no prediction" in line and len(kept) == 5
    nan_id = line.split("(ids: ")[1].split(")")[0]
    assert nan_id not in kept and "The 5 predictions scored so far are kept" in line
    script.then(_score)
    assert main(argv) == 0
    predictions = runs.load_run(run_dir)[1]
    assert len(predictions) == 16 and all(np.isfinite(list(p["probs"].values())).all() for p in predictions)


# --- bad input ------------------------------------------------------------------------------------------

def test_a_truncated_parquet_file_is_one_clear_error(tmp_path):
    path = write_rows(tmp_path / "reviews.parquet", make_reviews(40))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(UserError, match=r"reviews.parquet: cannot read it as parquet") as err:
        load_examples(get_task("imdb_zeroshot"), data=str(path))
    assert "\n" not in str(err.value)


def test_a_damaged_predictions_line_is_reported_with_file_and_line(tmp_path, gpt2_dir, data, capsys):
    assert main(_argv(gpt2_dir, data, tmp_path)) == 0
    preds = tmp_path / RUN / runs.PREDICTIONS
    lines = preds.read_bytes().split(b"\n")
    for damaged in (lines[6][:30], b"\xff\xfe\x00 not text"):
        preds.write_bytes(b"\n".join([*lines[:6], damaged, *lines[7:]]))
        with pytest.raises(UserError, match=rf"{preds}: line 7 is not valid JSON"):
            runs.load_run(tmp_path / RUN)


def test_duplicate_ids_are_one_clear_error(tmp_path, gpt2_dir, capsys):
    rows = [{"id": f"r{i % 5}", **r} for i, r in enumerate(make_reviews(8))]
    data = write_rows(tmp_path / "dups.parquet", rows)
    assert main(_argv(gpt2_dir, data, tmp_path / "out")) == 2
    assert "3 example id(s) repeat (r0, r1, r2)" in _one_error_line(capsys.readouterr().err)


def test_a_multi_megabyte_review_is_cut_before_tokenizing(tmp_path, gpt2, gpt2_dir):
    task = get_task("imdb_zeroshot")
    encoder = make_encoder(task, gpt2)
    huge = "I loved it. " * 300_000  # 3.6 MB
    t0 = time.perf_counter()
    enc = encoder.encode(huge)
    assert time.perf_counter() - t0 < 2 and enc.truncated and enc.n_tokens == gpt2.context_length
    long = " ".join(r["text"] for r in make_reviews(60, seed=5))  # long enough to pre-cut, short enough not to
    for side in ("left", "right"):
        enc_task = get_task("imdb_zeroshot", truncation_side=side)
        cut = make_encoder(enc_task, gpt2).encode(long)
        full_encoder = make_encoder(enc_task, gpt2)
        full_encoder_cut = encoding.MAX_CHARS_PER_TOKEN
        try:
            encoding.MAX_CHARS_PER_TOKEN = 10**9
            full = full_encoder.encode(long)
        finally:
            encoding.MAX_CHARS_PER_TOKEN = full_encoder_cut
        assert len(long) > full_encoder.max_tokens * full_encoder_cut
        assert cut == full  # the tokens kept are the same ones
    rows = [{"id": f"r{i}", **r} for i, r in enumerate(make_reviews(6))] + [{"id": "huge", "text": huge, "label": 1}]
    assert main(_argv(gpt2_dir, write_rows(tmp_path / "d.jsonl", rows), tmp_path / "out")) == 0
    huge_pred = next(p for p in runs.load_run(tmp_path / "out" / RUN)[1] if p["id"] == "huge")
    assert huge_pred["truncated"] and huge_pred["n_tokens"] == gpt2.context_length
