"""`tenser bench` in its tiny mode: tiny models, a few dozen examples, every way, the agreement
check against the fp32 one-at-a-time reference, and a loud failure when predictions differ."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.recipes import bench
from tasks import get_task
from tenser.cli import main
from tests.conftest import write_rows


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory, synth_reviews):
    folder = tmp_path_factory.mktemp("bench")
    return (write_rows(folder / "test.jsonl", synth_reviews(48, seed=21)),
            write_rows(folder / "train.jsonl", synth_reviews(16, seed=22)))


def _bench(argv, capsys):
    code = main(["bench", "--device", "cpu", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tiny_bench_all_ways_agree_and_are_saved(tmp_path, gpt2_dir, gpt2_clf_dir, bench_data, capsys):
    test, train = bench_data
    out = tmp_path / "bench"
    code, stdout, err = _bench(["--model", str(gpt2_dir), "--classifier", str(gpt2_clf_dir), "--data", str(test),
                                "--limit", "24", "--train-data", str(train), "--finetune-examples", "8",
                                "--out", str(out)], capsys)
    assert code == 0, err
    assert stdout.strip() == str(out / "bench.md")
    saved = json.loads((out / "bench.json").read_text())
    assert [r["task"] for r in saved["scoring"]] == ["imdb_zeroshot", "imdb_classifier"]
    for r in saved["scoring"]:
        assert r["n"] == 24 and r["tokens"] > 24
        assert r["agreement"] == {"disagreement": 0.0, "accuracy_gap": 0.0, "ok": True}
        assert set(r["ways"]) == {"tenser", "tenser_no_prefix", "seed_style", "one_at_a_time"}
        for way in r["ways"].values():
            assert way["seconds"] > 0 and way["peak_memory_mib"] > 0
            assert way["examples_per_s"] == pytest.approx(24 / way["seconds"], rel=0.05)
            assert way["speedup_vs_tenser"] == pytest.approx(way["seconds"] / r["ways"]["tenser"]["seconds"], abs=0.01)
        accuracies = {w["accuracy"] for w in r["ways"].values()}
        assert len(accuracies) == 1  # every way predicts the same
        assert r["runtime"]["device"] == "cpu" and r["runtime"]["hardware"]
    training = saved["finetuning"]
    assert set(training["ways"]) == {"tenser", "seed_style"}
    assert all(w["examples"] == 8 and w["epoch_s_for_22500"] > 0 for w in training["ways"].values())
    table = (out / "bench.md").read_text()
    assert "| imdb_zeroshot | agreement with reference |" in table and "FAILED" not in table
    assert "| finetune:imdb_classifier | seed_style (pad to 512) |" not in table  # ways are named as saved
    assert "| finetune:imdb_classifier | seed_style |" in table and "Hardware: " in table
    assert table in err  # printed as well as saved


def test_mixed_precision_and_compile_agree_with_the_reference(tmp_path, gpt2_dir, bench_data, capsys):
    out = tmp_path / "bench"
    code, _, err = _bench(["--model", str(gpt2_dir), "--data", str(bench_data[0]), "--limit", "40",
                           "--ways", "tenser,one_at_a_time", "--dtype", "mixed", "--compile", "--repeats", "2",
                           "--out", str(out)], capsys)
    assert code == 0, err
    r = json.loads((out / "bench.json").read_text())["scoring"][0]
    assert r["agreement"]["ok"] and r["agreement"]["disagreement"] == 0.0
    assert r["runtime"]["dtype"] == "mixed" and r["runtime"]["compiled"] is True and r["compile_s"] > 0
    mixed = r["runtime"]["mixed_precision"]
    assert mixed["scored"] == 80 and mixed["sampled_fp32"] == 32  # two timed passes; the warm-up is not counted
    for way in r["ways"].values():
        assert len(way["all_seconds"]) == 2 and way["seconds"] == min(way["all_seconds"])
    table = (out / "bench.md").read_text()
    assert "Tenser dtype mixed, compiled" in table and "near-ties re-scored in fp32 of 80" in table


def test_disagreeing_predictions_fail_loudly(tmp_path, gpt2_dir, bench_data, capsys, monkeypatch):
    real = bench.predict

    def flipped(*args, **kwargs):
        done = real(*args, **kwargs)
        done.probs[:2] = done.probs[:2, ::-1]  # two of 24 predictions change
        return done

    monkeypatch.setattr(bench, "predict", flipped)
    out = tmp_path / "bench"
    code, _, err = _bench(["--model", str(gpt2_dir), "--data", str(bench_data[0]), "--limit", "24",
                           "--ways", "tenser,one_at_a_time", "--out", str(out)], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("tenser bench: error: agreement check failed for imdb_zeroshot")
    saved = json.loads((out / "bench.json").read_text())["scoring"][0]  # the evidence is kept
    assert saved["agreement"]["ok"] is False and saved["agreement"]["disagreement"] == pytest.approx(2 / 24)
    assert "| imdb_zeroshot | agreement with reference | | | | | | 8.33% disagree" in (out / "bench.md").read_text()


def test_agreement_limits():
    gold = np.array([0, 1] * 500)
    ref = gold.copy()
    one_off = ref.copy()
    one_off[0] = 1 - one_off[0]
    assert bench.agreement(ref, ref, gold)["ok"]
    assert bench.agreement(one_off, ref, gold)["ok"]  # 1 in 1,000 is the limit: 0.1%
    two_off = one_off.copy()
    two_off[1] = 1 - two_off[1]
    check = bench.agreement(two_off, ref, gold)
    assert not check["ok"] and check["disagreement"] == pytest.approx(0.002)


def test_bad_ways_and_repeats_are_user_errors(gpt2_dir, capsys):
    code, _, err = _bench(["--model", str(gpt2_dir), "--ways", "tenser,pipeline"], capsys)
    assert code == 2 and "--ways 'tenser,pipeline': choose from tenser, tenser_no_prefix, seed_style, one_at_a_time" in err
    code, _, err = _bench(["--model", str(gpt2_dir), "--repeats", "0"], capsys)
    assert code == 2 and "--repeats 0: give 1 or more" in err and "Traceback" not in err


def test_reference_is_the_plain_forward(gpt2):
    task = get_task("imdb_zeroshot")
    from harness.scoring.inference import make_encoder, predict

    encoded = make_encoder(task, gpt2).encode_many(["A fine film.", "Dull, slow and long. " * 3])
    ref = bench.reference_probs(task, gpt2, encoded, progress=False)
    padded = bench.reference_probs(task, gpt2, encoded, pad_to=64, batch_size=2, progress=False)
    np.testing.assert_allclose(ref, predict(task, gpt2, encoded, progress=False).probs, atol=1e-5)
    np.testing.assert_allclose(ref, padded, atol=1e-5)  # the attention mask makes padding harmless


def test_reference_sums_multi_token_label_words(gpt2):
    """Both words start with ' very': a first-token-only reference would say 50/50 for every input."""
    import dataclasses

    from harness.scoring.encoding import label_token_ids
    from harness.scoring.inference import make_encoder, predict

    task = dataclasses.replace(get_task("imdb_zeroshot"), label_words=(" very bad", " very good"))
    words = label_token_ids(task, gpt2.tokenizer)
    assert min(len(w) for w in words) >= 2 and words[0][0] == words[1][0]
    encoded = make_encoder(task, gpt2).encode_many(["A fine film.", "Dull, slow and long. " * 3, "Meh."])
    ref = bench.reference_probs(task, gpt2, encoded, progress=False)
    padded = bench.reference_probs(task, gpt2, encoded, pad_to=64, batch_size=2, progress=False)
    assert np.abs(ref[:, 0] - 0.5).max() > 1e-4
    np.testing.assert_allclose(ref, predict(task, gpt2, encoded, progress=False).probs, atol=1e-5)
    np.testing.assert_allclose(ref, padded, atol=1e-5)
