"""Tiny real models for the demo tests, built in code (no downloads): a byte-level BPE
tokenizer with " positive" / " negative" as single tokens, a random 2-layer GPT-2 LM and
a random 2-layer GPT-2 sequence classifier, each saved with its tokenizer; plus helpers to
start the real demo server on a free localhost port.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EOS = "<|endoftext|>"
WORDS = (  # a small movie-review vocabulary for the BPE to learn
    "the a an and but or not no never very really quite too so this that it is was were be been film movie "
    "story plot acting actor actress director script scene scenes ending music score camera character "
    "characters dialogue twist sequel cast performance great good bad awful terrible wonderful brilliant "
    "boring funny dull moving beautiful ugly loved hated liked enjoyed watched saw again time minutes hours "
    "best worst ever positive negative review sentiment masterpiece mess waste gem cheering avoid perfect "
    "slow fast long short clever stupid warm cold dark light real fake"
)


@dataclass(frozen=True)
class TinyModels:
    """Folders of the saved tiny models."""

    lm: Path  # GPT2LMHeadModel: the "pretrained" causal LM (and a prompt-tuned "fine-tuned" stand-in)
    classifier: Path  # GPT2ForSequenceClassification with labels negative/positive


def build_tokenizer() -> Any:
    """A ~500-token byte-level BPE trained on a small corpus, wrapped as a GPT-2 tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]  # a lazy alias in 5.x

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    words = WORDS.split()
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    corpus += ["Review: the film was great\nSentiment: positive", "Review: awful\nSentiment: negative"] * 50
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    wrapped = GPT2TokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS)
    for word in (" positive", " negative"):
        assert len(wrapped(word)["input_ids"]) == 1, f"{word!r} must be one token"
    return wrapped


def save_tiny_models(root: Path) -> TinyModels:
    """Save the tiny LM and classifier (with the tokenizer) under `root`."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    tokenizer = build_tokenizer()
    eos = tokenizer.convert_tokens_to_ids(EOS)
    common = dict(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=128,
                  bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(**common))
    clf = GPT2ForSequenceClassification(GPT2Config(  # type: ignore[call-arg]  # num_labels etc. go to PretrainedConfig
        **common, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1}, pad_token_id=eos))
    out = TinyModels(root / "tiny-lm", root / "tiny-classifier")
    for model, folder in ((lm, out.lm), (clf, out.classifier)):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(models: TinyModels, *, finetuned: Path | None = None) -> Any:
    """Launch the real demo (non-blocking) on a free port; the caller closes it."""
    from demo.app import serve

    return serve(str(models.lm), str(finetuned or models.classifier), port=free_port(), device="cpu",
                 prevent_thread_lock=True)
