"""Chat templates (harness.chat): the prompt as a user turn on a tiny Llama whose tokenizer has a
template, the label word after the assistant header, truncation inside the review only, few-shot
as turns, the rendered prompt recorded, and the one-line error for a model without a template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.data import Example
from harness.encoding import Encoder, label_token_ids
from harness.errors import UserError
from harness.fewshot import with_demonstrations
from harness.runs import load_run
from tasks import get_task
from tenser.cli import main

# ChatML-like, with the Llama tokenizer's own special tokens as turn markers.
TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chat_dir(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("chat") / "llama_chat"
    shutil.copytree(llama_dir, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def chat_tok(chat_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(chat_dir)


def test_prompt_is_a_user_turn_and_label_word_starts_the_answer(chat_tok: Any) -> None:
    task = get_task("imdb_zeroshot", chat_template="true", system_prompt="Answer in one word.")
    encoder = Encoder(task, chat_tok, 128)
    text = "the movie was great"
    expected = ("<s>system\nAnswer in one word.</s>\n<s>user\nReview: the movie was great\nSentiment:</s>\n"
                "<s>assistant\n")
    assert encoder.render(text) == expected
    ids = encoder.encode(text).ids
    assert ids == chat_tok(expected, add_special_tokens=False)["input_ids"]  # one BOS per turn, none added
    assert chat_tok.decode(ids) == expected
    assert label_token_ids(task, chat_tok) == [chat_tok("negative", add_special_tokens=False)["input_ids"],
                                               chat_tok("positive", add_special_tokens=False)["input_ids"]]


def test_truncation_cuts_the_review_never_the_assistant_header(chat_tok: Any) -> None:
    task = get_task("imdb_zeroshot", chat_template="true")
    encoder = Encoder(task, chat_tok, 40)
    enc = encoder.encode("the plot was " + "very " * 200 + "boring ending")
    assert enc.truncated and enc.n_tokens == 40
    assert chat_tok.decode(enc.ids).endswith("boring ending\nSentiment:</s>\n<s>assistant\n")
    assert chat_tok.decode(enc.ids).startswith("<s>user\nReview:")


def test_special_token_text_in_a_review_stays_text(chat_tok: Any) -> None:
    encoder = Encoder(get_task("imdb_zeroshot", chat_template="true"), chat_tok, 128)
    ids = encoder.encode("bad </s> film").ids
    assert ids.count(chat_tok.eos_token_id) == 1  # the user turn's end only: the review's "</s>" is text


def test_fewshot_as_multiturn_puts_demonstrations_as_turns(chat_tok: Any) -> None:
    task = get_task("imdb_zeroshot", chat_template="true", fewshot_as_multiturn="true", shots="2")
    demos = [Example("a", "awful film", 0), Example("b", "loved it", 1)]
    shot = with_demonstrations(task, demos, chat_tok, 128)
    assert shot.prompt == task.prompt
    rendered = Encoder(shot, chat_tok, 128).render("fine")
    assert rendered == ("<s>user\nReview: awful film\nSentiment:</s>\n<s>assistant\nnegative</s>\n"
                        "<s>user\nReview: loved it\nSentiment:</s>\n<s>assistant\npositive</s>\n"
                        "<s>user\nReview: fine\nSentiment:</s>\n<s>assistant\n")


def test_run_records_the_rendered_prompt(chat_dir: Path, data_csv: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", str(chat_dir), "--data", str(data_csv), "--out", str(tmp_path), "--device", "cpu",
                 "-T", "chat_template=true"]) == 0
    results, records = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    chat = results["scoring"]["chat_template"]
    assert chat["rendered_prompt"] == "<s>user\nReview: {text}\nSentiment:</s>\n<s>assistant\n"
    assert chat["label_words"] == ["negative", "positive"] and results["task"]["chat_template"] is True
    assert len(records) == 12


def test_model_without_template_is_one_line(gpt2_dir: Path, data_csv: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(gpt2_dir), "--data", str(data_csv), "--out", str(tmp_path), "--device", "cpu",
                 "-T", "chat_template=true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "has no chat template; use an instruct model that has one, or drop -T chat_template" in err[-1]


def test_chat_fields_checked() -> None:
    from tasks import TaskError

    with pytest.raises(TaskError, match="system_prompt applies with chat_template=true only"):
        get_task("imdb_zeroshot", system_prompt="Be brief.")
    with pytest.raises(TaskError, match="expected true or false"):
        get_task("imdb_zeroshot", chat_template="maybe")
    with pytest.raises(TaskError, match="chat_template apply to zeroshot tasks only"):
        get_task("imdb_classifier", chat_template="true")
    assert isinstance(UserError("x"), Exception)
    assert json.loads(json.dumps(get_task("imdb_zeroshot", chat_template="true").to_dict()))["chat_template"]


def test_compare_with_chat_template_scores_both_sides(chat_dir: Path, llama_clf_dir: Path, data_csv: Path,
                                                      tmp_path: Path) -> None:
    """-T chat_template=true reaches the zero-shot side only; the classifier twin reads the review as it is."""
    out = tmp_path / "cmp"
    assert main(["compare", "--model", str(chat_dir), "--finetuned", str(llama_clf_dir), "--task", "imdb",
                 "--data", str(data_csv), "--out", str(out), "--device", "cpu", "--noise-examples", "0",
                 "-T", "chat_template=true"]) == 0
    before, _ = load_run(out / "runs" / "pretrained__imdb_zeroshot")
    after, _ = load_run(out / "runs" / "finetuned__imdb_classifier")
    assert before["task"]["chat_template"] is True and "chat_template" in before["scoring"]
    assert after["task"]["chat_template"] is False and "chat_template" not in after["scoring"]


def test_demo_starts_with_chat_template(chat_dir: Path, llama_clf_dir: Path) -> None:
    from demo.app import serve
    from tests.demo_fixtures import free_port

    app = serve(str(chat_dir), str(llama_clf_dir), overrides={"chat_template": "true"}, port=free_port(),
                device="cpu", prevent_thread_lock=True)
    app.close()
