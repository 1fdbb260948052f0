"""`benchmarks/gpu.sh all` at tiny sizes on the CPU, so the script that a lent GPU runs once cannot
rot; its deadline and kill paths; and the scoring and fine-tuning path on what the GPU image lacks
(datasets, evaluate, gguf: absent there; gradio: never imported by scoring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_reviews, write_rows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_run  # noqa: E402
import gpu_steps  # noqa: E402

TINY = {"DEVICE": "cpu", "LIMIT": "24",  # over precision.SAMPLE, so mixed precision runs
        "BASE_LIMIT": "8", "TRAIN_EXAMPLES": "8", "TRAIN_LIMIT": "40",
        "NOISE_EXAMPLES": "4", "SHOTS_LIMIT": "8", "GPT2_LAYERS": "2", "GPT2_WIDTH": "32", "GPT2_HEADS": "2",
        "GPT2_POSITIONS": "512",  # 5 demonstrations need room in half the context
        "MIN_SCALE": "0", "DEADLINE_S": "600", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory, gpt2_tokenizer):
    """What benchmarks/gpu_prepare.sh carries, tiny: a GPT-2-style tokenizer and two IMDB-like parquet files."""
    a = tmp_path_factory.mktemp("gpu-assets")
    gpt2_tokenizer.save_pretrained(a / "models" / "gpt2-tokenizer")
    (a / "imdb").mkdir()
    write_rows(a / "imdb" / "test.parquet", make_reviews(40, seed=1))
    write_rows(a / "imdb" / "train.parquet", make_reviews(60, seed=2))
    return a


def gpu_sh(tmp_path: Path, assets: Path, *steps: str, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), *steps], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **TINY, "ASSETS": str(assets), "OUT": str(out),
                                            "WORK": str(tmp_path / "work"), "PYTHON": sys.executable, **env})
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    return done, results


def test_all_runs_every_step_at_tiny_sizes_and_writes_its_figures(tmp_path, assets):
    done, results = gpu_sh(tmp_path, assets, "all", SKIP="compile")  # --compile: tests/test_bench.py
    assert done.returncode == 0, done.stderr + (tmp_path / "out" / "log.txt").read_text()[-3000:]
    steps = results["steps"]
    assert list(steps) == [s.name for s in gpu_steps.STEPS]
    flag = gpu_steps.has_flag("run", "--no-prefix-cache")
    for name, entry in steps.items():
        expected = ("skipped: named in SKIP" if name == "compile" else
                    "ok" if name != "fewshot_no_prefix_cache" or flag else "skipped: `tenser run` has no")
        assert entry["status"].startswith(expected), (name, entry["status"])
    assert steps["build"]["params"]["layers"] == 2 and steps["build"]["params"]["non_embedding"] > 0
    scoring = steps["scoring"]["scoring"]
    assert [r["task"] for r in scoring] == ["imdb_zeroshot", "imdb_classifier"]
    assert all(r["n"] == 24 and r["ways"]["tenser"]["model_tflops"] > 0 for r in scoring)
    assert all(r["agreement"]["ok"] and set(r["ways"]) == {"tenser", "seed_style", "one_at_a_time"}
               for r in steps["baselines"]["scoring"])
    assert set(steps["train_throughput"]["finetuning"]["ways"]) == {"tenser", "seed_style"}
    for name, dtype in (("dtype_bf16", "bfloat16"), ("dtype_fp32", "float32"), ("dtype_tf32", "float32"),
                        ("dtype_mixed", "mixed")):
        assert steps[name]["scoring"][0]["runtime"]["dtype"] == dtype
    assert steps["dtype_mixed"]["scoring"][0]["runtime"]["mixed_precision"]["scored"] == 24
    tuned = steps["finetune"]
    assert tuned["epochs_run"] == 3 and len(tuned["val_curve"]) == 3 and tuned["label"] == "measured"
    assert [r["n"] for r in steps["noise"]["noise"]["runs"]] == [4, 4]
    assert steps["fewshot"]["run"]["shots"] == 5 and steps["fewshot"]["run"]["n"] == 8
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "results.json", "summary.md"]  # the tool brings 8
    summary = (out / "summary.md").read_text()
    assert "Hardware: " in summary and "torch " in summary
    assert all(f"## {name}: " in summary for name in steps)
    assert "python -m tenser bench --model" in summary  # the exact commands, for BENCHMARKS.md


def test_steps_that_cannot_finish_before_the_deadline_are_skipped_and_said_so(tmp_path, assets):
    started = time.monotonic()
    done, results = gpu_sh(tmp_path, assets, "scoring", "finetune", DEADLINE_S="1", MIN_SCALE="1")
    assert done.returncode == 0, done.stderr
    assert list(results["steps"]) == ["build", "scoring", "baselines", "train_throughput", "finetune"]
    assert all(e["status"].startswith("skipped: deadline (needs about") for e in results["steps"].values())
    assert results["hardware"]["date"] and results["hardware"]["torch"]
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("fork", [True, False])
def test_a_step_past_its_time_is_killed_with_its_children(tmp_path, fork):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    started = time.monotonic()
    with open(tmp_path / "log.txt", "w") as log:
        assert gpu_run.execute([sys.executable, "-c", code], 2.0, log, fork) is None
    assert time.monotonic() - started < 20
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{grandchild}").exists() or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]


def test_unknown_step_names_the_choices():
    with pytest.raises(SystemExit, match="unknown step nope; give all, scoring, variants, finetune"):
        gpu_run.chosen(["nope"])


BLOCKED = """
import json, sys
for name in ("datasets", "evaluate", "gguf"):  # not on the GPU image: any import of them fails
    sys.modules[name] = None
from tenser.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "gradio": any(m.split(".")[0] == "gradio" for m in sys.modules)}))
"""


def test_scoring_and_finetuning_on_local_parquet_need_no_datasets_and_never_import_gradio(tmp_path, gpt2_dir,
                                                                                           gpt2_clf_dir):
    test = write_rows(tmp_path / "test.parquet", make_reviews(12, seed=3))
    train = write_rows(tmp_path / "train.parquet", make_reviews(24, seed=4))
    common = ["--device", "cpu", "--data", str(test)]
    argvs = [["run", "--model", str(gpt2_dir), "--limit", "6", "--out", str(tmp_path / "runs"), *common],
             ["bench", "--model", str(gpt2_dir), "--classifier", str(gpt2_clf_dir), "--limit", "6",
              "--out", str(tmp_path / "bench"), *common],
             ["finetune", "--model", str(gpt2_dir), "--output", str(tmp_path / "ft"), "--data", str(train),
              "--epochs", "1", "--max-length", "64", "--device", "cpu"]]
    done = subprocess.run([sys.executable, "-c", BLOCKED, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"codes": [0, 0, 0], "gradio": False}
