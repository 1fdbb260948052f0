"""harness.precision (`--dtype mixed`): bf16 scores, with near-ties scored again in fp32 so that
predictions equal a float32 run's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.encoding import Encoded
from harness.inference import make_encoder, predict
from harness.models import load_model
from harness.precision import SAFETY, CheckedScorer, pair_error, spread_sample, top_gap
from tasks import get_task


class FakeScorer:
    """Exact scores [0, margin], or with the margin moved by `noise` (a stand-in for bf16)."""

    method, label_tokens = "fake", None

    def __init__(self, margins: list[float], noise: list[float] | None = None) -> None:
        self.margins, self.noise = margins, noise or [0.0] * len(margins)
        self.calls: list[list[int]] = []

    def score(self, batch: list[Encoded]) -> torch.Tensor:
        rows = [e.ids[0] for e in batch]
        self.calls.append(rows)
        return torch.tensor([[0.0, self.margins[i] + self.noise[i]] for i in rows])


def _checked(margins, noise, shift=None):
    fast, exact = FakeScorer(margins, noise), FakeScorer(margins)
    return CheckedScorer(fast, exact, shift), fast, exact


def _inputs(n: int) -> list[Encoded]:
    return [Encoded([i], False) for i in range(n)]


def test_near_ties_are_rescored_in_fp32_and_decide_as_fp32_would():
    # The first 4 inputs are the calibration sample: their bf16 error is 0.01 at most.
    margins = [1.0, -1.0, 0.5, -0.5] + [2.0, -3.0, 0.005, -0.004, 0.02, 0.9]
    noise = [0.01, -0.01, 0.005, 0.0] + [0.01, -0.01, -0.01, 0.01, -0.01, -0.01]
    checked, fast, exact = _checked(margins, noise)
    inputs = _inputs(len(margins))
    checked.calibrate(inputs[:4])
    assert checked.sample_error == pytest.approx(0.01)
    assert checked.threshold == pytest.approx(SAFETY * 0.01)
    scores = checked.score(inputs)
    truth = torch.tensor([[0.0, m] for m in margins])
    assert torch.equal(scores.argmax(1), truth.argmax(1))  # 0.005 and -0.004 would flip in "bf16"
    # inputs 6, 7, 8 are within 0.04 of a tie: scored again exactly; the sample is never scored again
    assert checked.rescored == 3
    assert torch.allclose(scores[6:9], truth[6:9])
    assert scores[4, 1].item() == pytest.approx(2.01)  # far from a tie: the fast score is kept
    assert exact.calls[-1] == [6, 7, 8] and fast.calls[-1] == [4, 5, 6, 7, 8, 9]


def test_no_finite_error_measure_means_every_input_is_checked():
    checked, _, _ = _checked([0.0, 1.0, 3.0], [float("nan"), 0.0, 0.0])
    inputs = _inputs(3)
    checked.calibrate(inputs[:1])
    assert checked.threshold == float("inf")
    scores = checked.score(inputs[1:])
    assert checked.rescored == 2 and torch.equal(scores, torch.tensor([[0.0, 1.0], [0.0, 3.0]]))


def test_near_ties_are_judged_after_the_calibration_shift():
    # Raw margin 2.0 is far from a tie, but a correction of log-odds 2.0 puts it at 0.003.
    inputs = _inputs(2)
    plain, _, _ = _checked([0.1, 2.003], [0.0, -0.01])
    plain.threshold = 0.04
    plain.score(inputs)
    assert plain.rescored == 0
    calibrated, _, _ = _checked([0.1, 2.003], [0.0, -0.01], shift=np.array([0.0, 2.0]))
    calibrated.threshold = 0.04
    scores = calibrated.score(inputs)
    assert calibrated.rescored == 1 and scores[1, 1].item() == pytest.approx(2.003)


def test_a_sample_input_is_known_by_identity_not_by_address():
    checked, fast, _ = _checked([0.5, 0.7], [0.01, 0.01])
    checked.calibrate([Encoded([0], False)])  # this input object is gone once calibrate returns
    checked.score([Encoded([1], False)])  # a new object, perhaps at the same address
    assert fast.calls[-1] == [1]


def test_helpers():
    assert spread_sample(list(range(100)), 4) == [0, 25, 50, 75]
    assert spread_sample([3, 1], 4) == [3, 1]
    assert top_gap(torch.tensor([[0.0, 1.0, 0.25], [2.0, -1.0, 1.5]], dtype=torch.float64)).tolist() == [0.75, 0.5]
    fast, exact = torch.tensor([[0.0, 1.1, 2.0]]), torch.tensor([[0.0, 1.0, 2.05]])
    assert pair_error(fast, exact) == pytest.approx(0.15)  # label 1 +0.1, label 2 -0.05: their gap moved 0.15


def test_the_output_layer_stays_float32_on_a_bf16_body(gpt2):
    from harness.scorers import _head

    head = gpt2.model.get_output_embeddings()
    hidden = torch.randn(3, head.in_features).to(torch.bfloat16)
    logits = _head(head, hidden)
    assert logits.dtype == torch.float32 and torch.equal(logits, head(hidden.float()))


def test_mixed_on_a_real_model_predicts_as_float32(gpt2_dir, synth_reviews):
    task = get_task("imdb_zeroshot")
    texts = [r["text"] for r in synth_reviews(40, seed=11)]
    exact = load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="float32")
    mixed = load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="mixed")
    assert mixed.precision == "mixed" and next(mixed.model.parameters()).dtype == torch.float32
    assert next(mixed.fast_body.parameters()).dtype == torch.bfloat16
    ref = predict(task, exact, make_encoder(task, exact).encode_many(texts), progress=False).probs
    done = predict(task, mixed, make_encoder(task, mixed).encode_many(texts), batch_size=4, progress=False)
    got = done.probs
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert np.abs(got - ref).max() < 0.02  # bf16-sized differences, not exactly fp32
    checks = done.precision  # returned, never written into the loaded model
    assert checks["scored"] == 40 and checks["sampled_fp32"] == 16 and checks["threshold"] > 0
    assert 0 <= checks["rescored_fp32"] <= 24


def test_run_folders_record_each_jobs_mixed_precision_checks(tmp_path, gpt2_dir, synth_reviews, write_data, capsys):
    from harness.runs import load_run
    from tenser.cli import main

    data = write_data(synth_reviews(24, seed=4), "reviews.jsonl")
    code = main(["run", "--model", str(gpt2_dir), "--data", str(data), "--out", str(tmp_path / "runs"),
                 "--device", "cpu", "--dtype", "mixed", "--prompts", "all"])
    out, err = capsys.readouterr()
    assert code == 0, err
    folders = sorted((tmp_path / "runs").glob("imdb_zeroshot*__gpt2"))
    assert len(folders) == len(get_task("imdb_zeroshot").variants) + 1
    for folder in folders:  # one model loaded once, four jobs: each reports its own 24 inputs
        results, _ = load_run(folder)
        assert results["runtime"]["dtype"] == "mixed"
        assert results["runtime"]["mixed_precision"]["scored"] == 24
        assert results["runtime"]["mixed_precision"]["sampled_fp32"] == 16
