"""Shared-prefix scoring (harness.backends.scorers): the inputs' common token prefix run once gives the
probabilities of the uncached path to 1e-5 in float32 with identical predictions, on tiny GPT-2 (absolute
positions) and Llama (rotary) models, left and right truncation, chat templates, 2-8 shots, multi-token
label words and several batch sizes; results.json and the bench record it; --no-prefix-cache turns it off."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.backends.loading import load_model
from harness.backends.scorers import MIN_PREFIX, common_prefix
from harness.data.examples import Example
from harness.scoring.fewshot import with_demonstrations
from harness.scoring.inference import Predicted, make_encoder, predict
from tasks import Task, get_task
from tenser.cli import main
from tests.conftest import make_reviews, write_rows

TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
DEMOS = ["loved it", "awful", "the best", "boring", "great music", "a mess", "funny", "the worst"]


def _with_shots(task: Task, k: int) -> Task:
    """`task` with k short demonstrations written before its prompt, as harness.scoring.fewshot writes them."""
    blocks = "".join(f"Review: {DEMOS[i]}\nSentiment: {'positive' if i % 2 == 0 else 'negative'}\n\n" for i in range(k))
    return dataclasses.replace(task, prompt=blocks + task.prompt)


def _both(task: Task, loaded: Any, texts: list[str], batch_size: int | str) -> tuple[Predicted, Predicted]:
    encoded = make_encoder(task, loaded).encode_many(texts)
    cached = predict(task, loaded, encoded, batch_size=batch_size, progress=False)
    plain = predict(task, dataclasses.replace(loaded, prefix_cache=False), encoded, batch_size=batch_size,
                    progress=False)
    return cached, plain


def _assert_same(cached: Predicted, plain: Predicted) -> None:
    assert cached.prefix["prefix_tokens"] >= MIN_PREFIX, cached.prefix
    assert plain.prefix["prefix_tokens"] == 0 and plain.prefix["off"] == "--no-prefix-cache"
    np.testing.assert_allclose(cached.probs, plain.probs, atol=1e-5, rtol=0)
    assert (cached.probs.argmax(1) == plain.probs.argmax(1)).all()


def test_common_prefix_is_found_on_token_ids_and_leaves_each_input_a_token() -> None:
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # the scored last token stays in the batch
    assert common_prefix([[7, 1], [8, 1]]) == 0
    assert common_prefix([[1, 2, 3]]) == 2 and common_prefix([]) == 0


@pytest.mark.parametrize("model", ["gpt2", "llama"])
@pytest.mark.parametrize("shots,side,batch_size", [(2, "left", 1), (8, "right", "auto"), (5, "left", 4),
                                                   (8, "left", 3)])
def test_cached_prefix_equals_the_uncached_path(model: str, shots: int, side: str, batch_size: int | str,
                                                request: pytest.FixtureRequest) -> None:
    loaded = request.getfixturevalue(model)
    task = _with_shots(get_task("imdb_zeroshot", truncation_side=side, max_tokens=128), shots)
    texts = [r["text"] for r in make_reviews(12, seed=3)]  # some cut to fit, some with a literal EOS
    cached, plain = _both(task, loaded, texts, batch_size)
    _assert_same(cached, plain)
    encoded = make_encoder(task, loaded).encode_many(texts)
    assert any(e.truncated for e in encoded)
    assert cached.prefix["tokens_saved"] == cached.prefix["prefix_tokens"] * (len(texts) - 1)


def test_drawn_demonstrations_and_multi_token_label_words(gpt2: Any) -> None:
    pool = [Example(f"d{i}", f"{DEMOS[i]} and the acting was {'great' if i % 2 == 0 else 'bad'}", 1 - i % 2)
            for i in range(4)]
    task = get_task("imdb_zeroshot", max_tokens=128, label_words=(" very bad film", " very good film"))
    task = with_demonstrations(task, pool[:2], gpt2.tokenizer, 128)
    cached, plain = _both(task, gpt2, [r["text"] for r in make_reviews(8, seed=4)], 3)
    _assert_same(cached, plain)


@pytest.fixture(scope="module")
def chat_llama(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("chat") / "llama_chat"
    shutil.copytree(llama_dir, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    return load_model(str(folder), "causal_lm", device="cpu", dtype="float32")


@pytest.mark.parametrize("multiturn", [False, True])
def test_chat_template_header_and_turns_share_the_prefix(chat_llama: Any, multiturn: bool) -> None:
    task = get_task("imdb_zeroshot", chat_template="true", system_prompt="Answer in one word, positive or negative.",
                    max_tokens=128, fewshot_as_multiturn=multiturn)
    pool = [Example(f"d{i}", DEMOS[i], 1 - i % 2) for i in range(2)]
    task = with_demonstrations(task, pool, chat_llama.tokenizer, 128)
    cached, plain = _both(task, chat_llama, [r["text"] for r in make_reviews(8, seed=5)], "auto")
    _assert_same(cached, plain)


def test_a_short_prefix_is_scored_as_before(gpt2: Any) -> None:
    cached, plain = _both(get_task("imdb_zeroshot"), gpt2, ["a fine film", "awful"], 2)
    assert cached.prefix["prefix_tokens"] == 0 and "under" in cached.prefix["off"]
    np.testing.assert_array_equal(cached.probs, plain.probs)


def test_mixed_precision_checks_the_cached_path(gpt2_dir: Path, gpt2: Any) -> None:
    mixed = load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="mixed")
    task = _with_shots(get_task("imdb_zeroshot", max_tokens=128), 4)
    texts = [r["text"] for r in make_reviews(20, seed=6)]  # more than precision.SAMPLE: the checked scorer runs
    encoded = make_encoder(task, gpt2).encode_many(texts)
    done = predict(task, mixed, encoded, batch_size=4, progress=False)
    ref = predict(task, dataclasses.replace(gpt2, prefix_cache=False), encoded, batch_size=1, progress=False)
    assert done.prefix["prefix_tokens"] >= MIN_PREFIX and done.precision["scored"] == 20
    assert (done.probs.argmax(1) == ref.probs.argmax(1)).all()


def test_run_records_the_prefix_and_no_prefix_cache_gives_the_same_scores(tmp_path: Path, gpt2_dir: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    test = write_rows(tmp_path / "test.csv", make_reviews(6, seed=31))
    train = write_rows(tmp_path / "train.csv", make_reviews(20, seed=32))
    runs = {}
    for name, flags in (("cached", []), ("plain", ["--no-prefix-cache"])):
        code = main(["run", "--model", str(gpt2_dir), "--data", str(test), "--train-data", str(train), "--no-cache",
                     "--out", str(tmp_path / name), "-T", "shots=2", "-T", "max_tokens=128", "--device", "cpu", *flags])
        assert code == 0
        run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
        records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
        runs[name] = (json.loads((run_dir / "results.json").read_text()), records)
    (results, records), (plain_results, plain_records) = runs["cached"], runs["plain"]
    shared = results["scoring"]["prefix_cache"]
    assert shared["prefix_tokens"] >= MIN_PREFIX and shared["tokens_saved"] == shared["prefix_tokens"] * 5
    assert plain_results["scoring"]["prefix_cache"]["off"] == "--no-prefix-cache"
    for a, b in zip(records, plain_records):
        assert a["pred"] == b["pred"] and all(abs(a["probs"][k] - b["probs"][k]) < 1e-5 for k in a["probs"])


def test_bench_times_the_uncached_way_and_checks_it(tmp_path: Path, gpt2_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    test = write_rows(tmp_path / "test.jsonl", make_reviews(8, seed=41))
    train = write_rows(tmp_path / "train.jsonl", make_reviews(20, seed=42))
    code = main(["bench", "--device", "cpu", "--model", str(gpt2_dir), "--data", str(test), "--limit", "8",
                 "--train-data", str(train), "-T", "shots=2", "-T", "max_tokens=128", "--ways",
                 "tenser,tenser_no_prefix", "--out", str(tmp_path / "bench")])
    assert code == 0, capsys.readouterr().err
    r = json.loads((tmp_path / "bench" / "bench.json").read_text())["scoring"][0]
    assert set(r["ways"]) == {"tenser", "tenser_no_prefix"} and r["prefix_check"]["ok"]
    assert r["prefix_cache"]["prefix_tokens"] >= MIN_PREFIX
    assert "| imdb_zeroshot | prefix cache vs none |" in (tmp_path / "bench" / "bench.md").read_text()
