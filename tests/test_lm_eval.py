"""`tenser tasks --from-lm-eval`: lm-evaluation-harness task YAMLs converted to Tenser task files.

The fixtures in tests/fixtures/lm_eval/ are verbatim copies of real lm-eval YAMLs from
EleutherAI/lm-evaluation-harness (paths and commits in its PROVENANCE.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tasks import TaskError, get_family, get_task, include_file
from tasks.lm_eval import convert_file
from tenser.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "lm_eval"


def _family(name: str) -> dict:
    tables = tomllib.loads(convert_file(FIXTURES / name))
    assert list(tables) == ["family"] and len(tables["family"]) == 1
    return tables["family"][0]


def test_rte_two_fields_become_named_placeholders_and_a_pair():
    rte = _family("rte_default.yaml")
    assert rte == {
        "name": "rte_zeroshot", "labels": ["True", "False"], "dataset": "glue", "split": "validation",
        "dataset_config": "rte", "train_split": "train", "text_column": "sentence1", "pair_column": "sentence2",
        "label_column": "label", "prompt": "{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:",
        "label_words": [" True", " False"],
    }


def test_sst2_single_field_loads_as_a_family_today(tmp_path):
    sst2 = _family("sst2_default.yaml")
    assert sst2["prompt"] == "{text}\nQuestion: Is this sentence positive or negative?\nAnswer:"
    assert (sst2["text_column"], sst2["dataset"], sst2["dataset_config"]) == ("sentence", "nyu-mll/glue", "sst2")
    assert sst2["labels"] == ["negative", "positive"] and sst2["label_words"] == [" negative", " positive"]
    path = tmp_path / "sst2.toml"
    path.write_text(convert_file(FIXTURES / "sst2_default.yaml"))
    include_file(path)
    family = get_family("sst2")
    assert (family.zeroshot, family.classifier) == ("sst2_zeroshot", "sst2_classifier")
    assert get_task("sst2_classifier").text_column == "sentence" and get_task("sst2_classifier").prompt == ""


def test_boolq_passage_plus_question():
    boolq = _family("boolq_default.yaml")
    assert boolq["prompt"] == "{passage}\nQuestion: {question}?\nAnswer:"
    assert (boolq["text_column"], boolq["pair_column"]) == ("passage", "question")
    assert boolq["labels"] == ["no", "yes"] and boolq["dataset"] == "aps/super_glue"


def test_cb_three_labels_ignore_the_metric_function():
    cb = _family("cb_default.yaml")  # its metric_list holds a !function aggregation: metrics are Tenser's own
    assert cb["labels"] == ["True", "False", "Neither"]
    assert cb["label_words"] == [" True", " False", " Neither"]
    assert cb["prompt"] == "{premise}\nQuestion: {hypothesis}. True, False, or Neither?\nAnswer:"


@pytest.mark.parametrize("name, fragment", [
    ("mnli_default.yaml", "doc_to_text: !function utils.doc_to_text"),
    ("mnli_mismatch.yaml", "doc_to_text: !function utils.doc_to_text"),  # through include:
    ("boolq_seq2seq.yaml", "output_type greedy_until"),
])
def test_unconvertible_fixtures_are_refused_in_one_line(name, fragment):
    with pytest.raises(TaskError) as exc:
        convert_file(FIXTURES / name)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


RTE_LINES = (FIXTURES / "rte_default.yaml").read_text().splitlines()


def _edited(tmp_path: Path, **changes: str) -> Path:
    """The RTE fixture with keys replaced (value "" drops the key)."""
    kept = [line for line in RTE_LINES if line.split(":")[0] not in changes]
    path = tmp_path / "edited.yaml"
    path.write_text("\n".join(kept + [f"{k}: {v}" for k, v in changes.items() if v]) + "\n")
    return path


@pytest.mark.parametrize("changes, fragment", [
    ({"doc_to_text": '"{{sentence1|lower}}\\nAnswer:"'}, "Jinja filter {{sentence1|lower}}"),
    ({"doc_to_text": '"{% if x %}{{sentence1}}{% endif %}"'}, "Jinja statements"),
    ({"doc_to_text": '"{{sentence1 + sentence2}}"'}, "expression {{sentence1 + sentence2}}"),
    ({"doc_to_text": '"{{sentence1}} {{sentence1}}"'}, "{{sentence1}} twice"),
    ({"doc_to_choice": '"{{choices}}"'}, "per-example choices"),
    ({"doc_to_choice": "!function utils.choices"}, "doc_to_choice: !function utils.choices"),
    ({"doc_to_target": "0"}, "doc_to_target 0 is one fixed answer"),
    ({"doc_to_target": '"{{answer_choices[label]}}"'}, "expression {{answer_choices[label]}}"),
    ({"output_type": "generate_until"}, "output_type generate_until"),
    ({"output_type": "loglikelihood_rolling"}, "output_type loglikelihood_rolling"),
    ({"output_type": ""}, "output_type generate_until"),  # lm-eval's default
    ({"process_docs": "!function utils.process"}, "process_docs: !function utils.process"),
    ({"filter_list": "[]"}, "filter_list is not convertible"),
    ({"validation_split": ""}, "no test_split or validation_split"),
    ({"include": "missing.yaml"}, "include 'missing.yaml' is not a YAML file next to it"),
])
def test_refusals_name_what_cannot_convert(tmp_path, changes, fragment):
    with pytest.raises(TaskError) as exc:
        convert_file(_edited(tmp_path, **changes))
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_template_target_delimiter_test_split_and_include(tmp_path):
    (tmp_path / "rte_default.yaml").write_text((FIXTURES / "rte_default.yaml").read_text())
    path = tmp_path / "child.yaml"
    path.write_text('include: rte_default.yaml\ntask: rte.v2\ndoc_to_target: "{{ label }}"\ntarget_delimiter: ""\n'
                    "test_split: test\nnum_fewshot: 2\ndescription: \"Decide.\\n\\n\"\n")
    entry = tomllib.loads(convert_file(path))["family"][0]
    assert entry["name"] == "rte_v2_zeroshot" and entry["label_column"] == "label"
    assert entry["label_words"] == ["True", "False"] and entry["split"] == "test" and entry["shots"] == 2
    assert entry["prompt"] == "Decide.\n\n{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:"


def test_bare_column_name_as_doc_to_text(tmp_path):
    entry = _family_of(_edited(tmp_path, doc_to_text="sentence2"))
    assert (entry["prompt"], entry["text_column"]) == ("{text}", "sentence2") and "pair_column" not in entry


def test_local_parquet_data_files_become_the_dataset_folder(tmp_path):
    path = _edited(tmp_path, dataset_path="parquet", dataset_name="",
                   dataset_kwargs="{data_files: {train: d/train.parquet, validation: d/validation.parquet}}")
    assert _family_of(path)["dataset"] == "d"
    mixed = _edited(tmp_path, dataset_path="parquet", dataset_kwargs="{data_files: {train: a/x.parquet}}")
    with pytest.raises(TaskError, match="SPLIT.EXT files in one folder"):
        convert_file(mixed)


def _family_of(path: Path) -> dict:
    return tomllib.loads(convert_file(path))["family"][0]


def test_cli_prints_toml(capsys):
    assert main(["tasks", "--from-lm-eval", str(FIXTURES / "cb_default.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Converted from the lm-evaluation-harness task YAML cb_default.yaml")
    assert tomllib.loads(out)["family"][0]["name"] == "cb_zeroshot"


def test_cli_unconvertible_exits_2_with_one_line():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tenser", "tasks", "--from-lm-eval",
                           str(FIXTURES / "mnli_default.yaml")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["tenser tasks: error: mnli_default.yaml: doc_to_text: !function "
                                        "utils.doc_to_text is Python code; Tenser converts templates only"]
