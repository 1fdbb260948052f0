"""tasks.families + tasks.files: a dataset declared once gives a zero-shot task and its
classifier twin; task files (Python, TOML, JSON) are loaded once and may name local data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data import load_examples
from harness.errors import UserError
from tasks import Task, TaskError, get_family, get_task, include_file, register_family
from tests.conftest import write_rows

REVIEWS = Task(name="rev_zeroshot", kind="zeroshot", labels=("bad", "ok", "good"), dataset="me/reviews",
               split="validation", text_column="sentence", prompt="Text: {text}\nVerdict:",
               label_words=(" bad", " ok", " good"), calibration="contextual", shots=1, description="My reviews")


def test_register_family_makes_the_classifier_twin() -> None:
    family = register_family(REVIEWS)
    assert (family.name, family.zeroshot, family.classifier) == ("rev", "rev_zeroshot", "rev_classifier")
    twin = get_task("rev_classifier")
    assert twin.kind == "classifier" and twin.prompt == "" and twin.label_words == () and twin.shots == 0
    for field in ("labels", "dataset", "split", "text_column", "description"):
        assert getattr(twin, field) == getattr(REVIEWS, field)
    assert get_family("rev") is get_family("rev_classifier") is get_family("rev_zeroshot")
    # -T overrides: zero-shot-only fields skip the classifier, data fields reach both
    assert family.task("classifier", calibration="none", split="test").split == "test"
    assert family.task("zeroshot", calibration="none").calibration == "none"


def test_family_errors_are_loud() -> None:
    with pytest.raises(TaskError, match="Unknown task family 'imbd'. Did you mean 'imdb'"):
        get_family("imbd")
    with pytest.raises(TaskError, match="already registered"):
        register_family(get_task("imdb_zeroshot"), name="imdb")
    other = Task(name="x_classifier", kind="classifier", labels=("bad", "ok", "good"), dataset="me/other")
    with pytest.raises(TaskError, match="same dataset"):
        register_family(REVIEWS, classifier=other)
    with pytest.raises(TaskError, match="must be a zeroshot task"):
        register_family(other)


def test_imdb_is_a_family() -> None:
    family = get_family("imdb")
    assert (family.zeroshot, family.classifier) == ("imdb_zeroshot", "imdb_classifier")


def test_toml_family_with_local_data_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_rows(tmp_path / "data" / "rt.csv", [{"text": f"review {i}", "label": i % 2} for i in range(6)])
    path = tmp_path / "rt.toml"
    path.write_text('[[family]]\nname = "rt_zeroshot"\nlabels = ["neg", "pos"]\ndataset = "data/rt.csv"\n'
                    "prompt = 'Review: {text}\\nSentiment:'\nlabel_words = [\" neg\", \" pos\"]\n")
    new = include_file(path)
    assert [t.name for t in new] == ["rt_classifier", "rt_zeroshot"]
    task = get_task("rt_zeroshot")
    assert task.dataset == str((tmp_path / "data" / "rt.csv").resolve())
    assert task.prompt == "Review: {text}\\nSentiment:"  # TOML single quotes: a literal backslash-n
    examples, info = load_examples(get_task("rt_classifier"))  # no --data: the task's own local file
    assert len(examples) == 6 and info.source == task.dataset
    assert include_file(path) == new  # once per process


def test_json_family_and_a_task_without_dataset(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"family": [{"name": "j_zeroshot", "labels": ["a", "b"], "prompt": "{text} =>",
                                            "label_words": [" a", " b"]}]}))
    include_file(path)
    with pytest.raises(UserError, match="names no dataset; pass data PATH"):
        load_examples(get_task("j_classifier"))
    data = write_rows(tmp_path / "d.jsonl", [{"text": "x", "label": 0}, {"text": "y", "label": 1}])
    examples, _ = load_examples(get_task("j_zeroshot"), data=str(data))
    assert [e.text for e in examples] == ["x", "y"]
