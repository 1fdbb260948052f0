"""The noise floor `tenser compare` measures by itself (issue 14, item 5): OUT/noise.json from each
model re-scoring a seeded, stratified subset in float32 at batch size 1, read by the report; a
forced disagreement gives a nonzero floor and "within noise"; --noise-examples 0 turns it off; a
resumed compare reuses noise.json."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tenser
from harness.backends import registry
from harness.backends.fake import FakeModel, FakeScorer
from harness.backends.registry import register_backend
from harness.errors import UserError
from harness.recipes import noise_check
from tests.conftest import write_rows
from tests.test_finetune import separable
from tests.test_reliability import _one_thread  # noqa: F401  (one torch thread)


@pytest.fixture(scope="module")
def test_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("noise_data") / "test.csv", separable(24, seed=41))


@pytest.fixture(scope="module")
def same_lm(tmp_path_factory: pytest.TempPathFactory, gpt2_dir: Path) -> Path:
    """gpt2_dir again, as a prompt-tuned checkpoint: the change between the two runs is 0."""
    folder = tmp_path_factory.mktemp("same") / "lm"
    shutil.copytree(gpt2_dir, folder)
    (folder / "training_log.json").write_text(json.dumps({"epochs": [], "train_loss": []}))
    return folder


def _compare(out: Path, model: Path, finetuned: Path, data: Path, **options: Any) -> tenser.Comparison:
    return tenser.compare(str(model), "imdb", out=out, finetuned=str(finetuned), data=str(data), device="cpu",
                          **options)


def _paired(out: Path) -> str:
    text = re.sub(r"data:image/[^\"')\s]+", "", (out / "report.html").read_text())
    return text[text.find('id="paired"'):][:20000]


def test_compare_writes_noise_json_and_the_report_shows_the_floor(tmp_path: Path, gpt2_dir: Path, gpt2_clf_dir: Path,
                                                                  test_csv: Path) -> None:
    out = tmp_path / "cmp"
    _compare(out, gpt2_dir, gpt2_clf_dir, test_csv, noise_examples=8, batch_size=4)
    body = json.loads((out / "noise.json").read_text())
    assert body["n_requested"] == 8 and [e["run"] for e in body["runs"]] == ["pretrained__imdb_zeroshot",
                                                                             "finetuned__imdb_classifier"]
    for entry in body["runs"]:
        assert entry["n"] == 8 and entry["flips"] == 0 and entry["share"] == 0.0 and len(set(entry["ids"])) == 8
        assert entry["setting"] == "float32, batch 4" and entry["is_reference"] is False
        assert entry["max_prob_diff"] < 1e-4  # fp32 batches of 4 vs one at a time on a CPU
    labels = [json.loads(line)["label"] for line in (out / "runs" / "pretrained__imdb_zeroshot" / "predictions.jsonl")
              .read_text().splitlines() if json.loads(line)["id"] in body["runs"][0]["ids"]]
    assert sorted(labels) == ["negative"] * 4 + ["positive"] * 4  # stratified like the 24 (half each)
    assert body["runs"][0]["ids"] == body["runs"][1]["ids"]  # the same subset for both models
    saved = json.loads((out / "comparison.json").read_text())["comparisons"][0]["noise"]
    assert saved["floor"] == 0.0 and saved["sources"][0]["source"] == "compare" and saved["sources"][0]["flips"] == 0
    page = _paired(out)
    assert "0.0 points · " in page and "measured by this compare" in page and "not measured" not in page


def test_reference_settings_say_floor_zero_by_construction(tmp_path: Path, gpt2_dir: Path, same_lm: Path,
                                                           test_csv: Path) -> None:
    out = tmp_path / "cmp"
    _compare(out, gpt2_dir, same_lm, test_csv, noise_examples=6)  # CPU default: float32, batch 1
    body = json.loads((out / "noise.json").read_text())
    assert all(e["is_reference"] and e["flips"] == 0 and e["n"] == 6 and "by construction" in e["note"]
               for e in body["runs"])
    page = _paired(out)
    assert "0 by construction" in page and "0.0 points · within noise" in page


class FlakyScorer(FakeScorer):
    """`fake:seeded-7`, except that in batches of more than one a review holding FLAKY gets its scores
    reversed: the batch-size dependence the noise floor is there to catch."""

    def probs(self, batch: Any) -> np.ndarray:
        probs = super().probs(batch)
        for row, e in enumerate(batch):
            if len(batch) > 1 and FLAKY in e.ids:
                probs[row] = probs[row][::-1]
        return probs


class FlakyModel(FakeModel):
    def scorer(self, task: Any, **kw: Any) -> FlakyScorer:
        return FlakyScorer(len(task.labels), 7, "flaky: fake:seeded-7 that depends on the batch size")


FLAKY = FakeModel("fake:uniform", None).tokenizer(" FLAKY")["input_ids"][0]  # the token id of " FLAKY"
if "flaky" not in registry._BACKENDS:
    register_backend("flaky", lambda name, kind, **options: FlakyModel(name, 7))


def test_a_forced_disagreement_gives_a_floor_and_within_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"text": f"review {i} {'FLAKY ' if i == 5 else ''}of a film", "label": i % 2} for i in range(24)]
    data = write_rows(tmp_path / "test.csv", rows)
    out = tmp_path / "cmp"
    # the FLAKY review flips at batch size 4 against the reference's batch size 1, in both runs
    tenser.compare("flaky:a", "imdb", out=out, finetuned="flaky:b", data=str(data), noise_examples=24, batch_size=4)
    body = json.loads((out / "noise.json").read_text())
    assert [e["flips"] for e in body["runs"]] == [1, 1] and body["floor"] == 2 / 24
    assert all(e["flipped_ids"] == [body["runs"][0]["flipped_ids"][0]] and e["max_prob_diff"] > 0 for e in body["runs"])
    saved = json.loads((out / "comparison.json").read_text())["comparisons"][0]
    assert abs(saved["difference"]["mean"]) < 2 / 24 and saved["noise"]["floor"] == 2 / 24
    assert saved["noise"]["within_noise"]
    page = _paired(out)
    assert "8.3 points · within noise" in page and "1 of 24 flipped" in page

    monkeypatch.setattr(noise_check, "reference_scores", _not_called)  # a resumed compare reuses noise.json
    tenser.compare("flaky:a", "imdb", out=out, finetuned="flaky:b", data=str(data), noise_examples=24, batch_size=4)
    assert json.loads((out / "noise.json").read_text()) == body


def _not_called(*args: Any, **kwargs: Any) -> np.ndarray:
    raise AssertionError("noise.json should have been reused")


def test_noise_examples_zero_turns_it_off(tmp_path: Path, gpt2_dir: Path, same_lm: Path, test_csv: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise_check, "reference_scores", _not_called)
    out = tmp_path / "cmp"
    _compare(out, gpt2_dir, same_lm, test_csv, noise_examples=0)
    assert not (out / "noise.json").exists()
    assert "not measured" in _paired(out)
    assert json.loads((out / "comparison.json").read_text())["comparisons"][0]["noise"]["floor"] is None
    with pytest.raises(UserError, match="^noise_examples -1"):
        _compare(out, gpt2_dir, same_lm, test_csv, noise_examples=-1)
