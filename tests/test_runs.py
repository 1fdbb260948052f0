"""harness.store.runs + runner.score_run: run folders are complete, atomic, self-consistent, and
refuse to clobber; a crash keeps the predictions scored so far."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from harness.backends import registry
from harness.backends.base import Encoded
from harness.backends.fake import FakeModel, FakeScorer
from harness.backends.registry import register_backend
from harness.data.examples import load_examples
from harness.errors import UserError
from harness.metrics.classification import compute_metrics
from harness.scoring.runner import score_run
from harness.store import runs
from tasks import get_task
from tenser.cli import flag

PREDICTION_KEYS = {"id", "label", "pred", "probs", "loss", "n_tokens", "truncated", "preview", "text_sha"}
RESULTS_KEYS = {"schema_version", "tenser_version", "created", "task", "model", "scoring", "data", "sample", "metrics",
                "timings", "runtime"}


# --- folder handling ----------------------------------------------------------------------------

def test_prepare_run_dir_creates_and_refuses_non_empty(tmp_path):
    run_dir = tmp_path / "a" / "b"
    assert runs.prepare_run_dir(run_dir, overwrite=False) == run_dir and run_dir.is_dir()
    assert runs.prepare_run_dir(run_dir, overwrite=False) == run_dir  # empty: fine
    (run_dir / runs.RESULTS).write_text("{}")
    (run_dir / runs.PARTIAL).write_text("")
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"is not empty; pass overwrite or choose another out$") as err:
        runs.prepare_run_dir(run_dir, overwrite=False)
    assert err.value.param == "out"  # the Python name; the CLI prints the flag:
    assert err.value.speak(flag).endswith("is not empty; pass --overwrite or choose another --out")
    assert (run_dir / runs.RESULTS).exists()
    runs.prepare_run_dir(run_dir, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]  # only our files go


def test_prepare_run_dir_on_a_file_or_unusable_path(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        runs.prepare_run_dir(afile, overwrite=True)
    with pytest.raises(UserError, match="cannot create output folder"):
        runs.prepare_run_dir(afile / "sub", overwrite=False)


def test_write_atomic_leaves_only_the_target(tmp_path):
    target = tmp_path / "out.json"
    runs.write_atomic(target, "first")
    runs.write_atomic(target, "ünïcode second")
    assert target.read_text(encoding="utf-8") == "ünïcode second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_prediction_log_appends_batches(tmp_path):
    log = runs.PredictionLog(tmp_path)
    log.append([{"id": "a"}, {"id": "b"}])
    log.append(iter([{"id": "ç"}]))
    log.close()
    lines = (tmp_path / runs.PARTIAL).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a", "b", "ç"]


def test_save_and_load_run_round_trip(tmp_path):
    (tmp_path / runs.PARTIAL).write_text('{"id": "a"}\n')
    preds = [{"id": "a", "preview": "<br /> ü"}, {"id": "b", "preview": "x"}]
    runs.save_run(tmp_path, {"metrics": {"n": 2}}, preds)
    results, loaded = runs.load_run(str(tmp_path))
    assert results == {"schema_version": runs.SCHEMA_VERSION, "metrics": {"n": 2}}
    assert next(iter(json.loads((tmp_path / runs.RESULTS).read_text()))) == "schema_version"
    assert loaded == preds
    assert not (tmp_path / runs.PARTIAL).exists()
    assert "ü" in (tmp_path / runs.PREDICTIONS).read_text(encoding="utf-8")  # UTF-8, not \\u escapes


@pytest.mark.parametrize(
    ("results", "predictions", "match"),
    [
        (None, "", "results.json: missing; is .* a finished run folder"),
        ('{"schema_version": 1}', None, "predictions.jsonl: missing"),
        ("{not json", "", "results.json: malformed JSON"),
        ('{"schema_version": 99}', "", "not a Tenser results file of schema version 1"),
        ("[1, 2]", "", "not a Tenser results file"),
        ('{"schema_version": 1}', '{"id": 1}\n{oops\n', "predictions.jsonl: line 2 is not valid JSON"),
    ],
)
def test_load_run_errors_name_the_file(tmp_path, results, predictions, match):
    if results is not None:
        (tmp_path / runs.RESULTS).write_text(results)
    if predictions is not None:
        (tmp_path / runs.PREDICTIONS).write_text(predictions)
    with pytest.raises(UserError, match=match):
        runs.load_run(tmp_path)


# --- evaluate: a complete, consistent run folder -----------------------------------------------

def _recompute(results, predictions):
    labels = tuple(results["task"]["labels"])
    gold = np.array([labels.index(p["label"]) for p in predictions])
    probs = np.array([[p["probs"][name] for name in labels] for p in predictions])
    return compute_metrics(gold, probs, labels)


def _assert_close(a, b, path="metrics"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), path
    else:
        assert a == b, path


@pytest.mark.parametrize(("fixture", "task_name"), [("gpt2", "imdb_zeroshot"), ("gpt2_clf", "imdb_classifier"),
                                                     ("llama", "imdb_zeroshot")])
def test_evaluate_writes_a_complete_consistent_run_folder(fixture, task_name, request, tmp_path, write_data,
                                                          synth_reviews):
    loaded = request.getfixturevalue(fixture)
    task = get_task(task_name)
    rows = [{"id": f"r{i}", **r} for i, r in enumerate(synth_reviews(14, seed=2))]
    examples, info = load_examples(task, data=str(write_data(rows, "d.jsonl")), limit=10, seed=1)
    run_dir = runs.prepare_run_dir(tmp_path / "run", overwrite=False)
    returned = score_run(task, loaded, examples, info, run_dir, batch_size=3, load_s=0.5, progress=False)
    results, predictions = runs.load_run(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.PREDICTIONS, runs.RESULTS]
    assert set(results) == RESULTS_KEYS and results == {"schema_version": runs.SCHEMA_VERSION, **json.loads(json.dumps(returned))}

    # results.json sections
    assert results["task"] == json.loads(json.dumps(task.to_dict()))
    assert results["model"] == loaded.info
    assert results["data"] == info.to_dict()["data"] and results["sample"] == info.to_dict()["sample"]
    assert results["sample"] == {"limit": 10, "seed": 1, "n": 10, "strategy": "stratified"}
    assert results["runtime"]["device"] == "cpu" and results["runtime"]["dtype"] == "float32"
    assert results["runtime"]["batch_size"] == 3 and "torch" in results["runtime"]["versions"]
    timings = results["timings"]
    assert timings["load_s"] == 0.5 and timings["total_s"] >= timings["score_s"] > 0
    assert timings["examples_per_s"] > 0 and timings["tokens_per_s"] > 0
    scoring = results["scoring"]
    assert scoring["max_tokens"] == loaded.context_length
    if task.kind == "zeroshot":
        assert "zeroshot" in scoring["method"]
        assert scoring["label_tokens"] == {
            lab: loaded.tokenizer(w, add_special_tokens=False)["input_ids"] for lab, w in zip(task.labels, task.label_words)
        }
    else:
        assert "classifier" in scoring["method"] and "label_tokens" not in scoring

    # predictions.jsonl: one line per example, in example order
    assert len(predictions) == len(examples) == 10
    by_id = {r["id"]: r for r in rows}
    for example, p in zip(examples, predictions):
        assert set(p) == PREDICTION_KEYS
        assert p["id"] == example.id and p["label"] == task.labels[by_id[p["id"]]["label"]]
        assert list(p["probs"]) == list(task.labels) and sum(p["probs"].values()) == pytest.approx(1.0)
        assert p["pred"] == max(p["probs"], key=p["probs"].get)
        assert p["loss"] == pytest.approx(-math.log(p["probs"][p["label"]]))
        assert p["preview"] == example.text[: runs.PREVIEW_CHARS] and p["text_sha"] == runs.text_sha(example.text)
        assert 0 < p["n_tokens"] <= loaded.context_length
        assert p["truncated"] == (p["n_tokens"] == loaded.context_length and len(example.text) > 500)
    assert any(p["truncated"] for p in predictions), "the sample should hold a review longer than the context"

    # every metric is reproduced from predictions.jsonl alone
    metrics = dict(results["metrics"])
    assert metrics.pop("n_truncated") == sum(p["truncated"] for p in predictions)
    _assert_close(metrics, _recompute(results, predictions))


@dataclass(frozen=True)
class CrashingScorer(FakeScorer):
    """fake:seeded-7's scores until the `at`-th batch, where the user presses Ctrl-C."""

    at: int = 0
    calls: list[int] = field(default_factory=list)

    def probs(self, batch: list[Encoded]) -> np.ndarray:
        self.calls.append(len(batch))
        if len(self.calls) == self.at:
            raise KeyboardInterrupt
        return super().probs(batch)


@dataclass
class CrashingModel(FakeModel):
    """`crash:N`: a fake model whose scorer is interrupted at its N-th batch."""

    def scorer(self, task: Any, *, shift: np.ndarray | None = None, n_inputs: int = 0) -> CrashingScorer:
        fake = super().scorer(task)
        return CrashingScorer(fake.n_labels, fake.seed, fake.method, at=int(self.name.removeprefix("crash:")))


def test_a_crash_while_scoring_keeps_the_scored_batches(tmp_path, reviews, monkeypatch):
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))  # registered for this test only
    register_backend("crash", lambda name, kind, **options: CrashingModel(name, 7))
    loaded = registry.load_backend("crash:3", "causal_lm")
    task = get_task("imdb_zeroshot")
    examples, info = load_examples(task, data=str(_csv(tmp_path, reviews)))
    run_dir = runs.prepare_run_dir(tmp_path / "run", overwrite=False)
    with pytest.raises(KeyboardInterrupt):
        score_run(task, loaded, examples, info, run_dir, batch_size=4, progress=False)
    assert not (run_dir / runs.RESULTS).exists() and not (run_dir / runs.PREDICTIONS).exists()
    partial = [json.loads(x) for x in (run_dir / runs.PARTIAL).read_text(encoding="utf-8").splitlines()]
    assert len(partial) == 8 and {p["id"] for p in partial} <= {e.id for e in examples}
    with pytest.raises(UserError, match="not empty"):
        runs.prepare_run_dir(run_dir, overwrite=False)


def _csv(tmp_path, rows):
    import pandas as pd

    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
