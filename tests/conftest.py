"""Shared fixtures: tiny tokenizers and models built in code (nothing from the network),
synthetic reviews, data files, and a registry that every test leaves as it found it.

Models are random, so their answers are meaningless; tests compare them against
independent computations, against themselves (batch size, padding) or check the plumbing.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub/datasets: they read these once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import csv  # noqa: E402
import random  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

EOS = "<|endoftext|>"
_VOCABULARY = (
    "the movie film was is great terrible acting plot story good bad awful wonderful boring loved hated it this "
    "a an and but not very really I we they review sentiment positive negative actor actress director scene "
    "scenes music score ending beginning characters character script dialogue funny sad slow fast long short "
    "best worst ever never again watch watched seen saw time minutes hours love hate fun dull brilliant mess "
    "cast camera shot shots year years old new family friends night day world life man woman people thing"
)
WORDS = tuple(_VOCABULARY.split())
LABEL_NAMES = ("negative", "positive")


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _train_bpe(special: list[str]) -> Any:
    """A byte-level BPE (GPT-2 style) trained on synthetic prompts; ' positive'/' negative' become single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    rng = random.Random(0)
    corpus = [f"Review: {_sentence(rng, 14)}.<br /><br />{_sentence(rng, 6)}!\nSentiment: positive negative"
              for _ in range(400)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=special, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return tok


@pytest.fixture(scope="session")
def gpt2_tokenizer() -> Any:
    """GPT-2-style tokenizer: byte-level BPE, `<|endoftext|>` as BOS/EOS, no pad token, no BOS added."""
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast(tokenizer_object=_train_bpe([EOS]), bos_token=EOS, eos_token=EOS, unk_token=EOS)


@pytest.fixture(scope="session")
def llama_tokenizer() -> Any:
    """Llama-style tokenizer: adds a BOS `<s>` to every input (offset (0, 0)), EOS `</s>`, no pad token."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = _train_bpe(["<s>", "</s>"])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _gpt2_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import GPT2Config

    eos = tokenizer.eos_token_id
    return GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=128,
                      bos_token_id=eos, eos_token_id=eos, **extra)


def _llama_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **extra)


def _label_config(labels: tuple[str, ...]) -> dict[str, Any]:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def gpt2_dir(models_root: Path, gpt2_tokenizer: Any) -> Path:
    """A random tiny GPT2LMHeadModel (context 128) saved with its tokenizer."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    return _save(GPT2LMHeadModel(_gpt2_config(gpt2_tokenizer)), gpt2_tokenizer, models_root / "gpt2")


@pytest.fixture(scope="session")
def make_classifier_dir(models_root: Path, gpt2_tokenizer: Any) -> Callable[[tuple[str, ...]], Path]:
    """Folder of a random tiny GPT2ForSequenceClassification for the given label names (cached)."""
    from transformers import GPT2ForSequenceClassification

    made: dict[tuple[str, ...], Path] = {}

    def make(labels: tuple[str, ...] = LABEL_NAMES) -> Path:
        if labels not in made:
            torch.manual_seed(1)
            model = GPT2ForSequenceClassification(_gpt2_config(gpt2_tokenizer, **_label_config(labels)))
            made[labels] = _save(model, gpt2_tokenizer, models_root / f"gpt2_clf_{len(made)}")
        return made[labels]

    return make


@pytest.fixture(scope="session")
def gpt2_clf_dir(make_classifier_dir: Callable[[tuple[str, ...]], Path]) -> Path:
    """A random tiny GPT2ForSequenceClassification (negative/positive): saved as a trained head."""
    return make_classifier_dir(LABEL_NAMES)


@pytest.fixture(scope="session")
def llama_dir(models_root: Path, llama_tokenizer: Any) -> Path:
    """A random tiny LlamaForCausalLM (rotary positions, BOS-adding tokenizer)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(2)
    return _save(LlamaForCausalLM(_llama_config(llama_tokenizer)), llama_tokenizer, models_root / "llama")


@pytest.fixture(scope="session")
def llama_clf_dir(models_root: Path, llama_tokenizer: Any) -> Path:
    """A random tiny LlamaForSequenceClassification (negative/positive)."""
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(3)
    model = LlamaForSequenceClassification(_llama_config(llama_tokenizer, **_label_config(LABEL_NAMES)))
    return _save(model, llama_tokenizer, models_root / "llama_clf")


def _load(folder: Path, kind: str) -> Any:
    from harness.backends.loading import load_model

    return load_model(str(folder), kind, device="cpu", dtype="float32")  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def gpt2(gpt2_dir: Path) -> Any:
    """The tiny GPT-2 LM loaded through harness.backends.loading (read-only: do not mutate)."""
    return _load(gpt2_dir, "causal_lm")


@pytest.fixture(scope="session")
def gpt2_clf(gpt2_clf_dir: Path) -> Any:
    return _load(gpt2_clf_dir, "classifier")


@pytest.fixture(scope="session")
def llama(llama_dir: Path) -> Any:
    return _load(llama_dir, "causal_lm")


@pytest.fixture(scope="session")
def llama_clf(llama_clf_dir: Path) -> Any:
    return _load(llama_clf_dir, "classifier")


def make_reviews(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Synthetic reviews with alternating labels: some hold `<br />`, some a literal `<|endoftext|>`,
    some are far longer than the tiny models' 128-token context."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = _sentence(rng, rng.randint(3, 25))
        if i % 4 == 1:
            text += "<br /><br />" + _sentence(rng, 5)
        if i % 5 == 2:
            text = f"{_sentence(rng, 4)} {EOS} {text}"
        if i % 6 == 3:
            text = _sentence(rng, 220) + ". " + text
        rows.append({"text": text[0].upper() + text[1:] + ".", "label": i % 2})
    return rows


@pytest.fixture
def reviews() -> list[dict[str, Any]]:
    """24 synthetic labelled reviews (see `make_reviews`)."""
    return make_reviews(24)


@pytest.fixture(scope="session")
def synth_reviews() -> Callable[..., list[dict[str, Any]]]:
    """`make_reviews` itself, for tests that need another size or seed."""
    return make_reviews


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` as CSV, JSONL, JSON or parquet, chosen by the suffix of `path`."""
    import pandas as pd

    df = pd.DataFrame(rows)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix == ".json":
        df.to_json(path, orient="records", force_ascii=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    else:
        raise ValueError(path)
    return path


@pytest.fixture
def write_data(tmp_path: Path) -> Callable[..., Path]:
    """write_data(rows, name="data.csv") -> path of a data file in a fresh tmp folder."""

    def write(rows: list[dict[str, Any]], name: str = "data.csv") -> Path:
        return write_rows(tmp_path / name, rows)

    return write


@pytest.fixture(scope="session")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared 12-review CSV (text,label) for end-to-end runs."""
    return write_rows(tmp_path_factory.mktemp("data") / "reviews.csv", make_reviews(12, seed=7))


@pytest.fixture(autouse=True)
def _restore_task_registry() -> Any:
    """Tests may register tasks; each test starts from and leaves the built-in registry."""
    from tasks import families, files, registry

    saved = [(table, dict(table)) for table in (registry._REGISTRY, families._FAMILIES, files._INCLUDED)]
    yield
    for table, entries in saved:
        table.clear()
        table.update(entries)


@pytest.fixture(autouse=True)
def _score_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each test caches scores in a folder of its own: never ~/.cache/tenser, never another test's scores
    (its own MonkeyPatch, so a test's `monkeypatch.undo()` keeps it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TENSER_CACHE", str(tmp_path_factory.mktemp("score_cache")))
        yield

