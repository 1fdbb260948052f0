"""README claims checked against the code: every `Task` field has a row in the field table,
every module has a line in "Layout", the task-file examples register (and stay within 15
lines), the local-data example finds its files, and the run-folder names shown are the ones
`settings_suffix` gives."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks import Task, get_family, get_task, include_file
from tasks import families as families_module
from tasks import files as files_module
from tasks import registry as registry_module

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Register README examples without leaving them behind for other tests."""
    saved = [(d, dict(d)) for d in (registry_module._REGISTRY, families_module._FAMILIES, files_module._INCLUDED)]
    yield
    for live, copy in saved:
        live.clear()
        live.update(copy)


def test_every_task_field_has_a_row_in_the_field_table():
    table = section("Adding a task")
    rows = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    fields = [f.name for f in dataclasses.fields(Task)]
    assert [f for f in fields if f not in rows] == [], "add these Task fields to README's field table"


def shown(default: object) -> str:
    """A default as the field table writes it: TOML-style booleans, double-quoted strings."""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, str):
        return json.dumps(default)
    if isinstance(default, tuple):
        return "(" + ", ".join(json.dumps(x) for x in default) + ")"
    return str(default)


def test_field_table_defaults_match_the_code():
    table = section("Adding a task")
    for field in dataclasses.fields(Task):
        (row,) = re.findall(rf"^\| `{field.name}` \|.*$", table, re.M)
        required, default = [c.strip() for c in row.strip("|").split("|")][1:3]
        if field.default is dataclasses.MISSING:
            assert (required, default) == ("yes", ""), row
        else:
            assert default.strip("`") == shown(field.default), f"{field.name}: README {default}, code {field.default!r}"


def test_every_module_has_a_line_in_layout():
    layout = section("Layout")
    missing = [str(p.relative_to(ROOT)) for pkg in ("tasks", "harness", "reports", "demo", "tenser")
               for p in sorted((ROOT / pkg).rglob("*.py") if pkg == "harness" else (ROOT / pkg).glob("*.py"))
               if p.name != "__init__.py" or p.parent.name == pkg
               if f"`{p.relative_to(ROOT)}`" not in layout]
    assert missing == [], "add a line per module to README's Layout section"
    rooms = [p.parent for p in sorted((ROOT / "harness").glob("*/__init__.py"))]
    assert [f"`{r.relative_to(ROOT)}/`" for r in rooms if f"`{r.relative_to(ROOT)}/`" not in layout] == []
    stale = [path for path in re.findall(r"`((?:tasks|harness|reports|demo|tenser)/[\w/]+\.py)`", layout)
             if not (ROOT / path).is_file()]
    assert stale == [], "README's Layout names modules that do not exist"


def test_task_file_examples_register_the_same_family(tmp_path, clean_registry):
    text = section("Adding a task")
    examples = [(b, ".toml") for b in blocks(text, "toml") if "sst2" in b] + \
               [(b, ".json") for b in blocks(text, "json")] + \
               [(b, ".py") for b in blocks(text, "python") if "register_family(" in b]
    assert len(examples) >= 4  # TOML, JSON, Python, local-data TOML
    seen = []
    for i, (body, suffix) in enumerate(examples):
        assert len(body.splitlines()) <= 15, f"README example {i} is over 15 lines"
        for name in ("sst2", "sst2_zeroshot", "sst2_classifier"):  # each example registers the same names
            registry_module._REGISTRY.pop(name, None)
            families_module._FAMILIES.pop(name, None)
        path = tmp_path / f"example{i}{suffix}"
        path.write_text(body)
        names = sorted(t.name for t in include_file(path))
        assert names == ["sst2_classifier", "sst2_zeroshot"], body
        family = get_family("sst2")
        zs, clf = get_task(family.zeroshot), get_task(family.classifier)
        assert zs.prompt == "Sentence: {text}\nSentiment:" and clf.kind == "classifier" and clf.prompt == ""
        assert (zs.split, zs.text_column, zs.labels) == ("validation", "sentence", ("negative", "positive"))
        seen.append(dataclasses.replace(zs, dataset="", description=""))
    assert all(t == seen[0] for t in seen), "the README's SST-2 examples should describe the same task"


def test_local_data_example_finds_its_files(tmp_path, clean_registry):
    from harness.data.examples import load_examples

    (local,) = [b for b in blocks(section("Adding a task"), "toml") if "./data/sst2" in b]
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    (data / "train.csv").write_text("sentence,label\na delight,1\na mess,0\ngood fun,1\nso dull,0\n")
    (data / "validation.csv").write_text("sentence,label\nlovely,1\nawful,0\n")
    (tmp_path / "sst2_local.toml").write_text(local)
    include_file(tmp_path / "sst2_local.toml")
    family = get_family("sst2")
    test, _ = load_examples(get_task(family.zeroshot))
    train, _ = load_examples(get_task(family.classifier), split="train")
    assert [e.text for e in test] == ["lovely", "awful"] and len(train) == 4


def test_run_folder_names_shown_are_the_real_ones():
    from harness.recipes.evaluation import model_slugs, settings_suffix

    text = section("Reading a run folder")
    for overrides in ({"calibration": "contextual"}, {"max_tokens": "32", "truncation_side": "right"},
                      {"prompt": "Text: {text}\\nVerdict:"}):
        name = f"imdb_zeroshot{settings_suffix(get_task('imdb_zeroshot', **overrides))}__gpt2"
        assert f"`{name}`" in text, name
    assert [f"imdb_zeroshot__{s}" for s in model_slugs(["a/tiny", "b/tiny"])] == \
        ["imdb_zeroshot__a-tiny", "imdb_zeroshot__b-tiny"]
    assert "`imdb_zeroshot__a-tiny` and `imdb_zeroshot__b-tiny`" in text


def test_python_api_section_names_what_exists():
    import tenser
    from harness.api import Comparison

    text = section("Python API")
    for name in ("evaluate", "finetune", "compare", "report", "Run"):
        assert hasattr(tenser, name) and f"{name}(" in text or f"`{name}`" in text, name
    for field in dataclasses.fields(Comparison):
        assert f"`{field.name}`" in text, f"README's Python API should name Comparison.{field.name}"


def test_no_stale_entry_points():
    assert "python -m harness " not in README.replace("`python -m harness` says", "")
    assert "harness.cli" not in README and "Field reference:" not in README


def test_adding_a_metric_example_moves_mcc_into_the_headline(tmp_path, monkeypatch):
    """The README's catalog row, put in place of MCC's, reaches the headline table and chart, out of the secondary."""
    from harness.metrics import catalog
    from harness.store.runs import load_run
    from reports.render import build_context
    from reports.sources import load_runs
    from tests.report_fixtures import make_run, with_real_metrics

    (block,) = blocks(section("Adding a metric"), "python")
    row = eval(block, {"Metric": catalog.Metric})  # one catalog row, as it would sit in METRICS
    assert row.key in {m.key for m in catalog.secondary()}
    monkeypatch.setattr(catalog, "METRICS", tuple(row if m.key == row.key else m for m in catalog.METRICS))
    runs = [with_real_metrics(make_run(tmp_path / f"r{seed}", seed=seed)) for seed in (1, 2)]  # MCC recorded
    context = build_context(load_runs(runs))
    headline = {r["key"]: r for r in context["headline"]}
    assert headline[row.key]["name"] == row.label and "mcc" not in [r["key"] for r in context["secondary"]]
    assert headline[row.key]["cells"][0]["value"] == f"{load_run(runs[0])[0]['metrics']['mcc']:.3f}"


def test_rte_example_reads_both_sentences_from_local_files(tmp_path, clean_registry):
    import pandas as pd

    from harness.data.examples import load_examples

    (rte,) = [b for b in blocks(section("Adding a task"), "toml") if "rte_zeroshot" in b]
    assert len(rte.splitlines()) <= 15
    data = tmp_path / "data" / "rte"
    data.mkdir(parents=True)
    rows = {"sentence1": ["A cat sat on the mat.", "Paris is in France."], "sentence2": ["A cat sat.", "Paris is in Spain."],
            "label": [0, 1], "idx": [0, 1]}
    for split in ("train", "validation"):
        pd.DataFrame(rows).to_parquet(data / f"{split}.parquet")
    (tmp_path / "rte.toml").write_text(rte)
    include_file(tmp_path / "rte.toml")
    family = get_family("rte")
    zs, clf = get_task(family.zeroshot), get_task(family.classifier)
    assert zs.prompt == "{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:"
    assert (clf.text_column, clf.pair_column, clf.truncate_column) == ("sentence1", "sentence2", "sentence1")
    examples, _ = load_examples(zs)
    assert examples[1].fields == {"sentence1": "Paris is in France.", "sentence2": "Paris is in Spain."}
    assert [e.label for e in examples] == [0, 1] and load_examples(clf, split="train")[0][0].fields == examples[0].fields


def test_adding_a_backend_example_runs_through_run_report_and_gate(tmp_path, monkeypatch):
    from harness.backends import registry
    from tenser.cli import main

    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))  # the example registers; undo it after
    [code] = blocks(section("Adding a backend"), "python")
    exec(compile(code, "README: Adding a backend", "exec"), {})
    rows = [{"text": f"A {'great' if i % 2 else 'dull'} film.", "label": i % 2} for i in range(12)]
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for model in ("keyword:great", "keyword:film"):
        assert main(["run", "--model", model, "--data", str(data), "--out", str(tmp_path / "runs"), "--no-cache"]) == 0
    [great] = (tmp_path / "runs").glob("*great*")
    [film] = (tmp_path / "runs").glob("*film*")
    results = json.loads((great / "results.json").read_text())
    assert results["metrics"]["accuracy"] == 1.0 and results["model"]["backend"] == "keyword"
    assert json.loads((film / "results.json").read_text())["metrics"]["accuracy"] == 0.5
    assert main(["report", str(film), str(great), "--out", str(tmp_path / "r.html")]) == 0
    assert main(["gate", str(film), str(great)]) == 0


def test_adding_a_task_kind_example_scores_mean_log_probs(tmp_path, monkeypatch, gpt2_dir, clean_registry):
    from harness.backends import scorers
    from tasks import kinds
    from tenser.cli import main

    monkeypatch.setattr(kinds, "KINDS", dict(kinds.KINDS))
    monkeypatch.setattr(scorers, "SCORERS", dict(scorers.SCORERS))
    [code] = blocks(section("Adding a task kind"), "python")
    exec(compile(code, "README: Adding a task kind", "exec"), {})
    words = (" very bad film", " good")  # a three-token and a one-token label word: mean and sum differ
    summed = dataclasses.replace(get_task("imdb_zeroshot"), name="words_sum", label_words=words)
    registry_module.register_task(summed)
    registry_module.register_task(dataclasses.replace(summed, name="words_mean", kind="zeroshot_mean"))
    rows = [{"text": f"the movie was {w} and long", "label": i % 2} for i, w in enumerate(["good", "bad"] * 4)]
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "runs"
    for name in ("words_sum", "words_mean"):
        assert main(["run", "--model", str(gpt2_dir), "--task", name, "--data", str(data), "--out", str(out),
                     "--no-cache", "--device", "cpu"]) == 0
    [sum_dir] = out.glob("words_sum__*")
    [mean_dir] = out.glob("words_mean__*")
    assert "mean log P" in json.loads((mean_dir / "results.json").read_text())["scoring"]["method"]
    tokens = json.loads((sum_dir / "results.json").read_text())["scoring"]["label_tokens"]
    lengths = [len(tokens[label]) for label in summed.labels]
    assert lengths[0] > 1 == lengths[1]
    import numpy as np
    import torch

    from harness.backends.registry import load_backend
    from harness.scoring.inference import make_encoder

    # Independently: the summed log-probs from the zero-shot scorer, each divided by its word's length.
    loaded = load_backend(str(gpt2_dir), "causal_lm", device="cpu")
    encoded = make_encoder(summed, loaded).encode_many([r["text"] for r in rows])
    raw = scorers.ZeroShotScorer(loaded.model, loaded.tokenizer, summed).score(encoded)
    expected = torch.softmax(raw / raw.new_tensor(lengths), dim=1).numpy()
    by_id = {r["id"]: r for r in map(json.loads, (mean_dir / "predictions.jsonl").read_text().splitlines())}
    got = np.array([[by_id[f"test-{i:05d}"]["probs"][label] for label in summed.labels] for i in range(len(rows))])
    assert np.allclose(got, expected, atol=1e-5) and not np.allclose(got, torch.softmax(raw, dim=1).numpy(), atol=1e-3)


def test_benchmark_rte_file_is_the_readme_rte_family(tmp_path, clean_registry):
    """benchmarks/rte.toml (the measured RTE numbers' task) is the README's RTE family, data left to --data."""
    (rte,) = [b for b in blocks(section("Adding a task"), "toml") if "rte_zeroshot" in b]
    (tmp_path / "rte.toml").write_text(rte)
    include_file(tmp_path / "rte.toml")
    readme = get_task("rte_zeroshot")
    for name in ("rte", "rte_zeroshot", "rte_classifier"):
        registry_module._REGISTRY.pop(name, None)
        families_module._FAMILIES.pop(name, None)
    include_file(ROOT / "benchmarks" / "rte.toml")
    assert get_task("rte_zeroshot") == dataclasses.replace(readme, dataset="")


def test_quickstart_shows_the_seeds_command_it_prints_next():
    from tenser.commands import seeds_command

    shown = [" ".join(b.replace("\\\n", " ").split()) for b in blocks(section(
        "Quickstart: the whole before/after job, offline, in minutes"), "bash")]
    assert seeds_command("runs/quickstart") in shown
