"""The newcomer's path: the bundled IMDB sample, the packaged files, training only the top
blocks (`--train-layers`), the plan and time estimate printed before a job, the `--yes` guard,
and the quickstart's compare on the bundled data with a tiny model standing in for SmolLM2."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from harness.data.examples import load_examples
from harness.errors import UserError
from harness.training import estimate
from harness.training.config import FinetuneConfig
from harness.training.trainer import finetune
from tasks import get_task
from tenser import commands
from tenser.cli import main
from tests.conftest import write_rows
from tests.test_finetune import FAST, separable

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tasks" / "data" / "imdb_sample"


@pytest.mark.parametrize("split", ["train", "test"])
def test_bundled_sample_is_balanced_real_imdb_with_its_provenance(split: str) -> None:
    df = pd.read_parquet(SAMPLE / f"{split}.parquet")
    assert list(df.columns) == ["id", "text", "label"] and len(df) == 1000
    assert df["label"].value_counts().to_dict() == {0: 500, 1: 500}
    assert df["id"].is_unique and df["id"].str.fullmatch(rf"{split}-\d{{5}}").all()
    assert not df["text"].duplicated().any() and df["text"].str.len().min() > 20
    assert df["text"].str.contains("<br />").any()  # raw IMDB text, HTML tags kept
    provenance = (SAMPLE / "PROVENANCE.md").read_text()
    assert "Maas" in provenance and "2011" in provenance and "default_rng(0)" in provenance
    digest = hashlib.sha256((SAMPLE / f"{split}.parquet").read_bytes()).hexdigest()
    assert f"`{split}.parquet` {digest}" in provenance.replace("\n", " ").replace("  ", " ")


def test_embedded_imdb_loads_each_split_and_samples_stratified() -> None:
    task = get_task("imdb_zeroshot")
    examples, info = load_examples(task, data="embedded:imdb", split="test", limit=10, seed=3)
    assert len(examples) == 10 and sorted(e.label for e in examples) == [0] * 5 + [1] * 5
    assert info.source == "embedded:imdb" and info.n_available == 1000
    train, _ = load_examples(task, data="embedded:imdb", split="train")
    assert len(train) == 1000 and train[0].id.startswith("train-")
    with pytest.raises(UserError, match="embedded:nope.*known: embedded:imdb"):
        load_examples(task, data="embedded:nope")


def test_wheel_carries_the_sample_and_the_templates(tmp_path: Path) -> None:
    """A newcomer installs a wheel, not an editable checkout: the data and templates must be in it."""
    # Build from a clean copy: an in-tree build/ folder keeps stale modules that would land in the wheel.
    source = shutil.copytree(ROOT, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".tox", "runs", ".*_cache"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("tenser-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("tasks/data/imdb_sample/train.parquet", "tasks/data/imdb_sample/test.parquet",
                 "tasks/data/imdb_sample/PROVENANCE.md", "reports/templates/report.html.j2",
                 "harness/backends/embedded.py"):
        assert name in names, f"{name} missing from {wheel.name}"
    assert not any(n.startswith("tests/") for n in names)
    modules = {n for n in names if n.endswith(".py")}
    assert modules == {str(p.relative_to(ROOT)) for d in ("harness", "tasks", "reports", "demo", "tenser")
                       for p in (ROOT / d).rglob("*.py")}  # exactly the source tree: nothing stale, nothing missing


def _blocks(state: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if f".h.{i}." in k}


def test_train_layers_trains_only_the_top_blocks_and_the_head(tmp_path: Path, gpt2_dir: Path) -> None:
    train = write_rows(tmp_path / "train.csv", separable(48, seed=1))
    out = tmp_path / "ckpt"
    cfg = FinetuneConfig(lr=1e-2, epochs=1, train_layers=1, **FAST)
    finetune(str(gpt2_dir), get_task("imdb_classifier"), out, cfg, train_data=str(train))
    before, after = load_file(gpt2_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert _blocks(after, 0) and _blocks(after, 1)  # the tiny GPT-2 has two blocks
    assert all(torch.equal(v, before[k]) for k, v in _blocks(after, 0).items())  # frozen: bit-identical
    assert torch.equal(after["transformer.wte.weight"], before["transformer.wte.weight"])
    assert any(not torch.equal(v, before[k]) for k, v in _blocks(after, 1).items())  # the top block trained
    assert not torch.equal(after["transformer.ln_f.weight"], before["transformer.ln_f.weight"])
    log = json.loads((out / "training_log.json").read_text())
    assert log["hyperparameters"]["train_layers"] == 1
    assert 0 < log["parameters"]["trainable"] < log["parameters"]["total"]


def test_train_layers_beyond_the_model_is_one_line(tmp_path: Path, gpt2_dir: Path) -> None:
    train = write_rows(tmp_path / "train.csv", separable(24, seed=1))
    with pytest.raises(UserError, match=r"^train_layers 99: .* transformer blocks; pass at most"):
        finetune(str(gpt2_dir), get_task("imdb_classifier"), tmp_path / "o", FinetuneConfig(train_layers=99, **FAST),
                 train_data=str(train))
    with pytest.raises(UserError, match="^train_layers -1"):
        FinetuneConfig(train_layers=-1).check()


def test_finetune_prints_its_plan_and_estimate(tmp_path: Path, gpt2_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    train = write_rows(tmp_path / "train.csv", separable(40, seed=1))
    code = main(["finetune", "--model", str(gpt2_dir), "--output", str(tmp_path / "ckpt"), "--data", str(train),
                 "--epochs", "2", "--batch-size", "8", "--max-length", "64", "--device", "cpu"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "ckpt")  # stdout is the result alone; the Trainer's logs go to stderr
    err = captured.err
    plan = re.search(r"plan: fine-tune on cpu .*: 36 training examples x 2 epoch\(s\) = 10 steps of 8, "
                     r"4 validation examples per epoch; ([\d,]+) of ([\d,]+) parameters trained", err)
    assert plan, err[:2000]
    assert plan.group(1) == plan.group(2)  # every weight trains without --train-layers
    assert re.search(r"estimate: [\w ]+, likely [\w ]+ to [\w ]+ \([\d.]+ s per training step with its optimizer step \(timed "
                     r"[\d.]+ to [\d.]+ s\), [\d.]+ s per validation example, [\d.]+ s per scored example, measured on "
                     r"this device .*machine load [\d.]+ on \d+ cores", err), err
    assert err.index("plan:") < err.index("epoch 1:")  # before training starts


def test_a_long_cpu_job_asks_for_yes(tmp_path: Path, gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(estimate, "CPU_LIMIT_S", 0.0)  # any job counts as long
    train = write_rows(tmp_path / "train.csv", separable(24, seed=1))
    argv = ["finetune", "--model", str(gpt2_dir), "--output", str(tmp_path / "ckpt"), "--data", str(train),
            "--epochs", "1", "--max-length", "64", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(r"error: this fine-tune would take about .* on the CPU; pass --yes", err)
    assert not (tmp_path / "ckpt" / "model.safetensors").exists()
    assert main([*argv, "--overwrite", "--yes"]) == 0


def test_estimate_report_text_and_guard() -> None:
    plan = estimate.Plan(device="cpu (x86_64, 2 threads)", n_train=22500, n_val=2500, epochs=3, batch_size=8,
                         trainable=124_000_000, total=124_000_000, n_score=50000)
    assert plan.steps == 3 * 2813
    costs = estimate.Costs(estimate.Timing(9.0, 9.0, 9.0), estimate.Timing(0.1, 0.1, 0.1), estimate.Timing(0.3, 0.3, 0.3))
    with pytest.raises(UserError, match=r"about \d+ h \d+ min on the CPU; pass yes to run it anyway, or make it smaller \(limit N, epochs 1"):
        estimate.report(plan, costs, yes=False)
    assert estimate.report(plan, costs, yes=True) == pytest.approx(3 * 2813 * 9.0 + 3 * 2500 * (0.1 + 0.3) + 50000 * 0.3)  # validation: eval_loss + scoring
    gpu = estimate.Plan(**{**plan.__dict__, "device": "cuda (NVIDIA H200)"})
    assert estimate.report(gpu, costs, yes=False) > estimate.CPU_LIMIT_S  # no guard off the CPU


def test_quickstart_runs_compare_on_the_bundled_data(tmp_path: Path, gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The quickstart's own command line, with a tiny model in SmolLM2's place and smaller sizes."""
    argv = list(commands.QUICKSTART)
    for flag, value in (("--model", str(gpt2_dir)), ("--limit", "12"), ("--train-limit", "40"),
                        ("--max-length", "64")):
        argv[argv.index(flag) + 1] = value
    argv[argv.index("-T") + 1] = "max_tokens=64"
    monkeypatch.setattr(commands, "QUICKSTART", [*argv, "--device", "cpu"])
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out / "report.html")
    assert "running: tenser compare --model" in captured.err and "--train-layers 2" in captured.err
    assert re.search(r"plan: compare on cpu .*: 36 training examples x 1 epoch\(s\).*52 examples scored outside "
                     r"training", captured.err.replace("\n", " "))
    assert f"tenser demo --pretrained {gpt2_dir} --finetuned {out / 'finetuned'}" in captured.err
    pretrained = json.loads(next((out / "runs").glob("pretrained__*/results.json")).read_text())
    assert pretrained["data"]["source"] == "embedded:imdb" and pretrained["metrics"]["n"] == 12
    log = json.loads((out / "finetuned" / "training_log.json").read_text())
    assert log["hyperparameters"]["train_layers"] == 2 and log["data"]["source"] == "embedded:imdb"
    html = (out / "report.html").read_text()
    assert "SmolLM2-135M-Instruct on IMDB" in html  # the quickstart's title
    # The task card names the data that was scored; prompt-tuning scores before and after with the same prompt.
    assert '<span class="mono">embedded:imdb</span> (split test) · scored as: zero-shot prompt</p>' in html
    assert log["objective"] == "prompt"
    # It ends with the --seeds command to run next: the same settings, three seeds, a folder of its own.
    assert captured.err.rstrip().splitlines()[-2].startswith("next: is the gain real, or a lucky seed?")
    nxt = _parsed_next(captured.err.rstrip().splitlines()[-1])
    assert (nxt.model, nxt.seeds, nxt.out, nxt.device) == (str(gpt2_dir), "0,1,2", f"{out}-seeds", "cpu")


def _parsed_next(line: str) -> argparse.Namespace:
    import shlex

    from harness.recipes.seed_runs import parse_seeds
    from tenser.parser import build_parser

    words = shlex.split(line)
    assert words[:2] == ["tenser", "compare"], line
    args = build_parser().parse_args(words[1:])
    assert parse_seeds(args.seeds) == (0, 1, 2)
    return args


def test_the_suggested_seeds_command_is_the_quickstart_with_three_seeds() -> None:
    from tenser.parser import build_parser

    quick = vars(build_parser().parse_args(["compare", *commands.QUICKSTART, "--out", "runs/quickstart"]))
    nxt = vars(_parsed_next(commands.seeds_command("runs/quickstart/")))
    assert {k for k in quick if quick[k] != nxt[k]} == {"seeds", "out", "title"}
    assert (nxt["seeds"], nxt["out"], nxt["title"]) == ("0,1,2", "runs/quickstart-seeds", None)


def test_a_missing_browser_skips_with_the_fix_except_where_ci_requires_it(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    from tests.browser import REQUIRE_BROWSER, find_chromium

    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        find_chromium(str(tmp_path / "no-such-browser"))
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_BROWSER} is set"):
        find_chromium(str(tmp_path / "no-such-browser"))
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_chromium(str(tmp_path / "no-such-browser")) == str(fake)  # found on PATH
