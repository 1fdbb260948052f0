"""harness.scoring.encoding: prompt rendering, truncation inside the review only (trap 3), literal
special-token strings kept as text (trap 2), label-word tokenization (trap 1)."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.scoring.encoding import Encoded, Encoder, label_token_ids
from harness.scoring.inference import make_encoder
from tasks import get_task

EOS = "<|endoftext|>"


def _full(tokenizer, text):
    enc = tokenizer(text, return_offsets_mapping=True, split_special_tokens=True)
    return enc["input_ids"], enc["offset_mapping"]


def _check_truncation(encoder: Encoder, text: str, side: str) -> Encoded:
    """Independent check of one encoding against the untruncated tokenization of the full prompt."""
    full, offsets = _full(encoder.tokenizer, encoder.render(text))
    enc = encoder.encode(text)
    limit = encoder.max_tokens
    if len(full) <= limit:
        assert enc.ids == full and not enc.truncated and enc.n_tokens == len(full)
        return enc
    assert enc.truncated and enc.n_tokens == len(enc.ids) == limit
    start, end = len(encoder.prefix), len(encoder.prefix) + len(text)
    # Tokens holding any prompt character (before or after the review) are all kept, in place.
    p = sum(1 for a, _ in offsets if a < start)
    q = sum(1 for _, b in offsets if b > end)
    assert enc.ids[:p] == full[:p], "prompt prefix was cut"
    assert enc.ids[len(enc.ids) - q:] == full[len(full) - q:], "prompt suffix was cut"
    kept = limit - p - q
    middle = enc.ids[p : len(enc.ids) - q]
    if side == "left":  # the end of the review survives
        assert middle == full[len(full) - q - kept : len(full) - q]
    else:  # the start of the review survives
        assert middle == full[p : p + kept]
    return enc


def test_short_review_encodes_exactly_like_the_full_prompt(gpt2_tokenizer):
    task = get_task("imdb_zeroshot")
    encoder = Encoder(task, gpt2_tokenizer, 128)
    text = "Great film.<br /><br />I loved it"
    assert encoder.render(text) == f"Review: {text}\nSentiment:"
    enc = encoder.encode(text)
    assert enc.ids == gpt2_tokenizer(encoder.render(text))["input_ids"]
    assert not enc.truncated and enc.n_tokens == len(enc.ids)
    assert encoder.decode(enc) == encoder.render(text)  # HTML stays as the model's input text
    assert [e.ids for e in encoder.encode_many([text, "bad"])] == [enc.ids, encoder.encode("bad").ids]


def test_literal_endoftext_in_a_review_stays_plain_text(gpt2_tokenizer):
    encoder = Encoder(get_task("imdb_zeroshot"), gpt2_tokenizer, 128)
    text = f"A fine film {EOS} with a twist"
    enc = encoder.encode(text)
    eos = gpt2_tokenizer.eos_token_id
    assert eos not in enc.ids
    assert eos in gpt2_tokenizer(encoder.render(text))["input_ids"]  # what a naive encode would give
    assert encoder.decode(enc) == encoder.render(text)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("limit", [24, 40, 96])
def test_truncation_cuts_only_the_review(gpt2_tokenizer, synth_reviews, side, limit):
    encoder = Encoder(get_task("imdb_zeroshot", truncation_side=side), gpt2_tokenizer, limit)
    results = [_check_truncation(encoder, r["text"], side) for r in synth_reviews(30, seed=3)]
    assert any(e.truncated for e in results) and any(not e.truncated for e in results)


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_keeps_bos_and_prompt_with_a_bos_adding_tokenizer(llama_tokenizer, synth_reviews, side):
    encoder = Encoder(get_task("imdb_zeroshot", truncation_side=side), llama_tokenizer, 48)
    bos = llama_tokenizer.bos_token_id
    for r in synth_reviews(12, seed=4):
        enc = _check_truncation(encoder, r["text"], side)
        assert enc.ids[0] == bos and enc.ids.count(bos) == 1


def test_left_and_right_truncation_keep_opposite_ends(gpt2_tokenizer):
    text = "first words come here " + " ".join(["the plot was slow"] * 40) + " but the ending was wonderful"
    left = Encoder(get_task("imdb_zeroshot", truncation_side="left"), gpt2_tokenizer, 32)
    right = Encoder(get_task("imdb_zeroshot", truncation_side="right"), gpt2_tokenizer, 32)
    lt, rt = left.decode(left.encode(text)), right.decode(right.encode(text))
    assert lt.startswith("Review: ") and lt.endswith("but the ending was wonderful\nSentiment:")
    assert "first words" not in lt
    assert rt.startswith("Review: first words come here") and rt.endswith("\nSentiment:")
    assert "wonderful" not in rt


def test_left_truncation_keeps_the_prompt_space_merged_into_the_first_word(gpt2_tokenizer):
    encoder = Encoder(get_task("imdb_zeroshot"), gpt2_tokenizer, 20)
    text = "I" + " really" * 60 + " hated it"
    first = gpt2_tokenizer(encoder.render(text))["input_ids"][:3]
    assert gpt2_tokenizer.convert_ids_to_tokens(first) == ["Review", ":", "ĠI"]  # ' I' holds the prompt's space
    enc = encoder.encode(text)
    assert enc.ids[:3] == first
    assert encoder.decode(enc).startswith("Review: I really")


def test_classifier_template_is_the_bare_review(gpt2_tokenizer):
    task = get_task("imdb_classifier")
    encoder = Encoder(task, gpt2_tokenizer, 16)
    text = " good" * 10 + " bad" * 30  # 40 single tokens
    assert encoder.render(text) == text and len(gpt2_tokenizer(text)["input_ids"]) == 40
    enc = encoder.encode(text)  # default side: left, so the end ("bad ...") is kept
    assert enc.truncated and enc.n_tokens == 16 and encoder.decode(enc) == " bad" * 16
    right = Encoder(get_task("imdb_classifier", truncation_side="right"), gpt2_tokenizer, 16)
    assert right.decode(right.encode(text)) == " good" * 10 + " bad" * 6


def test_prompt_too_long_for_the_budget_is_a_user_error(gpt2_tokenizer):
    task = get_task("imdb_zeroshot", prompt="Please read this review carefully: {text}\nNow answer, the sentiment is:")
    with pytest.raises(UserError, match="the prompt alone takes .* tokens of the 8 allowed"):
        Encoder(task, gpt2_tokenizer, 8)


def test_label_token_ids_single_and_multi_token(gpt2_tokenizer):
    assert label_token_ids(get_task("imdb_zeroshot"), gpt2_tokenizer) == [
        gpt2_tokenizer(" negative", add_special_tokens=False)["input_ids"],
        gpt2_tokenizer(" positive", add_special_tokens=False)["input_ids"],
    ]
    task = get_task("imdb_zeroshot", label_words=" dreadful, superb!")
    ids = label_token_ids(task, gpt2_tokenizer)
    assert all(len(i) > 1 for i in ids)
    assert gpt2_tokenizer.decode(ids[0]) == " dreadful" and gpt2_tokenizer.decode(ids[1]) == " superb!"


def test_label_word_that_tokenizes_to_nothing_is_a_user_error():
    class EmptyTokenizer:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": []}

    with pytest.raises(UserError, match="label word ' negative' for 'negative' tokenizes to nothing"):
        label_token_ids(get_task("imdb_zeroshot"), EmptyTokenizer())


def test_make_encoder_caps_at_context_and_reserves_room_for_label_tokens(gpt2):
    assert gpt2.context_length == 128
    assert make_encoder(get_task("imdb_zeroshot"), gpt2).max_tokens == 128  # task says 1024
    assert make_encoder(get_task("imdb_zeroshot", max_tokens="None"), gpt2).max_tokens == 128
    assert make_encoder(get_task("imdb_zeroshot", max_tokens="50"), gpt2).max_tokens == 50
    multi = get_task("imdb_zeroshot", label_words=" dreadful, superb!")
    longest = max(len(ids) for ids in label_token_ids(multi, gpt2.tokenizer))
    assert make_encoder(multi, gpt2).max_tokens == 128 - (longest - 1)
