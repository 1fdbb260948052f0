"""tasks: the Task record's checks, the registry's loud errors, -T overrides, include files,
and a smoke test of every registered task through `tenser run` on tiny models."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.store.runs import load_run
from tasks import Task, TaskError, get_task, include_file, list_tasks, register_task
from tenser.cli import main


def _zeroshot(name: str = "tmp_task", **fields: object) -> Task:
    base = dict(name=name, kind="zeroshot", labels=("neg", "pos"), dataset="someone/data",
                prompt="Text: {text}\nAnswer:", label_words=(" neg", " pos"))
    return Task(**{**base, **fields})  # type: ignore[arg-type]


# --- built-ins and the registry ---------------------------------------------------------

def test_builtin_tasks_are_registered_sorted_and_well_formed():
    tasks = list_tasks()
    names = [t.name for t in tasks]
    assert {"imdb_zeroshot", "imdb_classifier"} <= set(names)
    assert names == sorted(names)
    zs = get_task("imdb_zeroshot")
    assert zs.kind == "zeroshot" and zs.labels == ("negative", "positive")
    assert zs.label_words == (" negative", " positive")
    assert not zs.prompt[-1].isspace() and zs.prompt.count("{text}") == 1
    assert get_task("imdb_classifier").kind == "classifier"
    assert json.loads(json.dumps(zs.to_dict()))["label_words"] == [" negative", " positive"]


def test_register_adds_and_duplicate_raises():
    task = _zeroshot("my_task")
    assert register_task(task) is task
    assert get_task("my_task") is task
    assert task in list_tasks()
    with pytest.raises(TaskError, match="'my_task' is already registered"):
        register_task(_zeroshot("my_task", prompt="Other {text}!"))
    assert get_task("my_task") is task  # the first one stays
    with pytest.raises(TaskError, match="already registered"):
        register_task(get_task("imdb_zeroshot"))


def test_unknown_task_suggests_nearest_and_lists_known():
    with pytest.raises(TaskError) as err:
        get_task("imdb-zeroshot")
    msg = str(err.value)
    assert "Unknown task 'imdb-zeroshot'" in msg
    assert "Did you mean 'imdb_zeroshot'?" in msg
    assert "Known: imdb_classifier, imdb_zeroshot" in msg
    with pytest.raises(TaskError) as err:
        get_task("qqqqqqqq")
    assert "Did you mean" not in str(err.value) and "imdb_classifier" in str(err.value)


# --- get_task overrides (-T key=value) --------------------------------------------------

def test_overrides_return_a_new_task_and_leave_the_registered_one():
    before = get_task("imdb_zeroshot")
    task = get_task("imdb_zeroshot", max_tokens="64", truncation_side="right", split="validation")
    assert (task.max_tokens, task.truncation_side, task.split) == (64, "right", "validation")
    assert get_task("imdb_zeroshot") == before and before.max_tokens == 1024
    assert get_task("imdb_zeroshot") is before


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_tokens", "64", 64),
        ("max_tokens", "None", None),
        ("max_tokens", "null", None),
        ("max_tokens", 32, 32),
        ("dataset_config", "none", None),
        ("dataset_config", "plain_text", "plain_text"),
        ("label_words", " bad, good", (" bad", " good")),
        ("label_words", [" bad", " good"], (" bad", " good")),
        ("prompt", "Q: {text}\\nA:", "Q: {text}\nA:"),
        ("tags", "a,b", ("a", "b")),
        ("text_column", "review", "review"),
    ],
)
def test_override_strings_are_coerced_to_field_types(key, value, expected):
    assert getattr(get_task("imdb_zeroshot", **{key: value}), key) == expected


def test_override_labels_as_comma_list_for_a_classifier():
    task = get_task("imdb_classifier", labels="bad,ok,good")
    assert task.labels == ("bad", "ok", "good")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"max_tokens": "lots"}, r"-T max_tokens='lots': expected a whole number"),
        ({"max_tokens": "4"}, "max_tokens must be at least 8"),
        ({"truncation_side": "middle"}, "truncation_side 'middle'"),
        ({"kind": "regression"}, "kind 'regression' is not one of zeroshot, classifier"),
        ({"prompt": "no placeholder"}, "placeholder"),
        ({"prompt": "Review: {text}\\nSentiment: "}, "ends in whitespace"),
        ({"label_words": " one"}, "one label word per label"),
        ({"max_tokes": "5"}, "Unknown task field 'max_tokes'. Did you mean 'max_tokens'?"),
        ({"name": "other"}, "Unknown task field 'name'"),
    ],
)
def test_bad_overrides_raise_task_error(overrides, match):
    with pytest.raises(TaskError, match=match):
        get_task("imdb_zeroshot", **overrides)


# --- Task checks --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"name": "bad name!"}, "name must be letters"),
        ({"name": ""}, "name must be letters"),
        ({"labels": ("only",), "label_words": (" only",)}, "at least two distinct"),
        ({"labels": ("a", "a")}, "at least two distinct"),
        ({"prompt": "Text without the placeholder:"}, "must name its input columns"),
        ({"prompt": "{text} and {text}:"}, "uses column 'text' twice"),
        ({"prompt": "{text} and {}:"}, "must name its input columns"),
        ({"prompt": "{a}: {text}", "text_column": "a"}, "uses column 'a' twice"),
        ({"prompt": "{a}: {b}", "pair_column": "b"}, "pair_column applies to classifier tasks"),
        ({"prompt": "{a}: {b}", "truncate_column": "c"}, r"truncate_column 'c' is not one of .*\(a, b\)"),
        ({"label_words": (" neg",)}, "one label word per label"),
        ({"label_words": (" neg", "  ")}, "not blank"),
        ({"label_words": (" x", " x")}, "distinct"),
        ({"max_tokens": 7}, "at least 8"),
        ({"truncation_side": "both"}, "must be 'left' or 'right'"),
    ],
)
def test_task_checks_reject_unusable_fields(fields, match):
    with pytest.raises(TaskError, match=match):
        _zeroshot(**fields)


def test_prompt_ending_in_whitespace_with_spaced_label_words_is_refused_with_the_fix():
    with pytest.raises(TaskError) as err:
        _zeroshot(prompt="Text: {text}\nAnswer: ")
    msg = str(err.value)
    assert "ends in whitespace" in msg and repr("Text: {text}\nAnswer:") in msg
    # Without a leading space on the label words the trailing space is where the word boundary is.
    ok = _zeroshot(prompt="Text: {text}\nAnswer: ", label_words=("neg", "pos"))
    assert ok.prompt.endswith(" ")


def test_classifier_tasks_need_no_prompt():
    task = Task(name="clf", kind="classifier", labels=("a", "b"), dataset="x/y")
    assert task.prompt == "" and task.label_words == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.name = "other"  # type: ignore[misc]


def test_label_words_join_the_prompt_on_a_bpe_token_boundary(gpt2_tokenizer):
    """Trap 1: tokenizing prompt + label word equals prompt tokens + label tokens, for every zero-shot task."""
    zeroshot = [t for t in list_tasks() if t.kind == "zeroshot"]
    assert zeroshot
    for task in zeroshot:
        prompt = task.prompt.format(text="The acting was great and the plot was wonderful.")
        base = gpt2_tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for word in task.label_words:
            word_ids = gpt2_tokenizer(word, add_special_tokens=False)["input_ids"]
            joint = gpt2_tokenizer(prompt + word, add_special_tokens=False)["input_ids"]
            assert joint == base + word_ids, (task.name, word)
    # The tiny vocabulary has the built-in words as single tokens, with the space inside the token.
    for word in (" negative", " positive"):
        ids = gpt2_tokenizer(word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and gpt2_tokenizer.convert_ids_to_tokens(ids)[0] == "Ġ" + word.strip()


# --- include files --------------------------------------------------------------------------

def test_include_python_file_registers_its_tasks(tmp_path):
    path = tmp_path / "mytasks.py"
    path.write_text(
        "from tasks import Task, register_task\n"
        "register_task(Task(name='py_task', kind='zeroshot', labels=('bad', 'good'), dataset='me/reviews',\n"
        "                   prompt='Review: {text}\\nVerdict:', label_words=(' bad', ' good')))\n"
    )
    new = include_file(path)
    assert [t.name for t in new] == ["py_task"]
    assert get_task("py_task").label_words == (" bad", " good")
    assert include_file(path) == new and include_file(str(path)) == new  # loaded once per process
    again = tmp_path / "again.py"
    again.write_text(path.read_text())
    with pytest.raises(TaskError, match="already registered"):  # another file with the same name still fails
        include_file(again)


def test_include_toml_file_single_table_and_array(tmp_path):
    single = tmp_path / "one.toml"
    single.write_text(
        '[task]\nname = "toml_one"\nkind = "zeroshot"\nlabels = ["bad", "good"]\ndataset = "me/r"\n'
        'prompt = "R: {text}\\nV:"\nlabel_words = [" bad", " good"]\nmax_tokens = 64\n'
    )
    many = tmp_path / "many.toml"
    many.write_text(
        '[[task]]\nname = "toml_a"\nkind = "classifier"\nlabels = ["x", "y", "z"]\ndataset = "me/a"\n\n'
        '[[task]]\nname = "toml_b"\nkind = "classifier"\nlabels = ["x", "y"]\ndataset = "me/b"\n'
        'truncation_side = "right"\n'
    )
    (one,) = include_file(single)
    assert one.name == "toml_one" and one.labels == ("bad", "good") and isinstance(one.labels, tuple)
    assert one.prompt == "R: {text}\nV:" and one.max_tokens == 64
    assert [t.name for t in include_file(many)] == ["toml_a", "toml_b"]
    assert get_task("toml_a").labels == ("x", "y", "z") and get_task("toml_b").truncation_side == "right"


def test_include_json_file_object_and_list(tmp_path):
    obj = tmp_path / "one.json"
    obj.write_text(json.dumps({"name": "json_one", "kind": "classifier", "labels": ["a", "b"], "dataset": "me/j"}))
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps([
        {"name": "json_a", "kind": "zeroshot", "labels": ["a", "b"], "dataset": "me/j",
         "prompt": "{text} =>", "label_words": [" a", " b"], "tags": ["t"]},
        {"name": "json_b", "kind": "classifier", "labels": ["a", "b"], "dataset": "me/j"},
    ]))
    assert [t.name for t in include_file(obj)] == ["json_one"]
    assert [t.name for t in include_file(lst)] == ["json_a", "json_b"]
    assert get_task("json_a").label_words == (" a", " b") and get_task("json_a").tags == ("t",)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("bad.toml", "name = [", "not valid TOML"),
        ("bad.json", "{", "not valid JSON"),
        ("field.json", '{"name": "j", "kind": "classifier", "labels": ["a", "b"], "dataset": "d", "lables": 1}',
         "Unknown task field 'lables'. Did you mean 'labels'?"),
        ("missing.json", '{"name": "j", "kind": "classifier", "dataset": "d"}', "labels"),
        ("scalar.json", "[1, 2]", "expected a table of task fields"),
        ("prompt.toml", 'name = "t"\nkind = "zeroshot"\nlabels = ["a", "b"]\ndataset = "d"\nprompt = "no slot"\n'
         'label_words = [" a", " b"]\n', "task 't': prompt must name its input columns"),
        ("tasks.yaml", "name: t", "expected a .py, .toml or .json file"),
    ],
)
def test_include_bad_files_raise_task_error_naming_the_file(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TaskError, match=match) as err:
        include_file(path)
    assert name in str(err.value) or "task 't'" in str(err.value)


def test_include_missing_file(tmp_path):
    with pytest.raises(TaskError, match="no such file"):
        include_file(tmp_path / "nope.toml")


# --- every registered task runs end to end ---------------------------------------------------

@pytest.mark.parametrize("name", [t.name for t in list_tasks()])
def test_every_registered_task_runs_end_to_end(name, tmp_path, gpt2_dir, make_classifier_dir, synth_reviews,
                                               write_data, capsys):
    task = get_task(name)
    rows = [{task.text_column: r["text"], task.label_column: task.labels[i % len(task.labels)]}
            for i, r in enumerate(synth_reviews(3 * len(task.labels), seed=11))]
    data = write_data(rows, "smoke.jsonl")
    model = gpt2_dir if task.kind == "zeroshot" else make_classifier_dir(task.labels)
    argv = ["run", "--task", name, "--model", str(model), "--data", str(data), "--out", str(tmp_path / "runs"),
            "--device", "cpu", "--batch-size", "4"]
    assert main(argv) == 0, capsys.readouterr().err
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    results, predictions = load_run(run_dir)
    assert results["task"]["name"] == name
    assert results["metrics"]["n"] == len(predictions) == len(rows)
    assert {p["pred"] for p in predictions} <= set(task.labels)
    for p in predictions:
        assert sum(p["probs"].values()) == pytest.approx(1.0)


# --- field types from task files (issue 24, item 4) ------------------------------------------

_TYPED_BASE = {"name": "typed", "kind": "zeroshot", "labels": ["neg", "pos"], "dataset": "me/d",
               "prompt": "T: {text}\nA:", "label_words": [" neg", " pos"]}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", 5, "a string"),
        ("prompt", 7, "a string"),
        ("label_words", 3, "a list of strings"),
        ("label_words", [1, 2], "a list of strings"),
        ("max_tokens", 512.0, "a whole number or none"),
        ("max_tokens", True, "a whole number or none"),
        ("shots", 2.0, "a whole number"),
        ("labels", "np", "a list of strings"),
        ("content_free", "N/A", "a list of strings"),
        ("chat_template", "false", "true or false"),
        ("variants", ["T2 {text}:", " n", " p"], "a list of lists of strings"),
        ("kind", 1, "one of 'zeroshot', 'classifier'"),
    ],
)
def test_task_file_fields_are_type_checked_naming_field_value_and_type(tmp_path, field, value, expected):
    path = tmp_path / f"typed_{field}.json"
    path.write_text(json.dumps({**_TYPED_BASE, field: value}))
    with pytest.raises(TaskError) as err:
        include_file(path)
    msg = str(err.value)
    assert str(path) in msg and f"{field} = {value!r}" in msg and f"must be {expected}" in msg
    assert "\n" not in msg


def test_toml_chat_template_string_is_refused_but_the_cli_override_still_coerces(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text('name = "chat_typed"\nkind = "zeroshot"\nlabels = ["a", "b"]\ndataset = "d"\n'
                    'prompt = "{text} =>"\nlabel_words = [" a", " b"]\nchat_template = "false"\n')
    with pytest.raises(TaskError, match="chat_template = 'false' must be true or false"):
        include_file(path)
    assert get_task("imdb_zeroshot", chat_template="false").chat_template is False
    assert get_task("imdb_zeroshot", chat_template="true").chat_template is True


def test_python_tasks_are_type_checked_too_and_lists_become_tuples():
    with pytest.raises(TaskError, match=r"labels = 'np' must be a list of strings"):
        _zeroshot("py_typed", labels="np")
    task = _zeroshot("py_typed", labels=["neg", "pos"], label_words=[" neg", " pos"])  # a list is a list
    assert task.labels == ("neg", "pos") and isinstance(task.label_words, tuple) and hash(task)


def test_non_utf8_task_file_is_one_line_naming_the_file(tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\nkind = "classifier"\nlabels = ["a", "b"]\n'.encode("latin-1"))
    with pytest.raises(TaskError, match=r"latin1.toml: not UTF-8 text .*save it as UTF-8"):
        include_file(path)
    assert main(["tasks", "--include", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
