"""The model card (`README.md`) of a fine-tuned checkpoint, in the Hugging Face Hub's format.

`write_card` builds it from `training_log.json` alone: YAML front matter with the Hub's
`model-index` (task, dataset, split, the best epoch's validation metrics), base model and
license, then training data, hyperparameters, the validation curve, intended use and
limitations. `tenser compare` calls it again with the test-split runs (`TestResults`): their
metrics and the before/after change with its paired 95% interval (comparison.json, written with
the report) join the card. Every number is read from those files, never typed in. Nothing is
pushed: `upload_command` is printed for the user to run.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends import embedded
from harness.data.embedded import PREFIX, is_embedded
from harness.store import runs

CARD = "README.md"
TAG = "tenser"  # marks a card Tenser wrote, so `compare` rewrites only its own cards


@dataclass(frozen=True)
class TestResults:
    """Test-split numbers for the card: the fine-tuned run, the pretrained run, their paired change."""

    after: dict[str, Any]  # results.json of the fine-tuned model's run
    before: dict[str, Any] | None  # results.json of the pretrained model's run
    change: dict[str, Any] | None  # the record of comparison.json for before -> after

    @classmethod
    def from_folders(cls, after: Path, before: Path | None, comparison: Path | None) -> TestResults:
        change = None
        if comparison is not None and comparison.is_file():
            records = json.loads(comparison.read_text())["comparisons"]
            change = next((r for r in records if r.get("paired") and Path(r["after"]["path"]) == after), None)
        return cls(runs.load_run(after)[0], runs.load_run(before)[0] if before else None, change)


def base_model(log: dict[str, Any]) -> tuple[str | None, str]:
    """The base model's Hub id (None when unknown) and license, from what the fine-tune started from."""
    name = str(log["base_model"])
    if is_embedded(name) and (spec := embedded.MODELS.get(name.removeprefix(PREFIX))):
        return spec.original, spec.license
    if Path(name).is_dir():
        record = embedded.provenance(name)
        return (str(record["original"]), str(record["license"])) if record else (None, _license(Path(name) / CARD))
    return name, _license(_cached_card(name))


def _cached_card(repo: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, CARD)
    return Path(found) if isinstance(found, str) else None


def _license(card: Path | None) -> str:
    """The license in a model card's front matter; "other" when there is none to read."""
    if card is None or not card.is_file():
        return "other"
    from huggingface_hub import ModelCard

    return str(ModelCard.load(card).data.license or "other")


def eval_results(log: dict[str, Any], test: TestResults | None) -> list[Any]:
    """The `model-index` entries: the best epoch on validation, then the test split when measured."""
    from huggingface_hub import EvalResult

    dataset = _dataset(log)
    best = next(e for e in log["epochs"] if e["epoch"] == log["best_epoch"])
    common: dict[str, Any] = {"task_type": "text-classification", "dataset_type": dataset, "dataset_name": dataset}
    out = [EvalResult(**common, dataset_split="validation", metric_type=key, metric_name=f"validation {key}",
                      metric_value=best[f"val_{key}"]) for key in ("accuracy", "f1_macro") if best.get(f"val_{key}")
           is not None]
    if test is not None:
        m, split = test.after["metrics"], test.after["data"]["split"]
        out += [EvalResult(**common, dataset_split=split, metric_type=key, metric_name=f"{split} {key}",
                           metric_value=m[key]) for key in ("accuracy", "f1_macro")]
    return out


def _dataset(log: dict[str, Any]) -> str:
    """The training data's name: its source, or for the embedded sample the Hub dataset it was drawn from."""
    source = str(log["data"]["source"])
    return str(log.get("dataset") or source) if is_embedded(source) else source


def card_data(log: dict[str, Any], name: str, test: TestResults | None) -> Any:
    """The front matter as huggingface_hub's ModelCardData."""
    from huggingface_hub import ModelCardData

    hub_id, license_ = base_model(log)
    dataset = _dataset(log)
    return ModelCardData(
        model_name=name, base_model=hub_id, license=license_, library_name="transformers",
        pipeline_tag="text-classification" if log["objective"] == "classifier" else "text-generation",
        datasets=[dataset] if "/" in dataset and not Path(dataset).exists() else None,
        tags=[TAG, log["task"], *(["lora"] if "lora" in log else [])], eval_results=eval_results(log, test),
    )


def write_card(output: Path, test: TestResults | None = None) -> Path:
    """Write OUTPUT/README.md from OUTPUT/training_log.json (and the test runs, when given)."""
    from huggingface_hub import ModelCard

    from harness.training.model_card_text import body

    log = json.loads((output / "training_log.json").read_text())
    name = output.resolve().name
    data = card_data(log, name, test)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body(log, name, data.base_model, data.license, test)}")
    runs.write_atomic(output / CARD, str(card))
    return output / CARD


def is_tenser_card(folder: Path) -> bool:
    """Whether FOLDER holds a card written by `write_card` next to its training_log.json."""
    from huggingface_hub import ModelCard

    card = folder / CARD
    return card.is_file() and (folder / "training_log.json").is_file() and \
        TAG in (ModelCard.load(card).data.tags or [])


def upload_command(output: Path) -> str:
    """The command that publishes the checkpoint (Tenser never pushes)."""
    return f"huggingface-cli upload YOUR_USER/{output.resolve().name} {shlex.quote(str(output))} . --repo-type model"


def add_test_results(checkpoint: Path, after: Path, before: Path | None, comparison: Path | None) -> Path | None:
    """Rewrite the card of a checkpoint Tenser fine-tuned with the test runs; other folders are left alone."""
    if not is_tenser_card(checkpoint):
        return None
    return write_card(checkpoint, TestResults.from_folders(after, before, comparison))
