"""The task-kind table: for each kind, the model it scores, its fine-tuning objective and the
fields only it may set. One row per kind; the harness keeps one scorer per kind
(`harness.backends.scorers.SCORERS`).

The zero-shot-only fields are listed once here and serve `check_task` (a classifier task may not
set them), the family twin (`families.classifier_twin` blanks them, `Family.task` skips them)
and the score cache's key (`NOT_SCORED`: the ones applied after scoring do not change a raw score).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["causal_lm", "classifier"]
Objective = Literal["prompt", "classifier"]

# Zero-shot-only fields, each with whether it shapes the input the model reads (True) or only
# what happens around scoring (False: calibration, the prompt-variant list, the number of shots,
# whose demonstrations reach the model inside `prompt` and `chat_turns`).
ZEROSHOT_FIELDS: dict[str, bool] = {
    "prompt": True, "label_words": True, "calibration": False, "content_free": False, "domain_prompt": False,
    "shots": False, "variants": False, "chat_template": True, "system_prompt": True,
    "fewshot_as_multiturn": True, "chat_turns": True,
}
ZEROSHOT_ONLY: tuple[str, ...] = tuple(ZEROSHOT_FIELDS)
# Fields that name the task or say where its data comes from: they never change a score.
DATA_FIELDS = ("name", "description", "dataset", "dataset_config", "split", "train_split", "text_column",
               "label_column", "tags")
NOT_SCORED: tuple[str, ...] = DATA_FIELDS + tuple(f for f, shapes in ZEROSHOT_FIELDS.items() if not shapes)


@dataclass(frozen=True)
class Kind:
    """One task kind: how its model is loaded, how it is fine-tuned, and its own fields."""

    name: str
    model: ModelKind  # how a checkpoint for it loads (AutoModelForCausalLM or ...ForSequenceClassification)
    objective: Objective  # `tenser finetune --objective` that trains a model for it
    prompted: bool  # the review goes through the task's prompt (else the model reads it as it is)
    only: tuple[str, ...] = ()  # fields no other kind may set
    example: str = ""  # a registered task of this kind, for error hints


KINDS: dict[str, Kind] = {
    "zeroshot": Kind("zeroshot", model="causal_lm", objective="prompt", prompted=True, only=ZEROSHOT_ONLY,
                     example="imdb_zeroshot"),
    "classifier": Kind("classifier", model="classifier", objective="classifier", prompted=False, only=("pair_column",),
                       example="imdb_classifier"),
}


class UnknownKind(ValueError):
    """A kind, model kind or objective that no row of the table has."""


def get_kind(name: str) -> Kind:
    """The row for task kind `name`; an unknown name suggests the nearest."""
    if name not in KINDS:
        near = difflib.get_close_matches(name, list(KINDS), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UnknownKind(f"kind {name!r} is not one of {', '.join(KINDS)}.{hint}")
    return KINDS[name]


def kind_for_model(model: str) -> Kind:
    """The kind a checkpoint loaded as `model` (causal_lm or classifier) is scored as."""
    return _one("model kind", model, [k for k in KINDS.values() if k.model == model])


def kind_for_objective(objective: str) -> Kind:
    """The kind a model fine-tuned with `objective` (prompt or classifier) is scored as."""
    return _one("objective", objective, [k for k in KINDS.values() if k.objective == objective])


def _one(what: str, value: str, rows: list[Kind]) -> Kind:
    if not rows:
        raise UnknownKind(f"{what} {value!r} belongs to no task kind ({', '.join(KINDS)})")
    return rows[0]


def fields_of_other_kinds(kind: str) -> tuple[str, ...]:
    """The fields a task of `kind` may not set: those other kinds own and it does not share."""
    mine = set(get_kind(kind).only)
    return tuple(dict.fromkeys(f for k in KINDS.values() if k.name != kind for f in k.only if f not in mine))
