"""Multi-field tasks (tasks.fields): prompts over named columns, truncation of one field only with the
whole-prompt tokenization kept exact, (text, pair) for classifier heads, and every use following the
fields: data, few-shot, calibration, cache, fine-tuning, run, report and the CLI's one-line errors."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from harness.data.examples import Example, load_examples
from harness.errors import UserError
from harness.scoring import calibration
from harness.scoring.encoding import Encoder
from harness.scoring.fewshot import with_demonstrations
from harness.store import cache
from harness.training.config import FinetuneConfig
from harness.training.data import encode_examples
from tasks import Task, TaskError, register_family
from tasks.families import classifier_twin
from tasks.fields import input_columns, placeholders, render
from tenser.cli import main

NLI = ("entailment", "neutral", "contradiction")
PROMPT = "{premise}\nReview: {hypothesis}\nSentiment:"  # words the tiny tokenizers know: a short prompt
WORDS = (" positive", " the", " negative")


def nli(**changes) -> Task:
    task = Task(name="nli_zeroshot", kind="zeroshot", labels=NLI, prompt=PROMPT, label_words=WORDS)
    return dataclasses.replace(task, **changes)


def _full(tokenizer, text):
    return tokenizer(text, split_special_tokens=True)["input_ids"]


@pytest.fixture(params=["gpt2_tokenizer", "llama_tokenizer"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


def test_placeholders_and_escapes():
    assert placeholders(PROMPT) == ["premise", "hypothesis"]
    assert placeholders("{{not}} a {text} {") == ["text"]
    assert render("{{x}} {text}: {b}", {"t": "A", "b": "B"}, "t") == "{x} A: B"
    assert input_columns(nli()) == ("premise", "hypothesis")
    assert input_columns(nli(prompt="Q: {question}\n{text}", text_column="passage")) == ("question", "passage")


def test_short_input_encodes_exactly_like_the_whole_prompt_and_label_word(tokenizer):
    encoder = Encoder(nli(), tokenizer, 100)
    values = {"premise": "the movie was great", "hypothesis": "I loved it"}
    enc = encoder.encode(values)
    text = encoder.render(values)
    assert text == "the movie was great\nReview: I loved it\nSentiment:"
    assert enc.ids == _full(tokenizer, text) and not enc.truncated and enc.cut == ""
    for word in WORDS:  # the label word continues the same ids as the whole string tokenized at once
        whole = _full(tokenizer, text + word)
        assert whole[: len(enc.ids)] == enc.ids


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("column", ["premise", "hypothesis"])
def test_only_the_truncate_column_gives_way(tokenizer, side, column):
    task = nli(truncate_column=column, truncation_side=side)
    other = "hypothesis" if column == "premise" else "premise"
    values = {column: "the plot was slow and the acting was bad " * 8, other: "a great film"}
    encoder = Encoder(task, tokenizer, 40)
    enc = encoder.encode(values)
    assert enc.truncated and enc.cut == column and enc.n_tokens == 40
    # Independent check: the cut field's tokens are a contiguous run of its own full tokenization, everything
    # else is the whole prompt's tokens unchanged.
    full = _full(tokenizer, encoder.render(values))
    excess = len(full) - 40
    offsets = tokenizer(encoder.render(values), split_special_tokens=True, return_offsets_mapping=True)["offset_mapping"]
    start = encoder.render(values).index(values[column])
    end = start + len(values[column])
    inside = [i for i, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
    kept = [i for i in range(len(full)) if i not in (inside[:excess] if side == "left" else inside[-excess:])]
    assert enc.ids == [full[i] for i in kept]
    assert values[other] in encoder.decode(enc) and encoder.decode(enc).endswith("\nSentiment:")


def test_longest_field_gives_way_by_default(gpt2_tokenizer):
    encoder = Encoder(nli(), gpt2_tokenizer, 40)
    enc = encoder.encode({"premise": "a film", "hypothesis": "the movie was good and the story " * 10})
    assert enc.cut == "hypothesis" and "a film" in encoder.decode(enc)
    enc = encoder.encode({"premise": "the movie was good and the story " * 10, "hypothesis": "a film"})
    assert enc.cut == "premise"


def test_other_fields_that_do_not_fit_are_one_line_naming_the_example(gpt2_tokenizer):
    encoder = Encoder(nli(truncate_column="hypothesis"), gpt2_tokenizer, 30)
    values = {"premise": "the movie was good and the story " * 10, "hypothesis": "a film"}
    with pytest.raises(UserError, match=r"example ex-7: \d+ tokens of prompt and other fields leave no room for "
                                        r"field 'hypothesis' \(\d+ tokens\) in 30 allowed") as err:
        encoder.encode_many([values], ids=["ex-7"])
    assert "\n" not in str(err.value)


def test_one_text_for_a_two_field_task_is_refused(gpt2_tokenizer):
    with pytest.raises(UserError, match=r"reads 2 fields \(premise, hypothesis\)"):
        Encoder(nli(), gpt2_tokenizer, 100).encode("just one")


@pytest.mark.parametrize("side", ["left", "right"])
def test_classifier_pair_uses_the_tokenizers_pair_encoding(tokenizer, side):
    task = Task(name="p", kind="classifier", labels=NLI, text_column="premise", pair_column="hypothesis",
                truncation_side=side, truncate_column="premise")
    encoder = Encoder(task, tokenizer, 20)
    short = {"premise": "the movie was great", "hypothesis": "I loved it"}
    assert encoder.encode(short).ids == tokenizer("the movie was great", "I loved it", split_special_tokens=True)["input_ids"]
    long = {"premise": "the plot was slow and the acting was bad " * 5, "hypothesis": "I loved it"}
    enc = encoder.encode(long)
    tokenizer.truncation_side = side  # the tokenizer's own truncation as the reference
    try:
        ref = tokenizer(long["premise"], long["hypothesis"], truncation="only_first", max_length=20,
                        split_special_tokens=True)["input_ids"]
    finally:
        tokenizer.truncation_side = "right"
    assert enc.truncated and enc.cut == "premise" and enc.ids == ref


def test_family_twin_carries_the_prompts_fields():
    twin = classifier_twin(nli(), "nli_classifier")
    assert (twin.kind, twin.text_column, twin.pair_column, twin.prompt) == ("classifier", "premise", "hypothesis", "")
    family = register_family(nli(truncate_column="premise"))
    assert family.classifier == "nli_classifier"
    with pytest.raises(TaskError, match="names 3 columns"):
        classifier_twin(nli(prompt="{a} {b} {c}:"), "x")


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def nli_rows(n: int = 12) -> list[dict]:
    premises = ["the movie was great", "the acting was bad", "a long and boring film", "I loved the music"]
    hyps = ["it was good", "it was awful", "the film was fun", "the score was great"]
    return [{"id": f"n{i}", "premise": premises[i % 4] + " " + "and the story " * (i % 3),
             "hypothesis": hyps[(i * 3) % 4], "label": NLI[i % 3]} for i in range(n)]


def test_examples_carry_every_field_and_a_missing_column_lists_the_columns(tmp_path):
    data = _write(tmp_path / "nli.csv", nli_rows())
    examples, _ = load_examples(nli(), data=str(data))
    assert examples[0].fields == {"premise": "the movie was great ", "hypothesis": "it was good"}
    assert examples[0].text == "the movie was great " and examples[1].label == 1
    with pytest.raises(UserError, match=r"no column 'hypotesis' \(columns: id, premise, hypothesis, label\); the "
                                        r"prompt's placeholder \{hypotesis\} must name a column"):
        load_examples(nli(prompt="{premise} {hypotesis}:"), data=str(data))


def test_fewshot_demonstrations_render_every_field(gpt2_tokenizer):
    demos = [Example("d0", "the movie was great", 0, {"premise": "the movie was great", "hypothesis": "it {was} good"}),
             Example("d1", "a bad film", 2, {"premise": "a bad film", "hypothesis": "it was good"})]
    shot = with_demonstrations(nli(), demos, gpt2_tokenizer, 128)
    assert placeholders(shot.prompt) == ["premise", "hypothesis"]  # a demo's braces stay text
    first = render(shot.prompt, {"premise": "P", "hypothesis": "H"}, "text")
    assert first.startswith("the movie was great\nReview: it {was} good\nSentiment: positive\n\n"
                            "a bad film\nReview: it was good\nSentiment: negative\n\n")
    assert first.endswith("P\nReview: H\nSentiment:")


def test_calibration_fills_every_field_and_pmi_uses_the_domain_prompt(gpt2):
    contextual = nli(calibration="contextual", content_free=("N/A",))
    _, info = calibration.correction(contextual, gpt2)
    filled = Encoder(contextual, gpt2.tokenizer, 128).render({"premise": "N/A", "hypothesis": "N/A"})
    assert filled == "N/A\nReview: N/A\nSentiment:" and len(info["content_free_each"]) == 1
    pmi = nli(calibration="pmi")
    assert calibration.domain_prompt(pmi) == "Sentiment:"
    _, info = calibration.correction(pmi, gpt2)
    assert info["domain_prompt"] == "Sentiment:"


def test_cache_key_covers_every_field():
    one = {"premise": "same", "hypothesis": "a"}
    assert cache.text_hash(one) != cache.text_hash({**one, "hypothesis": "b"})
    assert cache.text_hash(one) == cache.text_hash(dict(reversed(list(one.items()))))
    assert cache.text_hash("plain") == cache.text_hash("plain")


@pytest.mark.parametrize("objective", ["classifier", "prompt"])
def test_finetune_encodes_pairs_and_prompts_with_every_field(gpt2_tokenizer, objective):
    task = nli() if objective == "prompt" else classifier_twin(nli(), "nli_classifier")
    examples = [Example("a", "the movie was great", 0, {"premise": "the movie was great", "hypothesis": "I loved it"}),
                Example("b", "long " * 80, 2, {"premise": "the plot was slow " * 20, "hypothesis": "it was bad"})]
    features = encode_examples(task, gpt2_tokenizer, examples, FinetuneConfig(max_length=32, objective=objective))
    first = features[0]["input_ids"]
    if objective == "classifier":
        assert first == gpt2_tokenizer("the movie was great", "I loved it")["input_ids"]
    else:
        text = "the movie was great\nReview: I loved it\nSentiment: positive"
        assert first == gpt2_tokenizer(text)["input_ids"] and features[0]["labels"][-1] == first[-1]
    assert features.truncated == 1 and len(features[1]["input_ids"]) <= 32


def _task_file(tmp_path: Path, data: Path, **extra: str) -> Path:
    lines = ['[[family]]', 'name = "nli_zeroshot"', 'labels = ["entailment", "neutral", "contradiction"]',
             f'dataset = "{data}"', f'prompt = {json.dumps(PROMPT)}', 'label_words = [" positive", " the", " negative"]',
             *(f'{k} = {json.dumps(v)}' for k, v in extra.items())]
    path = tmp_path / "nli.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_three_label_pair_task_runs_and_reports_a_3x3_confusion_matrix(tmp_path, gpt2_dir, capsys):
    data = _write(tmp_path / "nli.csv", nli_rows())
    include = _task_file(tmp_path, data)
    out = tmp_path / "runs"
    code = main(["run", "--include", str(include), "--task", "nli_zeroshot", "--model", str(gpt2_dir), "--out",
                 str(out), "--device", "cpu", "-T", "max_tokens=24"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = out.glob("nli_zeroshot*__gpt2")  # -T max_tokens adds a settings suffix
    results = json.loads((run_dir / "results.json").read_text())
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert np.array(results["metrics"]["confusion_matrix"]).shape == (3, 3)
    assert records[0]["fields"] == {"premise": "the movie was great ", "hypothesis": "it was good"}
    cut = [r for r in records if r["truncated"]]
    assert cut and all(r["truncated_field"] == "premise" and r["n_tokens"] == 24 for r in cut)
    report = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(report)]) == 0
    page = report.read_text()
    assert '<span class="field-name">hypothesis</span>' in page and '<span class="field-name">premise</span>' in page


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [(["-T", "prompt={premise} {hypotesis}:"], "no column 'hypotesis' (columns: id, premise, hypothesis, label)"),
     (["-T", "prompt={premise} {premise}:"], "prompt uses column 'premise' twice"),
     (["-T", "truncate_column=hypothesis", "-T", "max_tokens=16"], "leave no room for field 'hypothesis'"),
     (["-T", "prompt={premise} {hypothesis}: "], "ends in whitespace")],
)
def test_field_mistakes_are_one_line_with_exit_code_2(tmp_path, gpt2_dir, capsys, extra, fragment):
    rows = [{**r, "premise": r["premise"] + " the story" * 20} for r in nli_rows(6)]
    include = _task_file(tmp_path, _write(tmp_path / "nli.csv", rows))
    code = main(["run", "--include", str(include), "--task", "nli_zeroshot", "--model", str(gpt2_dir), "--out",
                 str(tmp_path / "runs"), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and fragment in errors[0] and "Traceback" not in err, err


def test_a_two_field_family_gets_the_whole_product(tmp_path, gpt2_dir, capsys):
    """compare (pair fine-tune, noise floor, report), bench, gate and plan on a premise/hypothesis family."""
    data = tmp_path / "nli"
    data.mkdir()
    _write(data / "test.csv", nli_rows(12))
    _write(data / "train.csv", nli_rows(24))
    include = _task_file(tmp_path, data)
    out = tmp_path / "cmp"
    code = main(["compare", "--include", str(include), "--task", "nli", "--model", str(gpt2_dir), "--out", str(out),
                 "--epochs", "1", "--max-length", "48", "--device", "cpu", "--noise-examples", "4", "--yes"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    before, after, report = printed.out.split()
    pair = json.loads((Path(after) / "results.json").read_text())["task"]
    assert (pair["kind"], pair["text_column"], pair["pair_column"]) == ("classifier", "premise", "hypothesis")
    records = [json.loads(line) for line in (Path(after) / "predictions.jsonl").read_text().splitlines()]
    assert records[0]["fields"] == {"premise": "the movie was great ", "hypothesis": "it was good"}
    noise = json.loads((out / "noise.json").read_text())
    assert [e["n"] for e in noise["runs"]] == [4, 4] and noise["floor"] == 0
    page = Path(report).read_text()
    assert "Confusion" in page and '<span class="field-name">hypothesis</span>' in page
    assert main(["gate", before, after, "--margin", "0.99"]) in (0, 1)  # pairs the same examples: a verdict, not 2
    assert main(["plan", "--n", "12", "--change", "0.1"]) == 0
    bench = tmp_path / "bench"
    assert main(["bench", "--include", str(include), "--task", "nli", "--model", str(gpt2_dir), "--data",
                 str(data / "test.csv"), "--limit", "9", "--ways", "tenser,one_at_a_time", "--out", str(bench)]) == 0
    [scored] = json.loads((bench / "bench.json").read_text())["scoring"]
    assert scored["task"] == "nli_zeroshot" and scored["agreement"]["ok"]
