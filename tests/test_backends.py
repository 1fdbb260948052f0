"""The backend seam (harness.backends.base): the `fake:` backend through `tenser run`, the report and the
gate; a toy backend written here in a few lines and registered under its own prefix; the
registry's loud errors; commands that need a Hugging Face model refuse the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.backends import registry
from harness.backends.base import BatchPlan, fixed_plan
from harness.backends.fake import WordTokenizer, load_fake
from harness.backends.registry import register_backend
from harness.errors import UserError
from harness.scoring.inference import make_encoder, predict
from tasks import Task, get_task
from tenser.cli import main
from tests.conftest import make_reviews, write_rows


# --- a toy backend: says "positive" when a review holds more "good" than "bad" (the whole backend) ---
class ToyScorer:
    method, label_tokens = "toy: counts 'good' against 'bad'", None

    def __init__(self, tokenizer: WordTokenizer, labels: tuple[str, ...]) -> None:
        self.tokenizer, self.labels = tokenizer, labels

    def prepare(self, ordered: Any, status: Any) -> None:
        pass

    def probs(self, batch: Any) -> np.ndarray:
        words = [self.tokenizer.decode(e.ids).lower() for e in batch]
        lean = np.array([w.count("good") - w.count("bad") for w in words], dtype=np.float64)
        return np.stack([1 / (1 + np.exp(lean)), 1 / (1 + np.exp(-lean))], axis=1)

    def account(self, n: int) -> dict[str, Any]:
        return {}


class ToyModel:
    tokenizer, context_length, precision, device_type, compiled = WordTokenizer(), 512, "float64", "cpu", False

    def __init__(self, name: str) -> None:
        self.identity = name
        self.info = {"name_or_path": name, "backend": "toy", "context_length": 512}

    def scorer(self, task: Task, *, shift: Any = None, n_inputs: int = 0) -> ToyScorer:
        return ToyScorer(self.tokenizer, task.labels)

    def plan(self, batch_size: int | str) -> BatchPlan:
        return BatchPlan(8, None) if batch_size == "auto" else fixed_plan(batch_size)

    def runtime(self, batch_size: int | str) -> dict[str, Any]:
        return {"device": "cpu", "dtype": self.precision, "batch_size": batch_size, "versions": {}}


register_backend("toy", lambda name, kind, **options: ToyModel(name))
# --- end of the toy backend ---


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [{"text": f"A {'good' if i % 2 else 'bad'} film, {'good' if i % 3 else 'bad'} acting.", "label": i % 2}
            for i in range(20)]
    return write_rows(tmp_path / "reviews.csv", rows)


def _run(model: str, data: Path, out: Path, *more: str) -> Path:
    assert main(["run", "--model", model, "--task", "imdb_zeroshot", "--data", str(data), "--out", str(out),
                 "--no-cache", *more]) == 0
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_a_toy_backend_runs_through_run_report_and_gate(tmp_path: Path, data: Path) -> None:
    before = _run("fake:uniform", data, tmp_path / "before")
    after = _run("toy:counter", data, tmp_path / "after")
    results = json.loads((after / "results.json").read_text())
    assert results["model"]["backend"] == "toy" and results["scoring"]["method"].startswith("toy:")
    assert results["metrics"]["accuracy"] > 0.6  # "good" decides the label for most of the 20
    assert main(["report", str(before), str(after), "--out", str(tmp_path / "report.html")]) == 0
    assert "toy:counter" in (tmp_path / "report.html").read_text()
    code = main(["gate", str(before), str(after), "--out", str(tmp_path / "gate.json"), "--margin", "0.5"])
    assert code == 0 and json.loads((tmp_path / "gate.json").read_text())["passed"] is True


def test_fake_uniform_writes_a_normal_run_folder(tmp_path: Path, data: Path) -> None:
    run_dir = _run("fake:uniform", data, tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert results["model"]["name_or_path"] == "fake:uniform" and results["model"]["identity"] == "fake:uniform"
    assert results["metrics"]["n"] == 20 and all(p["probs"] == {"negative": 0.5, "positive": 0.5} for p in preds)
    assert "torch" not in results["runtime"]["versions"]


def test_fake_seeded_scores_depend_on_the_text_alone() -> None:
    task = get_task("imdb_zeroshot")
    model = load_fake("fake:seeded-7")
    texts = [r["text"] for r in make_reviews(12, seed=3)]
    encoded = make_encoder(task, model).encode_many(texts)
    one = predict(task, model, encoded, batch_size=1, progress=False).probs
    many = predict(task, model, encoded[::-1], batch_size=5, progress=False).probs[::-1]
    again = predict(task, load_fake("fake:seeded-7"), encoded, progress=False).probs
    other = predict(task, load_fake("fake:seeded-8"), encoded, progress=False).probs
    assert np.array_equal(one, many) and np.array_equal(one, again) and not np.allclose(one, other)
    assert len(set(one.argmax(1))) == 2  # not a constant answer


def test_the_fake_tokenizer_cuts_long_reviews_inside_the_review() -> None:
    task = get_task("imdb_zeroshot", max_tokens=12)
    encoder = make_encoder(task, load_fake("fake:uniform"))
    short, long = encoder.encode_many(["fine", " ".join(f"w{i}" for i in range(40))])
    assert not short.truncated and long.truncated and long.n_tokens == 12
    text = encoder.decode(long)
    assert text.startswith("Review:") and text.endswith("\nSentiment:") and "w39" in text and "w30 " not in text


def test_the_registry_speaks_up() -> None:
    with pytest.raises(UserError, match=r"no backend has the prefix fak:\. Did you mean fake:\?"):
        registry.load_backend("fak:uniform", "causal_lm")
    with pytest.raises(UserError, match="unknown fake model.*fake:seeded-7"):
        registry.load_backend("fake:random", "causal_lm")
    with pytest.raises(ValueError, match="already registered"):
        register_backend("fake", load_fake)
    assert registry.prefix_of("gpt2") == registry.prefix_of("C:\\models\\gpt2") == registry.HF
    assert registry.prefix_of("embedded:smollm2") == "embedded" and registry.is_hf("embedded:smollm2")


def test_commands_that_need_a_hugging_face_model_refuse_fake(tmp_path: Path, data: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "--model", "fake:uniform", "--data", str(data), "--output", str(tmp_path / "ft")]) == 2
    assert "fine-tuning needs a Hugging Face model" in capsys.readouterr().err
    assert main(["bench", "--model", "fake:uniform", "--data", str(data), "--out", str(tmp_path / "b")]) == 2
    assert "tenser bench needs a Hugging Face model" in capsys.readouterr().err
