"""The `tenser` command line: `tasks`, `run` end to end, and every user error as one line
with exit code 2 and no traceback (in-process through `main`, and as a real subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.metrics.classification import compute_metrics
from harness.recipes.evaluation import model_slug
from harness.store.runs import load_run
from tasks import list_tasks
from tenser.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_user_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err  # one line, and the last thing said
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


# --- tenser tasks ---------------------------------------------------------------------------------

def test_tasks_lists_the_builtins(capsys):
    code, out, _ = _run(["tasks"], capsys)
    assert code == 0
    lines = out.splitlines()
    blank = lines.index("")
    assert blank == len(list_tasks()) and lines[blank + 1].startswith("families")
    assert lines[blank + 2].split() == ["imdb", "zeroshot", "imdb_zeroshot,", "classifier", "imdb_classifier"]
    by_name = {line.split()[0]: line for line in lines[:blank]}
    assert by_name["imdb_zeroshot"].split()[1:3] == ["zeroshot", "stanfordnlp/imdb"]
    assert by_name["imdb_classifier"].split()[1:3] == ["classifier", "stanfordnlp/imdb"]


def test_tasks_with_include(tmp_path, capsys):
    path = tmp_path / "extra.toml"
    path.write_text('name = "extra_task"\nkind = "classifier"\nlabels = ["a", "b"]\ndataset = "me/extra"\n'
                    'description = "my extra task"\n')
    code, out, _ = _run(["tasks", "--include", str(path)], capsys)
    assert code == 0 and "extra_task" in out and "my extra task" in out
    family = tmp_path / "family.toml"
    family.write_text('[[family]]\nname = "rt_zeroshot"\nlabels = ["neg", "pos"]\n'
                      "prompt = 'Review: {text} Sentiment:'\nlabel_words = [\" neg\", \" pos\"]\n")
    code, out, _ = _run(["tasks", "--include", str(family)], capsys)
    families = out.split("families")[1]
    assert code == 0 and "zeroshot rt_zeroshot, classifier rt_classifier" in families
    assert "rt_classifier            classifier  (--data)" in out  # no dataset: every command passes --data
    code, _, err = _run(["tasks", "--include", str(tmp_path / "missing.toml")], capsys)
    _assert_user_error(code, err, "tenser tasks: error:", "no such file")


# --- tenser run end to end -------------------------------------------------------------------------

def test_run_end_to_end_writes_a_valid_run_folder(tmp_path, gpt2_dir, data_csv, capsys):
    out_dir = tmp_path / "runs"
    code, out, err = _run(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(out_dir),
                           "--device", "cpu", "--batch-size", "4", "--seed", "3"], capsys)
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    assert run_dir == out_dir / "imdb_zeroshot__gpt2" and run_dir.is_dir()
    results, predictions = load_run(run_dir)
    assert results["schema_version"] == 1 and results["task"]["name"] == "imdb_zeroshot"
    assert results["data"]["source"] == str(data_csv.resolve()) and results["sample"]["strategy"] == "all"
    assert results["runtime"]["batch_size"] == 4
    # A review longer than the 128-token context is not an error: it is cut and recorded.
    assert results["metrics"]["n_truncated"] == sum(p["truncated"] for p in predictions) > 0
    assert max(p["n_tokens"] for p in predictions) == 128
    assert len(predictions) == results["metrics"]["n"] == 12
    labels = results["task"]["labels"]
    probs = np.array([[p["probs"][name] for name in labels] for p in predictions])
    gold = np.array([labels.index(p["label"]) for p in predictions])
    again = compute_metrics(gold, probs, labels)
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "loss", "confusion_matrix", "per_class"):
        assert again[key] == results["metrics"][key]
    summary = [line for line in err.splitlines() if line.startswith("imdb_zeroshot | ")]
    assert len(summary) == 1 and f"n=12 accuracy={results['metrics']['accuracy']:.4f}" in summary[0]


def test_run_with_overrides_limit_note_and_two_models(tmp_path, gpt2_dir, llama_dir, data_csv, capsys):
    out_dir = tmp_path / "runs"
    code, out, err = _run(["run", "--model", str(gpt2_dir), "--model", str(llama_dir), "--data", str(data_csv),
                           "--out", str(out_dir), "--limit", "50", "-T", "max_tokens=32", "-T",
                           "truncation_side=right"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "note: --limit 50 is larger than" in err and "using all of them" in err
    suffix = ".max_tokens-32+truncation_side-right"  # -T overrides name the folders: no clash with a plain run
    assert lines[-2:] == [str(out_dir / f"imdb_zeroshot{suffix}__gpt2"), str(out_dir / f"imdb_zeroshot{suffix}__llama")]
    for run_dir in lines[-2:]:
        results, predictions = load_run(run_dir)
        assert len(predictions) == 12 and results["sample"]["limit"] == 50
        assert results["task"]["max_tokens"] == 32 and results["task"]["truncation_side"] == "right"
        assert max(p["n_tokens"] for p in predictions) == 32 and results["scoring"]["max_tokens"] == 32


def test_run_limit_samples_stratified(tmp_path, gpt2_clf_dir, data_csv, capsys):
    code, out, err = _run(["run", "--task", "imdb_classifier", "--model", str(gpt2_clf_dir), "--data", str(data_csv),
                           "--out", str(tmp_path), "--limit", "4", "--seed", "5"], capsys)
    assert code == 0, err
    results, predictions = load_run(out.strip().splitlines()[-1])
    assert results["sample"] == {"limit": 4, "seed": 5, "n": 4, "strategy": "stratified"}
    assert sorted(p["label"] for p in predictions) == ["negative", "negative", "positive", "positive"]


def test_run_refuses_a_non_empty_output_unless_overwrite(tmp_path, gpt2_dir, data_csv, capsys):
    argv = ["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path), "--limit", "2"]
    assert _run(argv, capsys)[0] == 0
    code, _, err = _run(argv, capsys)
    _assert_user_error(code, err, "is not empty", "--overwrite")
    code, out, err = _run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert out.strip().endswith("imdb_zeroshot__gpt2")


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX")
def test_a_folder_another_process_is_writing_is_refused(tmp_path, gpt2_dir, data_csv, capsys):
    import fcntl

    run_dir = tmp_path / "imdb_zeroshot__gpt2"
    run_dir.mkdir()
    argv = ["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path), "--limit", "2"]
    with open(run_dir / ".tenser.lock", "a") as other:  # as a second tenser process would hold it
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for extra in ([], ["--overwrite"]):
            code, _, err = _run(argv + extra, capsys)
            _assert_user_error(code, err, f"output folder {run_dir} is in use by another tenser process")
        assert list(run_dir.iterdir()) == [run_dir / ".tenser.lock"]  # nothing written, nothing removed
    code, out, err = _run(argv, capsys)  # released: the lock file alone does not make the folder "not empty"
    assert code == 0, err
    assert (run_dir / "results.json").is_file() and not (run_dir / ".tenser.lock").exists()
    code, _, err = _run(argv, capsys)
    _assert_user_error(code, err, "is not empty")


def test_run_with_an_included_task(tmp_path, gpt2_dir, synth_reviews, write_data, capsys):
    inc = tmp_path / "mine.json"
    inc.write_text(json.dumps({"name": "stars", "kind": "zeroshot", "labels": ["bad", "good"], "dataset": "me/stars",
                               "prompt": "Stars: {text} =>", "label_words": [" bad", " good"],
                               "text_column": "body", "label_column": "verdict"}))
    rows = [{"body": r["text"], "verdict": ("bad", "good")[r["label"]]} for r in synth_reviews(6)]
    code, out, err = _run(["run", "--include", str(inc), "--task", "stars", "--model", str(gpt2_dir),
                           "--data", str(write_data(rows, "stars.parquet")), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    results, predictions = load_run(out.strip().splitlines()[-1])
    assert results["task"]["prompt"] == "Stars: {text} =>" and {p["label"] for p in predictions} == {"bad", "good"}


def test_settings_and_models_keep_run_folders_apart(tmp_path, gpt2_dir, data_csv, capsys):
    import shutil

    for name in ("a", "b"):  # two models with the same folder name
        shutil.copytree(gpt2_dir, tmp_path / name / "tiny")
    out_dir = tmp_path / "runs"
    code, out, err = _run(["run", "--model", str(tmp_path / "a" / "tiny"), "--model", str(tmp_path / "b" / "tiny"),
                           "--data", str(data_csv), "--out", str(out_dir), "--batch-size", "3"], capsys)
    assert code == 0, err
    assert out.split() == [str(out_dir / "imdb_zeroshot__a-tiny"), str(out_dir / "imdb_zeroshot__b-tiny")]
    code, out, err = _run(["run", "--model", str(tmp_path / "a" / "tiny"), "--data", str(data_csv), "--out",
                           str(out_dir), "-T", "calibration=contextual", "-T", "prompt=Text: {text}\nVerdict:"],
                          capsys)
    assert code == 0, err
    (folder,) = out.split()
    assert Path(folder).name.startswith("imdb_zeroshot.T") and Path(folder).name.endswith("__tiny")
    results, _ = load_run(out_dir / "imdb_zeroshot__a-tiny")
    assert results["runtime"]["batch_size"] == 3
    assert results["runtime"]["batch_plan"] == {"max_examples": 3, "max_tokens": None}  # what was used


def test_same_named_models_keep_their_own_results_with_overwrite(tmp_path, gpt2_dir, llama_dir, data_csv, capsys):
    """Issue 16, item 3: --model a/tiny --model b/tiny --overwrite once replaced the first model's results."""
    import shutil

    models = [str(shutil.copytree(d, tmp_path / name / "tiny")) for d, name in ((gpt2_dir, "a"), (llama_dir, "b"))]
    argv = ["run", "--model", models[0], "--model", models[1], "--data", str(data_csv), "--out", str(tmp_path / "o")]
    for extra in ([], ["--overwrite"]):
        code, out, err = _run([*argv, *extra], capsys)
        assert code == 0, err
        folders = out.split()
        assert folders == [str(tmp_path / "o" / "imdb_zeroshot__a-tiny"), str(tmp_path / "o" / "imdb_zeroshot__b-tiny")]
        scored = [load_run(f) for f in folders]
        assert [r["model"]["name_or_path"] for r, _ in scored] == models
        assert [p["probs"] for p in scored[0][1]] != [p["probs"] for p in scored[1][1]]  # each model's own scores


def test_model_slug():
    assert model_slug("gpt2") == "gpt2"
    assert model_slug("openai-community/gpt2-medium") == "gpt2-medium"
    assert model_slug("/some/path/my model/") == "my-model"
    assert model_slug("weird@@name") == "weird-name"


# --- user errors: one line, exit code 2, no traceback --------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD_FILES = {
    "empty.csv": b"",
    "columns.csv": b"review,label\ngood film,1\n",
    "labels.csv": b"text,label\ngood film,1\nbad film,3\n",
    "names.jsonl": b'{"text": "good", "label": "great"}\n',
    "blank.csv": b"text,label\ngood film,1\n,0\n",
    "latin1.csv": b"text,label\nun film tr\xe8s bien,1\nbad,0\n",
}


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("unknown_task", ["Unknown task 'imdb-zeroshot'", "Did you mean 'imdb_zeroshot'?", "Known:"]),
        ("missing_model", ["--model", "no such folder"]),
        ("not_a_model", ["folder has no config.json"]),
        ("hub_model_offline", ["--model tenser-tests/no-such-model", "cannot load this Hub model", "HF_HUB_OFFLINE",
                               "local model folder"]),
        ("hub_model_unreachable", ["--model tenser-tests/no-such-model", "Hub is unreachable", "local model folder"]),
        ("hub_data_offline", ["'tenser-tests/no-such-dataset'", "--data", "HF_HUB_OFFLINE"]),
        ("hub_data_unreachable", ["cannot reach the Hugging Face Hub", "'stanfordnlp/imdb'", "--data"]),
        ("missing_data", ["--data", "nope.csv: no such file or folder"]),
        ("empty.csv", ["empty.csv", "empty"]),
        ("columns.csv", ["no column 'text'", "-T text_column=NAME"]),
        ("labels.csv", ["labels outside the task's labels: 3", "allowed: 0 or 'negative', 1 or 'positive'"]),
        ("names.jsonl", ["labels outside the task's labels: 'great'"]),
        ("blank.csv", ["1 example(s) have empty text", "test-00001"]),
        ("latin1.csv", ["not UTF-8", "iconv"]),
        ("classifier_on_lm", ["no trained classification head", "tenser finetune"]),
        ("bad_device", ["--device 'gpu'"]),
        ("bad_dtype", ["--dtype 'half'"]),
        ("bad_override", ["-T 'max_tokens'", "field=value"]),
        ("override_name", ["Unknown task field 'name'"]),
        ("override_type", ["-T max_tokens='many'", "whole number"]),
        ("bad_limit", ["--limit 0"]),
        ("bad_batch", ["--batch-size", "'0'"]),
        ("prompt_space", ["ends in whitespace"]),
    ],
)
def test_run_user_errors_are_one_line_with_exit_code_2(case, fragments, tmp_path, gpt2_dir, data_csv, monkeypatch,
                                                       capsys):
    model, data, extra = str(gpt2_dir), str(data_csv), []
    if case == "unknown_task":
        extra = ["--task", "imdb-zeroshot"]
    elif case == "missing_model":
        model = str(tmp_path / "nope")
    elif case == "not_a_model":
        (tmp_path / "folder").mkdir()
        (tmp_path / "folder" / "weights.bin").write_bytes(b"x")
        model = str(tmp_path / "folder")
    elif case.startswith("hub_model"):
        model = "tenser-tests/no-such-model"
    elif case == "hub_data_offline":
        data, extra = None, ["-T", "dataset=tenser-tests/no-such-dataset"]
    elif case == "hub_data_unreachable":
        data = None
    elif case == "missing_data":
        data = str(tmp_path / "nope.csv")
    elif case in BAD_FILES:
        data = str(tmp_path / case)
        Path(data).write_bytes(BAD_FILES[case])
    elif case == "classifier_on_lm":
        extra = ["--task", "imdb_classifier"]
    else:
        extra = {"bad_device": ["--device", "gpu"], "bad_dtype": ["--dtype", "half"], "bad_override": ["-T", "max_tokens"],
                 "override_name": ["-T", "name=other"], "override_type": ["-T", "max_tokens=many"],
                 "bad_limit": ["--limit", "0"], "bad_batch": ["--batch-size", "0"],
                 "prompt_space": ["-T", "prompt=Review: {text} "]}[case]
    if case.endswith("unreachable"):
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    argv = ["run", "--model", model, "--out", str(tmp_path / "runs"), *(["--data", data] if data else []), *extra]
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level mistakes
        code = exc.code
    elapsed = time.perf_counter() - t0
    line = _assert_user_error(code, capsys.readouterr().err, *fragments)
    assert line.startswith("tenser run: error:") or line.startswith("tenser run: error")
    assert elapsed < 20  # fails fast: no network waits, no retries


def test_user_error_in_a_real_subprocess(tmp_path, gpt2_dir):
    """`python -m tenser` end to end: a one-line error, exit code 2, no traceback, offline and fast."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "tenser", "run", "--model", str(gpt2_dir), "--out", str(tmp_path / "runs"),
           "-T", "dataset=tenser-tests/no-such-dataset"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err_lines == [err_lines[-1]] and err_lines[0].startswith("tenser run: error: cannot load dataset")
    assert "'tenser-tests/no-such-dataset'" in err_lines[0] and "--data" in err_lines[0]
    assert proc.stdout == ""
