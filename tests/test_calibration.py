"""Zero-shot done right: contextual and PMI calibration, prompt variants with selection on a
validation split, few-shot demonstrations; and their bad inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.backends.base import Encoded
from harness.backends.fake import FakeModel
from harness.data.examples import Example
from harness.errors import UserError
from harness.scoring import calibration, prompting
from harness.scoring.fewshot import choose, with_demonstrations
from harness.scoring.inference import make_encoder
from tasks import TaskError, get_task
from tenser.cli import main
from tests.conftest import make_reviews, write_rows


def test_apply_reweights_exactly_as_the_formula() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=50)
    p_cf = np.array([0.5, 0.3, 0.2])
    expected = probs / p_cf
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(calibration.apply(probs, np.log(p_cf)), expected, rtol=1e-12)


@dataclass
class KnownModel(FakeModel):
    """A fake model with known scores: each input gets the row of the first marker its text holds."""

    table: tuple[tuple[str, tuple[float, ...]], ...] = ()
    seen: list[list[int]] = field(default_factory=list)  # every input scored, as token ids

    def scorer(self, task: Any, *, shift: np.ndarray | None = None, n_inputs: int = 0) -> KnownScorer:
        return KnownScorer(self)


class KnownScorer:
    method, label_tokens = "known: a row per marker", None

    def __init__(self, model: KnownModel) -> None:
        self.model = model

    def prepare(self, ordered: Any, status: Any) -> None:
        pass

    def probs(self, batch: list[Encoded]) -> np.ndarray:
        self.model.seen.extend(e.ids for e in batch)
        texts = [self.model.tokenizer.decode(e.ids) for e in batch]
        return np.array([next(row for marker, row in self.model.table if marker in text) for text in texts])

    def account(self, n: int) -> dict[str, Any]:
        return {}


def test_contextual_correction_uses_the_same_prompt_path() -> None:
    """A model with a known content-free distribution; inputs are the task's own encodings."""
    task = get_task("imdb_zeroshot", calibration="contextual")
    known = KnownModel("known:contextual", None, table=(("N/A", (0.9, 0.1)), ("[MASK]", (0.2, 0.8)), ("", (0.7, 0.3))))
    shift, info = calibration.correction(task, known, batch_size=2)
    encoder = make_encoder(task, known)
    assert sorted(known.seen) == sorted(encoder.encode(text).ids for text in task.content_free)
    np.testing.assert_allclose(np.exp(shift), [0.6, 0.4])  # the mean of all three, no two of which give it
    assert info["method"] == "contextual" and info["content_free"] == ["N/A", "", "[MASK]"]
    assert info["content_free_probs"] == pytest.approx({"negative": 0.6, "positive": 0.4})
    assert info["content_free_each"] == [[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]]  # in content_free's order
    calibrated = calibration.apply(np.array([[0.6, 0.4]]), shift)
    np.testing.assert_allclose(calibrated, [[0.5, 0.5]])


def test_pmi_correction_scores_the_domain_prompt() -> None:
    task = get_task("imdb_zeroshot", calibration="pmi")
    assert calibration.domain_prompt(task) == "Sentiment:"
    known = KnownModel("known:pmi", None, table=(("Sentiment:", (0.25, 0.75)),))
    shift, info = calibration.correction(task, known)
    assert known.seen == [known.tokenizer("Sentiment:")["input_ids"]]
    np.testing.assert_allclose(np.exp(shift), [0.25, 0.75])
    assert info == {"method": "pmi", "domain_prompt": "Sentiment:",
                    "domain_probs": pytest.approx({"negative": 0.25, "positive": 0.75})}


@pytest.mark.parametrize("method", ["contextual", "pmi"])
def test_calibrated_run_records_raw_and_calibrated(tmp_path: Path, gpt2_dir: Path, data_csv: Path, method: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path),
                 "-T", f"calibration={method}", "--device", "cpu"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["calibration"]["method"] == method and results["task"]["calibration"] == method
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    labels = ("negative", "positive")
    raw = np.array([[p["raw_probs"][k] for k in labels] for p in preds])
    cal = np.array([[p["probs"][k] for k in labels] for p in preds])
    key = "content_free_probs" if method == "contextual" else "domain_probs"
    shift = np.log([results["calibration"][key][k] for k in labels])
    np.testing.assert_allclose(calibration.apply(raw, shift), cal, atol=1e-9)
    gold = np.array([labels.index(p["label"]) for p in preds])
    assert results["metrics_raw"]["accuracy"] == pytest.approx(float((raw.argmax(1) == gold).mean()))
    assert results["metrics"]["accuracy"] == pytest.approx(float((cal.argmax(1) == gold).mean()))


def test_prompt_variants_and_sensitivity(tmp_path: Path, gpt2_dir: Path, data_csv: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path),
                 "--prompts", "all", "--device", "cpu"])
    assert code == 0
    dirs = capsys.readouterr().out.strip().splitlines()
    n_variants = len(get_task("imdb_zeroshot").variants) + 1
    assert len(dirs) == n_variants >= 5
    accuracies = {Path(d).name.split("__")[0]: json.loads((Path(d) / "results.json").read_text())["metrics"]["accuracy"]
                  for d in dirs}
    spread = json.loads((tmp_path / "prompt_sensitivity__gpt2.json").read_text())
    assert spread["per_variant"] == accuracies
    assert spread["mean"] == pytest.approx(np.mean(list(accuracies.values())), abs=1e-6)
    assert spread["std"] == pytest.approx(np.std(list(accuracies.values()), ddof=1), abs=1e-6)
    assert spread["min"] == min(accuracies.values()) and spread["max"] == max(accuracies.values())


def test_selection_never_reads_the_test_split(tmp_path: Path, gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    test_rows, train_rows = make_reviews(10, seed=21), make_reviews(30, seed=22)
    test = write_rows(tmp_path / "test.csv", test_rows)
    train = write_rows(tmp_path / "train.csv", train_rows)
    scored: list[str] = []
    real = prompting.accuracy

    def spy(task: Any, loaded: Any, examples: list[Example], batch_size: Any) -> float:
        scored.extend(e.text for e in examples)
        return real(task, loaded, examples, batch_size)

    monkeypatch.setattr(prompting, "accuracy", spy)
    code = main(["run", "--model", str(gpt2_dir), "--data", str(test), "--train-data", str(train), "--out",
                 str(tmp_path / "runs"), "--select-on", "validation", "--val-limit", "12", "--device", "cpu"])
    assert code == 0
    assert scored and set(scored) <= {r["text"] for r in train_rows}
    assert not set(scored) & {r["text"] for r in test_rows}
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    selection = json.loads((run_dir / "results.json").read_text())["prompt_selection"]
    assert selection["chosen"] == run_dir.name.split("__")[0]
    assert max(selection["validation_accuracy"].values()) == selection["validation_accuracy"][selection["chosen"]]
    assert "test split was not read" in selection["method"]


def test_demonstrations_are_balanced_short_and_never_the_scored_example() -> None:
    pool = [Example(f"t{i}", "word " * (i + 1), i % 2) for i in range(40)]
    scored = {pool[0].id, pool[1].id, pool[2].text}  # the shortest ones are being scored
    demos = choose(pool, 4, 2, seed=0, exclude=scored)
    assert sorted(d.label for d in demos) == [0, 0, 1, 1]
    assert not {d.id for d in demos} & scored and not {d.text for d in demos} & scored
    assert max(len(d.text) for d in demos) <= len(pool[-1].text) // 2  # from the short end
    assert choose(pool, 4, 2, seed=0, exclude=scored) == demos and choose(pool, 4, 2, seed=1, exclude=scored) != demos


def test_fewshot_run_records_demonstrations(tmp_path: Path, gpt2_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    test = write_rows(tmp_path / "test.csv", make_reviews(6, seed=31))
    train = write_rows(tmp_path / "train.csv", make_reviews(20, seed=32))
    code = main(["run", "--model", str(gpt2_dir), "--data", str(test), "--train-data", str(train),
                 "--out", str(tmp_path / "runs"), "-T", "shots=2", "-T", "max_tokens=128", "--device", "cpu"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    demos = results["fewshot"]["demonstrations"]
    assert results["fewshot"]["k"] == 2 and sorted(d["label"] for d in demos) == ["negative", "positive"]
    assert results["task"]["prompt"].count("Sentiment:") == 3  # two demonstrations, then the prompt
    assert results["task"]["prompt"].endswith("Review: {text}\nSentiment:")


def test_too_many_shots_is_a_clear_error(gpt2: Any) -> None:
    task = get_task("imdb_zeroshot", shots=40)
    demos = [Example(f"d{i}", "a fine film " * 20, i % 2) for i in range(40)]
    with pytest.raises(UserError, match="shots=40: the demonstrations cannot fit"):
        with_demonstrations(task, demos, gpt2.tokenizer, 128)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("calibration=platt", "calibration 'platt' is not one of none, contextual, pmi"),
        ("prompt=Review without placeholder", "must name its input columns as {column}"),
        ("label_words= ,positive", "label words must be distinct and not blank"),
        ("shots=-1", "shots must be 0 or more"),
    ],
)
def test_bad_zeroshot_settings(tmp_path: Path, gpt2_dir: Path, data_csv: Path, capsys: pytest.CaptureFixture[str],
                               override: str, message: str) -> None:
    code = main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path), "-T", override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_variant_without_placeholder_is_rejected() -> None:
    with pytest.raises(TaskError, match="placeholder"):
        get_task("imdb_zeroshot", variants=(("no placeholder here", " a", " b"),))
