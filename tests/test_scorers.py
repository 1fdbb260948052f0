"""harness.backends.loading + harness.backends.scorers + runner.predict: the scoring contract against independent
computations on tiny real models (GPT-2 and Llama), batch invariance (trap 7), padding and
literal EOS (trap 2), long inputs (trap 3), refusing untrained heads (trap 4), model loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.backends.hf import plan_batches
from harness.backends.loading import content_hash, load_model, resolve_device, resolve_dtype
from harness.backends.scorers import ClassifierScorer, ZeroShotScorer, build_scorer
from harness.errors import UserError
from harness.scoring.encoding import Encoded
from harness.scoring.inference import BatchPlan, make_encoder, predict
from tasks import get_task

EOS = "<|endoftext|>"
MULTI = " dreadful, superb!"  # label words that are several tokens each in the tiny vocabulary


def _short_texts(synth_reviews, n=10, seed=5):
    return [r["text"][:150] for r in synth_reviews(n, seed=seed)]


def _prompt_ids(tokenizer, task, text):
    return tokenizer(task.prompt.replace("{text}", text), split_special_tokens=True)["input_ids"]


@torch.no_grad()
def _reference_zeroshot(model, tokenizer, task, text):
    """Independent: the full forward of the un-padded prompt, log-softmax, summed over label tokens."""
    ids = _prompt_ids(tokenizer, task, text)
    out = []
    for word in task.label_words:
        word_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        logits = model(input_ids=torch.tensor([ids + word_ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        out.append(sum(float(logp[len(ids) - 1 + k, t]) for k, t in enumerate(word_ids)))
    return out


@torch.no_grad()
def _reference_head(model, ids):
    """Independent: the head on the last token of the un-padded sequence."""
    hidden = model.base_model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
    return model.score(hidden).double().tolist()


def _encode(task, loaded, texts):
    return make_encoder(task, loaded).encode_many(texts)


# --- model loading ---------------------------------------------------------------------------

def test_gpt2_gets_a_pad_token_on_tokenizer_and_config(gpt2, gpt2_dir):
    saved = json.loads((gpt2_dir / "config.json").read_text())
    assert saved.get("pad_token_id") is None  # the checkpoint has none, like GPT-2
    eos = gpt2.tokenizer.eos_token_id
    assert gpt2.tokenizer.pad_token == EOS and gpt2.tokenizer.pad_token_id == eos
    assert gpt2.model.config.pad_token_id == eos
    assert not gpt2.model.training


def test_loaded_model_info(gpt2, gpt2_dir, llama):
    info = gpt2.info
    assert info["architecture"] == "GPT2LMHeadModel" and info["context_length"] == gpt2.context_length == 128
    assert info["n_parameters"] == sum(p.numel() for p in gpt2.model.parameters())
    assert info["content_hash"] == content_hash(gpt2_dir) and info["content_hash"].startswith("sha256:")
    assert info["name_or_path"] == str(gpt2_dir) and info["training_log"] is None
    assert (gpt2.device.type, gpt2.dtype) == ("cpu", torch.float32)
    assert llama.info["architecture"] == "LlamaForCausalLM" and llama.context_length == 128
    assert llama.tokenizer.pad_token_id == llama.tokenizer.eos_token_id == llama.model.config.pad_token_id


def test_content_hash_changes_with_the_weights(tmp_path, gpt2_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(gpt2_dir, copy)
    assert content_hash(copy) == content_hash(gpt2_dir)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace('"n_layer": 2', '"n_layer": 2 '))
    assert content_hash(copy) != content_hash(gpt2_dir)


@pytest.mark.parametrize("fixture", ["gpt2_dir", "llama_dir"])
def test_plain_lm_is_refused_as_a_classifier(fixture, request):
    folder = request.getfixturevalue(fixture)
    with pytest.raises(UserError) as err:
        load_model(str(folder), "classifier", device="cpu")
    msg = str(err.value)
    assert "no trained classification head" in msg and "tenser finetune" in msg
    assert json.loads((folder / "config.json").read_text())["architectures"][0] in msg


def test_classifier_head_must_match_the_task_labels(gpt2_clf, make_classifier_dir):
    three = load_model(str(make_classifier_dir(("bad", "meh", "good"))), "classifier", device="cpu")
    with pytest.raises(UserError, match="head has 3 outputs but task 'imdb_classifier' has 2 labels"):
        build_scorer(three.model, three.tokenizer, get_task("imdb_classifier"))
    swapped = load_model(str(make_classifier_dir(("positive", "negative"))), "classifier", device="cpu")
    with pytest.raises(UserError, match="orders its labels"):
        build_scorer(swapped.model, swapped.tokenizer, get_task("imdb_classifier"))
    assert isinstance(build_scorer(gpt2_clf.model, gpt2_clf.tokenizer, get_task("imdb_classifier")), ClassifierScorer)


def test_device_and_dtype_resolution():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if expected == "cpu":
        assert resolve_dtype("auto", torch.device("cpu")) == (torch.float32, None)
        with pytest.raises(UserError, match="device cuda: no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_dtype("bfloat16", torch.device("cpu")) == (torch.bfloat16, None)
    assert resolve_dtype("float16", torch.device("cpu")) == (torch.float16, None)
    assert resolve_dtype("mixed", torch.device("cpu")) == (torch.float32, torch.bfloat16)
    with pytest.raises(UserError, match="dtype mixed: supported on cpu and cuda, not mps"):
        resolve_dtype("mixed", torch.device("mps"))
    with pytest.raises(UserError, match="device 'tpu': choose one of auto, cpu, cuda, mps"):
        resolve_device("tpu")
    with pytest.raises(UserError, match="dtype 'fp32': choose one of auto, mixed, float32"):
        resolve_dtype("fp32", torch.device("cpu"))


def test_bfloat16_load_on_cpu(gpt2_dir):
    loaded = load_model(str(gpt2_dir), "causal_lm", device="cpu", dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16 and next(loaded.model.parameters()).dtype == torch.bfloat16
    task = get_task("imdb_zeroshot")
    probs = predict(task, loaded, _encode(task, loaded, ["A great film."]), progress=False).probs
    assert probs.shape == (1, 2) and np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0)


def test_batch_plans():
    assert plan_batches("auto", torch.device("cpu")) == BatchPlan(1, None)  # no padding on CPU
    gpu = plan_batches("auto", torch.device("cuda"))
    assert gpu.max_tokens is not None and gpu.max_tokens > 0
    lengths = [300, 200, 100, 100, 10]
    # A token budget packs more of the shorter inputs; it always takes at least one.
    assert BatchPlan(64, 400).end(lengths, 0) == 1 and BatchPlan(64, 400).end(lengths, 2) == 5
    assert BatchPlan(64, 100).end(lengths, 0) == 1
    assert plan_batches(3, torch.device("cpu")) == BatchPlan(3, None)
    assert BatchPlan(3, None).end(lengths, 3) == 5 and BatchPlan(3, None).halve() == BatchPlan(1, None)
    for bad in (0, -1, "many", 2.5):
        with pytest.raises(UserError, match="^batch_size"):
            plan_batches(bad, torch.device("cpu"))


# --- zero-shot scorer against an independent implementation ---------------------------------

@pytest.mark.parametrize("fixture", ["gpt2", "llama"])
def test_zeroshot_scores_equal_a_full_forward_per_example(fixture, request, synth_reviews):
    loaded = request.getfixturevalue(fixture)
    task = get_task("imdb_zeroshot")
    texts = _short_texts(synth_reviews)
    encoded = _encode(task, loaded, texts)
    assert not any(e.truncated for e in encoded)
    scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    assert isinstance(scorer, ZeroShotScorer) and "single-token" in scorer.method
    got = scorer.score(encoded).double().numpy()  # one padded batch of mixed lengths
    want = np.array([_reference_zeroshot(loaded.model, loaded.tokenizer, task, t) for t in texts])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.ptp(want[:, 1] - want[:, 0]) > 1e-3  # the examples really differ: the check has power
    probs = predict(task, loaded, encoded, batch_size=3, progress=False).probs
    np.testing.assert_allclose(probs, torch.softmax(torch.tensor(want), -1).numpy(), atol=1e-4)


@pytest.mark.parametrize("fixture", ["gpt2", "llama"])
def test_multi_token_label_words_score_as_summed_log_probs(fixture, request, synth_reviews):
    loaded = request.getfixturevalue(fixture)
    task = get_task("imdb_zeroshot", label_words=MULTI)
    texts = _short_texts(synth_reviews, n=6, seed=8)
    scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    assert scorer.multi_token and "summed log-probs" in scorer.method
    got = scorer.score(_encode(task, loaded, texts)).double().numpy()
    want = np.array([_reference_zeroshot(loaded.model, loaded.tokenizer, task, t) for t in texts])
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Summing matters: the first token alone gives a different score.
    first_only = get_task("imdb_zeroshot", label_words=",".join(
        loaded.tokenizer.decode(loaded.tokenizer(w, add_special_tokens=False)["input_ids"][:1]) for w in task.label_words))
    single = build_scorer(loaded.model, loaded.tokenizer, first_only).score(_encode(first_only, loaded, texts))
    assert np.abs(single.double().numpy() - got).max() > 1e-2


def test_multi_token_labels_fit_the_context_for_long_reviews(gpt2, synth_reviews):
    task = get_task("imdb_zeroshot", label_words=MULTI)
    long_texts = [r["text"] for r in synth_reviews(12, seed=9) if len(r["text"]) > 800]
    assert long_texts
    encoded = _encode(task, gpt2, long_texts)
    longest = max(len(gpt2.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in task.label_words)
    assert all(e.truncated and e.n_tokens + longest - 1 == gpt2.context_length for e in encoded)
    probs = predict(task, gpt2, encoded, batch_size=4, progress=False).probs  # positions past 128 would crash GPT-2
    assert np.isfinite(probs).all()


# --- classifier scorer ----------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["gpt2_clf", "llama_clf"])
def test_classifier_scores_equal_the_head_on_the_last_real_token(fixture, request, synth_reviews):
    loaded = request.getfixturevalue(fixture)
    task = get_task("imdb_classifier")
    texts = _short_texts(synth_reviews)
    encoded = _encode(task, loaded, texts)
    scorer = build_scorer(loaded.model, loaded.tokenizer, task)
    got = scorer.score(encoded).double().numpy()
    want = np.array([_reference_head(loaded.model, e.ids) for e in encoded])
    np.testing.assert_allclose(got, want, atol=1e-4)
    # The model's own forward on each un-padded sequence agrees too (no EOS in these texts).
    with torch.no_grad():
        own = np.array([loaded.model(input_ids=torch.tensor([e.ids])).logits[0].double().numpy() for e in encoded])
    np.testing.assert_allclose(got, own, atol=1e-4)


def test_classifier_without_a_score_layer_uses_the_masked_forward(gpt2_clf, synth_reviews):
    task = get_task("imdb_classifier")
    encoded = _encode(task, gpt2_clf, _short_texts(synth_reviews))
    scorer = ClassifierScorer(gpt2_clf.model, gpt2_clf.tokenizer, task)
    via_head = scorer.score(encoded)
    scorer.head = None  # as for heads not called `score` (BERT-style `classifier`)
    np.testing.assert_allclose(scorer.score(encoded).numpy(), via_head.numpy(), atol=1e-4)


# --- batch invariance, padding, literal EOS -------------------------------------------------

@pytest.mark.parametrize(
    ("fixture", "task_name", "overrides"),
    [
        ("gpt2", "imdb_zeroshot", {}),
        ("gpt2", "imdb_zeroshot", {"label_words": MULTI}),
        ("llama", "imdb_zeroshot", {}),
        ("gpt2_clf", "imdb_classifier", {}),
        ("llama_clf", "imdb_classifier", {}),
    ],
)
def test_probabilities_do_not_depend_on_batch_size(fixture, task_name, overrides, request, reviews):
    loaded = request.getfixturevalue(fixture)
    task = get_task(task_name, **overrides)
    texts = [r["text"] for r in reviews]
    encoded = _encode(task, loaded, texts)
    assert any(e.truncated for e in encoded) and any(EOS in t for t in texts)
    assert len({e.n_tokens for e in encoded}) > 5  # real padding happens in a batch
    one = predict(task, loaded, encoded, batch_size=1, progress=False).probs
    for size in (5, "auto"):  # auto on CPU: a padded-token budget, here the whole set in one or two batches
        np.testing.assert_allclose(predict(task, loaded, encoded, batch_size=size, progress=False).probs, one, atol=1e-4)
    assert one.shape == (len(texts), 2) and np.allclose(one.sum(axis=1), 1.0)
    assert np.ptp(np.log(one[:, 1] / one[:, 0])) > 1e-3  # examples differ: a mix-up would show
    # Results come back in input order, not in the length-sorted scoring order.
    reversed_probs = predict(task, loaded, encoded[::-1], batch_size=32, progress=False).probs
    np.testing.assert_allclose(reversed_probs[::-1], one, atol=1e-4)


def test_predict_calls_on_batch_with_original_indices(gpt2, reviews):
    task = get_task("imdb_zeroshot")
    encoded = _encode(task, gpt2, [r["text"] for r in reviews[:7]])
    seen: dict[int, np.ndarray] = {}
    sizes = []

    def on_batch(idx, probs):
        sizes.append(len(idx))
        seen.update(zip(idx, probs))

    probs = predict(task, gpt2, encoded, batch_size=3, on_batch=on_batch, progress=False).probs
    assert sizes == [3, 3, 1] and sorted(seen) == list(range(7))
    np.testing.assert_allclose(np.array([seen[i] for i in range(7)]), probs)
    first_batch = sorted(range(7), key=lambda i: -encoded[i].n_tokens)[:3]
    assert {encoded[i].n_tokens for i in first_batch} >= {max(e.n_tokens for e in encoded)}


def test_literal_endoftext_is_text_not_padding(gpt2):
    task = get_task("imdb_zeroshot")
    text = f"I loved the acting {EOS} and the music was great"
    encoder = make_encoder(task, gpt2)
    literal = encoder.encode(text)
    eos = gpt2.tokenizer.eos_token_id
    assert eos == gpt2.tokenizer.pad_token_id and eos not in literal.ids
    as_special = Encoded(gpt2.tokenizer(encoder.render(text))["input_ids"], False)
    assert eos in as_special.ids
    p_literal = predict(task, gpt2, [literal], progress=False).probs
    p_special = predict(task, gpt2, [as_special], progress=False).probs
    assert np.abs(p_literal - p_special).max() > 1e-3


@pytest.mark.parametrize(("fixture", "task_name"), [("gpt2", "imdb_zeroshot"), ("gpt2_clf", "imdb_classifier")])
def test_pad_id_inside_or_at_the_end_of_an_input_is_not_mistaken_for_padding(fixture, task_name, request):
    """The last real position comes from lengths, never from searching the pad id."""
    loaded = request.getfixturevalue(fixture)
    task = get_task(task_name)
    tok = loaded.tokenizer
    pad = tok.pad_token_id
    base = make_encoder(task, loaded).encode("The plot was boring and the ending was awful").ids
    inputs = [
        Encoded(base[:4] + [pad] + base[4:], False),   # pad id in the middle
        Encoded(base + [pad], False),                  # pad id as the last real token
        Encoded(base + [pad, pad] + base[:3], False),  # two in a row, then text
        Encoded(base * 3, False),                      # the longest: the others get padded
    ]
    batch = build_scorer(loaded.model, tok, task).score(inputs).double().numpy()
    if task.kind == "zeroshot":
        flat = [tok(w, add_special_tokens=False)["input_ids"][0] for w in task.label_words]
        with torch.no_grad():
            want = [torch.log_softmax(loaded.model(input_ids=torch.tensor([e.ids])).logits[0, -1].double(), -1)[flat]
                    .numpy() for e in inputs]
    else:
        want = [_reference_head(loaded.model, e.ids) for e in inputs]
    np.testing.assert_allclose(batch, np.array(want), atol=1e-4)
    single = np.array([build_scorer(loaded.model, tok, task).score([e]).double().numpy()[0] for e in inputs])
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_nan_scores_are_a_user_error(gpt2, monkeypatch):
    task = get_task("imdb_zeroshot")
    encoded = _encode(task, gpt2, ["fine", "bad"])

    class NaNScorer:
        method, label_tokens = "nan", None

        def score(self, batch):
            return torch.full((len(batch), 2), float("nan"))

    monkeypatch.setattr("harness.backends.hf.build_scorer", lambda *a: NaNScorer())
    with pytest.raises(UserError, match="NaN/inf scores"):
        predict(task, gpt2, encoded, progress=False)


def test_auto_gpu_budget_backs_off_on_out_of_memory(gpt2, monkeypatch):
    """`auto` on a GPU starts at its padded-token budget and halves it until a batch fits."""
    task = get_task("imdb_zeroshot")
    encoded = _encode(task, gpt2, [f"review number {i} was " + "good " * i for i in range(12)])
    real = build_scorer(gpt2.model, gpt2.tokenizer, task)
    padded = []

    class GpuLikeScorer:
        method, label_tokens = real.method, real.label_tokens

        def score(self, batch):
            padded.append(len(batch) * max(e.n_tokens for e in batch))
            if padded[-1] > 40:  # this "GPU" holds 40 padded tokens
                raise torch.OutOfMemoryError("CUDA out of memory")
            return real.score(batch)

    auto = plan_batches("auto", torch.device("cuda"))
    assert auto.max_tokens is not None and auto.max_tokens > 0 and auto.max_examples > 0
    monkeypatch.setattr("harness.backends.hf.plan_batches", lambda *a: auto)
    monkeypatch.setattr("harness.backends.hf.build_scorer", lambda *a: GpuLikeScorer())
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    probs = predict(task, gpt2, encoded, progress=False).probs
    first_fit = next(i for i, p in enumerate(padded) if p <= 40)
    assert first_fit >= 2  # started at the GPU budget, ran out of memory and halved, more than once
    monkeypatch.undo()
    np.testing.assert_allclose(probs, predict(task, gpt2, encoded, batch_size=1, progress=False).probs, atol=1e-4)


def test_out_of_memory_halves_the_batch(gpt2, monkeypatch):
    task = get_task("imdb_zeroshot")
    encoded = _encode(task, gpt2, [f"review number {i} was good" for i in range(6)])
    real = build_scorer(gpt2.model, gpt2.tokenizer, task)
    sizes = []

    class SmallMemoryScorer:
        method, label_tokens = real.method, real.label_tokens

        def score(self, batch):
            sizes.append(len(batch))
            if len(batch) > 2:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return real.score(batch)

    monkeypatch.setattr("harness.backends.hf.build_scorer", lambda *a: SmallMemoryScorer())
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    probs = predict(task, gpt2, encoded, batch_size=8, progress=False).probs
    assert sizes == [6, 4, 2, 2, 2]
    monkeypatch.undo()
    np.testing.assert_allclose(probs, predict(task, gpt2, encoded, batch_size=1, progress=False).probs, atol=1e-4)
