"""Several processes: `torchrun -m tenser run` shards the examples over two CPU processes (gloo)
and gathers one run folder equal to a single process's; `torchrun -m tenser finetune` trains
data-parallel and only rank 0 writes the checkpoint. Real launches, so each costs seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import distributed
from harness.errors import UserError
from harness.store import runs
from tenser.cli import main
from tests.conftest import make_reviews, write_rows

REPO = Path(__file__).resolve().parents[1]
RUN = "imdb_zeroshot.calibration-contextual__gpt2"  # -T calibration=contextual names the folder
PLAIN_RUN = "imdb_zeroshot__gpt2"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _launch(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_processes_give_the_run_folder_of_one(tmp_path: Path, gpt2_dir: Path) -> None:
    rows = [{"id": f"d{i:02d}", **r} for i, r in enumerate(make_reviews(21, seed=11))]  # odd: uneven shares
    data = write_rows(tmp_path / "data.jsonl", rows)
    args = ["run", "--model", str(gpt2_dir), "--data", str(data), "--device", "cpu", "--batch-size", "1",
            "-T", "calibration=contextual", "--no-cache"]
    many = _launch([*TORCHRUN, "-m", "tenser", *args, "--out", str(tmp_path / "many")], tmp_path)
    assert many.stdout.strip() == str(tmp_path / "many" / RUN)  # one line, from rank 0 only
    assert many.stderr.count("imdb_zeroshot | ") == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each launched process (OMP_NUM_THREADS=1): the very same floats
    try:
        assert main([*args, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    (r_many, p_many), (r_one, p_one) = runs.load_run(tmp_path / "many" / RUN), runs.load_run(tmp_path / "one" / RUN)
    assert p_many == p_one  # the same records, in example order
    for key in ("metrics", "metrics_raw", "calibration", "task", "data", "sample", "scoring"):
        assert r_many[key] == r_one[key], key
    assert r_many["runtime"]["processes"] == 2 and r_one["runtime"]["processes"] == 1
    assert sorted(p.name for p in (tmp_path / "many" / RUN).iterdir()) == [runs.PREDICTIONS, runs.RESULTS]


def test_an_error_on_rank_0_stops_every_rank_and_is_reported_once(tmp_path: Path, gpt2_dir: Path) -> None:
    data = write_rows(tmp_path / "data.csv", make_reviews(6))
    run_dir = tmp_path / "out" / PLAIN_RUN
    run_dir.mkdir(parents=True)
    (run_dir / runs.RUN_META).write_text(json.dumps({"key": "job:another", "job": {}}))
    (run_dir / runs.PARTIAL).write_text("")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([*TORCHRUN, "-m", "tenser", "run", "--model", str(gpt2_dir), "--data", str(data),
                           "--out", str(tmp_path / "out"), "--device", "cpu"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)  # a hang would time out here
    assert proc.returncode != 0 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tenser run: error:")]
    assert len(errors) == 1 and "holds an unfinished run of another job" in errors[0], proc.stderr[-2000:]


def test_two_process_finetune_writes_one_checkpoint_from_rank_0(tmp_path: Path, gpt2_dir: Path) -> None:
    rows = [{"text": f"{'great fun loved' if i % 2 else 'awful dull hated'} {r['text'][:80]}", "label": i % 2}
            for i, r in enumerate(make_reviews(40, seed=12))]
    data = write_rows(tmp_path / "train.csv", rows)
    out = tmp_path / "tuned"
    proc = _launch([*TORCHRUN, "-m", "tenser", "finetune", "--model", str(gpt2_dir), "--data", str(data),
                    "--output", str(out), "--epochs", "1", "--batch-size", "4", "--max-length", "48",
                    "--device", "cpu"], tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert proc.stderr.count("best epoch 1") == 1 and proc.stderr.count("epoch 1: val_loss=") == 1
    log = json.loads((out / "training_log.json").read_text())
    assert log["processes"] == 2 and log["data"]["n_train"] + log["data"]["n_val"] == 40
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.json",
                                                     "tokenizer_config.json", "training_log.json"]
    from harness.backends.loading import load_model

    assert load_model(str(out), "classifier", device="cpu").info["architecture"] == "GPT2ForSequenceClassification"


def test_one_process_needs_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init() == distributed.World(0, 1, 0)
    assert distributed.all_gather("x") == ["x"] and distributed.gather(1) == [1] and distributed.broadcast(2) == 2
    assert distributed.on_main(lambda: 3) == 3
    distributed.check_all(None)
    with pytest.raises(UserError, match="boom"):
        distributed.check_all(UserError("boom"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(UserError, match=r"RANK=2 WORLD_SIZE=2: the rank must be in \[0, WORLD_SIZE\)"):
        distributed.world()
