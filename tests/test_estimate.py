"""The time estimate (issue 24 item 7): the warm-up times what a training step really does (the
optimizer step included, weights unchanged), the printed estimate carries a range and the machine's
load, and scores the cache already holds are not counted as work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from harness.api import evaluate
from harness.recipes.evaluation import Options, cached_count
from harness.training import estimate
from harness.training.config import FinetuneConfig
from harness.training.trainer import _prepare, measure, scored_inputs
from tasks import get_task
from tests.conftest import make_reviews, write_rows
from tests.test_finetune import FAST, separable

PLAN = estimate.Plan(device="cpu (x86_64, 2 threads)", n_train=400, n_val=40, epochs=2, batch_size=8,
                     trainable=1000, total=1000, n_score=300, n_cached=100, loads=3)
COSTS = estimate.Costs(step=estimate.Timing(1.0, 0.8, 1.5), val=estimate.Timing(0.1, 0.1, 0.2),
                       score=estimate.Timing(0.2, 0.1, 0.3), load_s=4.0)


def _net_and_sets(gpt2_dir: Path, tmp_path: Path) -> tuple[object, object, object, object]:
    train = write_rows(tmp_path / "train.csv", separable(40, seed=1))
    cfg = FinetuneConfig(**FAST)
    _, _, _, tokenizer, net, train_set, val_set = _prepare(str(gpt2_dir), get_task("imdb_classifier"), cfg,
                                                           str(train), False)
    return tokenizer, net, train_set, val_set


def test_the_timed_step_takes_a_real_optimizer_step_and_changes_no_weight(gpt2_dir: Path, tmp_path: Path) -> None:
    tokenizer, net, train_set, _ = _net_and_sets(gpt2_dir, tmp_path)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    device = torch.device("cpu")
    optimizer = estimate.warmup_optimizer(net, 0.01, device)
    from harness.training.data import Collator

    collate = Collator(int(tokenizer.pad_token_id))
    made = []
    timing = estimate.time_train_step(net, lambda: made.append(1) or collate(train_set.features[:8]), optimizer,
                                      device, repeats=3)
    trained = [p for p in net.parameters() if p.requires_grad]
    # AdamW's state exists (and counts its steps) only where optimizer.step ran: every repeat, every weight
    assert trained and all(float(optimizer.state[p]["step"]) == 4 for p in trained)
    assert all(float(optimizer.state[p]["exp_avg"].abs().sum()) > 0 for p in trained[-2:])  # real gradients moved it
    assert len(made) == 4  # collation is timed each step, as the data loader does it
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # learning rate 0: weights as they were
    assert all(p.grad is None for p in net.parameters())
    assert 0 < timing.low <= timing.median <= timing.high


def test_measure_times_a_step_a_validation_example_and_a_scored_example(gpt2_dir: Path, tmp_path: Path) -> None:
    tokenizer, net, train_set, val_set = _net_and_sets(gpt2_dir, tmp_path)
    costs = measure(net, tokenizer, train_set, val_set, FinetuneConfig(**FAST), torch.device("cpu"), load_s=2.5)
    for t in (costs.step, costs.val, costs.score):
        assert 0 < t.low <= t.median <= t.high
    assert costs.val.median < costs.step.median  # one example of a no-grad batch costs less than a training step
    assert costs.load_s == 2.5


def test_scored_examples_are_timed_as_scoring_encodes_them_not_at_max_length(
        gpt2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fine-tune trains at --max-length 16, but validation and test scoring encode at the task's
    # max_tokens: a quiet SmolLM2 fine-tune took 1.40x its estimate when the scored cost was timed on
    # the 128-token training features while scoring ran whole reviews.
    rows = [{"text": " ".join(["great" if i % 2 else "awful"] * (60 + i)), "label": i % 2} for i in range(40)]
    train = write_rows(tmp_path / "train.csv", rows)
    cfg = FinetuneConfig(**{**FAST, "max_length": 16})
    task = get_task("imdb_classifier")
    _, _, val, tokenizer, net, train_set, val_set = _prepare(str(gpt2_dir), task, cfg, str(train), False)
    scored = scored_inputs(task, tokenizer, net, val)
    assert len(scored) == len(val) and max(len(f["input_ids"]) for f in val_set.features) <= 16
    assert min(len(f["input_ids"]) for f in scored) >= 60  # the task's own encoding, not cut to --max-length
    timed: list[list[int]] = []
    real = estimate.time_forward
    monkeypatch.setattr(estimate, "time_forward", lambda net, inputs, device: timed.append(
        [len(x) for x in inputs]) or real(net, inputs, device))
    measure(net, tokenizer, train_set, val_set, cfg, torch.device("cpu"))
    measure(net, tokenizer, train_set, val_set, cfg, torch.device("cpu"), scored=scored)
    assert max(timed[0]) <= 16 and min(timed[1]) >= 60


def test_the_printed_estimate_shows_its_range_and_the_machine_load(capsys: pytest.CaptureFixture[str]) -> None:
    total = estimate.report(PLAN, COSTS, yes=True, load=(3.0, 2))
    steps, val = 2 * 50, 2 * 40  # each epoch's validation example: a batched eval_loss forward, then scored
    assert total == pytest.approx(steps * 1.0 + val * (0.1 + 0.2) + 200 * 0.2 + 3 * 4.0)
    high = (steps * 1.5 + val * (0.2 + 0.3) + 200 * 0.3 + 12) * 1.5  # the slowest repeats, x load 3 over 2 cores
    low = steps * 0.8 + val * (0.1 + 0.1) + 200 * 0.1 + 12
    err = capsys.readouterr().err
    line = re.search(r"estimate: (.+?), likely (.+?) to (.+?) \(1\.00 s per training step with its optimizer step "
                     r"\(timed 0\.80 to 1\.50 s\), 0\.100 s per validation example, 0\.20 s per scored example", err)
    assert line, err
    assert line.groups() == (estimate.duration(total), estimate.duration(low), estimate.duration(high))
    assert "machine load 3.0 on 2 cores (busy" in err
    assert "300 examples scored outside training, 100 of them already in the score cache and not counted" in err
    estimate.report(PLAN, COSTS, yes=True, load=(0.5, 2))
    quiet = capsys.readouterr().err
    assert "busy" not in quiet and f"to {estimate.duration(high / 1.5)} (" in quiet


def test_cached_scores_are_not_counted_as_work() -> None:
    none_cached = estimate.Plan(**{**PLAN.__dict__, "n_cached": 0})
    with_cache = estimate.report(PLAN, COSTS, yes=True, load=(0.0, 2))
    assert estimate.report(none_cached, COSTS, yes=True, load=(0.0, 2)) - with_cache == pytest.approx(100 * 0.2)


def test_cached_count_finds_the_pretrained_runs_scores_in_the_cache(gpt2_dir: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "test.csv", make_reviews(12, seed=5))
    task = get_task("imdb_zeroshot")
    opts = Options(device="cpu", dtype="float32")
    assert cached_count(task, str(gpt2_dir), data=str(data), limit=None, opts=opts) == 0  # nothing scored yet
    evaluate(str(gpt2_dir), task, data=str(data), limit=8, seed=0, out=tmp_path / "runs", device="cpu", dtype="float32")
    assert cached_count(task, str(gpt2_dir), data=str(data), limit=None, opts=opts) == 8  # the 8 scored of 12
    assert cached_count(task, str(gpt2_dir), data=str(data), limit=None,
                        opts=Options(device="cpu", dtype="float32", use_cache=False)) == 0
