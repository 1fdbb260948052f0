"""The `Task` record and the registry: a plain dict with loud errors.

Register each task in exactly one place. Unknown names list the known ones and suggest
the nearest; duplicates raise. Users add tasks without editing the package through
`tasks.files.include_file` (a Python, TOML or JSON file).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from tasks import kinds
from tasks.fields import input_columns, placeholders
from tasks.fieldtypes import as_tuples, describe, fits, shown

TaskKind = Literal["zeroshot", "classifier"]  # the rows of `tasks.kinds.KINDS`
KINDS: tuple[str, ...] = tuple(kinds.KINDS)
Calibration = Literal["none", "contextual", "pmi"]
CALIBRATIONS: tuple[str, ...] = typing.get_args(Calibration)
TRUNCATION_SIDES = ("left", "right")
# Sizes past any real classification task: each label is scored for every review (and drawn in the report's
# confusion matrix), and a label word is a word or two, so larger ones are mistakes that would hang or overflow.
MAX_LABELS = 1000
MAX_LABEL_WORD_CHARS = 100


class TaskError(ValueError):
    """A task is malformed, unknown or registered twice (a user error)."""


@dataclass(frozen=True)
class Task:
    """One evaluation: which data, which labels, and how a model is asked."""

    name: str
    kind: TaskKind
    labels: tuple[str, ...]  # task label order: index i is label id i in the data
    # Hub id, or a local path (file or folder; in a task file, relative to that file). Used when
    # no --data is given; "" = always give --data.
    dataset: str = ""
    description: str = ""
    dataset_config: str | None = None
    split: str = "test"  # the split scored by `tenser run`
    train_split: str = "train"  # fine-tuning, validation carving and few-shot draw from here
    text_column: str = "text"
    label_column: str = "label"
    # classifier only: a second input column (NLI's hypothesis, a question's passage), encoded with the
    # tokenizer's own pair encoding, tokenizer(text, pair), as the checkpoint was pretrained to read pairs.
    pair_column: str = ""
    # zeroshot only: the prompt names each input column once as {column} ({text} = text_column) and must
    # not end in whitespace, because BPE vocabularies put the space at the start of the next word (" positive").
    prompt: str = ""
    label_words: tuple[str, ...] = ()  # one per label, in label order, usually with a leading space
    # None = the model's context length. Reviews are cut, never the prompt around them.
    max_tokens: int | None = None
    # "left" drops the start of a long review and keeps its end, where reviewers tend to
    # give their verdict; "right" keeps the start.
    truncation_side: Literal["left", "right"] = "left"
    # The one input column cut when an input is too long ("" = each example's longest), so a passage
    # gives way and its question never does; predictions.jsonl records which one was cut.
    truncate_column: str = ""
    tags: tuple[str, ...] = field(default=())
    # zeroshot only. Calibration removes the prompt's bias towards one label word:
    # "contextual" (Zhao et al. 2021) divides by the label distribution of content-free
    # inputs put through the same prompt; "pmi" (Holtzman et al. 2021) subtracts each word's
    # log-probability after the domain prompt alone. "none" keeps numbers comparable.
    calibration: Calibration = "none"
    content_free: tuple[str, ...] = ("N/A", "", "[MASK]")
    domain_prompt: str = ""  # PMI premise; "" = the prompt's text after {text}, stripped
    shots: int = 0  # labelled demonstrations from the train split put before each input
    # Other prompts to measure sensitivity: each is (template, one label word per label).
    variants: tuple[tuple[str, ...], ...] = ()
    # zeroshot only: the prompt goes as a user turn through the tokenizer's chat template and the label
    # word is scored as the start of the assistant's answer (harness.scoring.chat), for instruct models.
    chat_template: bool = False
    system_prompt: str = ""  # with chat_template: a system message before the user turn ("" = none)
    fewshot_as_multiturn: bool = False  # with chat_template and shots: demonstrations as user/assistant turns
    chat_turns: tuple[tuple[str, ...], ...] = ()  # (user, answer) turns; filled by few-shot, not by hand
    # Extra metrics as Hugging Face `evaluate` modules (a Hub id or a local module folder), computed from
    # the recorded predictions (harness.metrics.extra). Tenser's own metrics stay scikit-learn's.
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, hint in _hints().items():  # a list given for a tuple field is the same data; keep tasks hashable
            object.__setattr__(self, name, as_tuples(getattr(self, name), hint))
        check_task(self)

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON-ready plain data."""
        return dataclasses.asdict(self)


def check_task(task: Task) -> None:
    """Raise TaskError naming the first field that makes `task` unusable."""
    where = f"task {task.name!r}"
    for name, hint in _hints().items():
        if not fits(value := getattr(task, name), hint):
            raise TaskError(f"{where}: {name} = {shown(value)} must be {describe(hint)}")
    if not task.name or not task.name.replace("_", "").replace("-", "").isalnum():
        raise TaskError(f"{where}: name must be letters, digits, '_' or '-'")
    if task.kind not in kinds.KINDS:  # the table as it is now: a kind added by a row is known at once
        raise TaskError(f"{where}: kind {task.kind!r} is not one of {', '.join(kinds.KINDS)}")
    if len(task.labels) < 2 or len(set(task.labels)) != len(task.labels):
        raise TaskError(f"{where}: labels must be at least two distinct names, got {task.labels!r}")
    if len(task.labels) > MAX_LABELS:
        raise TaskError(f"{where}: {len(task.labels)} labels; at most {MAX_LABELS} (each is scored for every input)")
    if task.truncation_side not in TRUNCATION_SIDES:
        raise TaskError(f"{where}: truncation_side {task.truncation_side!r} must be 'left' or 'right'")
    if task.max_tokens is not None and task.max_tokens < 8:
        raise TaskError(f"{where}: max_tokens must be at least 8 (or None for the model's context)")
    if task.calibration not in CALIBRATIONS:
        raise TaskError(f"{where}: calibration {task.calibration!r} is not one of {', '.join(CALIBRATIONS)}")
    if task.shots < 0:
        raise TaskError(f"{where}: shots must be 0 or more, got {task.shots}")
    if (task.system_prompt or task.fewshot_as_multiturn) and not task.chat_template:
        needs = "system_prompt" if task.system_prompt else "fewshot_as_multiturn"
        raise TaskError(f"{where}: {needs} applies with chat_template=true only; set -T chat_template=true or drop it")
    if kinds.get_kind(task.kind).prompted:
        _check_prompt(task, where)
        for i, variant in enumerate(task.variants):
            if len(variant) != 1 + len(task.labels):
                raise TaskError(f"{where}: variant {i} must be (template, {len(task.labels)} label words), got {variant!r}")
            check_task(prompt_variant(task, i + 1))
    elif task.pair_column and task.pair_column == task.text_column:
        raise TaskError(f"{where}: pair_column {task.pair_column!r} is the text_column too; name another column")
    if used := _foreign_fields_set(task):
        owner = next(k.name for k in kinds.KINDS.values() if used[0] in k.only)
        raise TaskError(f"{where}: {', '.join(used)} apply to {owner} tasks only; a {task.kind} task reads the review "
                        f"as it is and scores it with the model's head (drop {'them' if len(used) > 1 else 'it'})")
    if task.truncate_column and task.truncate_column not in input_columns(task):
        raise TaskError(f"{where}: truncate_column {task.truncate_column!r} is not one of the task's inputs "
                        f"({', '.join(input_columns(task))}); name one of them, or \"\" for each example's longest")


def _foreign_fields_set(task: Task) -> list[str]:
    """The fields of other kinds `task` sets: its kind would ignore them while results.json records them."""
    defaults = {f.name: f.default for f in dataclasses.fields(Task)}
    return [name for name in kinds.fields_of_other_kinds(task.kind) if getattr(task, name) != defaults[name]]


@functools.cache
def _hints() -> dict[str, Any]:
    """Each Task field's type hint, read from the record itself (so a new field is checked too)."""
    return typing.get_type_hints(Task)


def _check_prompt(task: Task, where: str) -> None:
    names = placeholders(task.prompt)
    if not names or "" in names:
        raise TaskError(f"{where}: prompt must name its input columns as {{column}} (or {{text}} for text_column), "
                        f"got {task.prompt!r}")
    columns = input_columns(task)
    if twice := sorted({c for c in columns if columns.count(c) > 1}):
        raise TaskError(f"{where}: prompt uses column {twice[0]!r} twice ({{text}} is text_column "
                        f"{task.text_column!r}); name each input column once")
    if task.pair_column:
        raise TaskError(f"{where}: pair_column applies to classifier tasks; a zeroshot prompt names its second "
                        f"input itself, as {{{task.pair_column}}}")
    if len(task.label_words) != len(task.labels):
        raise TaskError(
            f"{where}: needs one label word per label ({len(task.labels)}), got {task.label_words!r}"
        )
    if long := [w for w in task.label_words if len(w) > MAX_LABEL_WORD_CHARS]:
        raise TaskError(f"{where}: label word {long[0][:12]!r}... is {len(long[0])} characters; at most "
                        f"{MAX_LABEL_WORD_CHARS} (a label word is the answer's first word or two)")
    if any(not w.strip() for w in task.label_words) or len(set(task.label_words)) != len(task.label_words):
        raise TaskError(f"{where}: label words must be distinct and not blank, got {task.label_words!r}")
    if task.prompt != task.prompt.rstrip() and any(w[:1].isspace() for w in task.label_words):
        raise TaskError(
            f"{where}: the prompt ends in whitespace and the label words start with a space; "
            f"end the prompt without it (e.g. {task.prompt.rstrip()!r}) and keep the space in the label words"
        )


def prompt_variant(task: Task, index: int) -> Task:
    """Variant `index` of a zeroshot task (0 = its own prompt) as a task named NAME-pINDEX."""
    if index == 0:
        return dataclasses.replace(task, name=f"{task.name}-p0", variants=())
    template, *words = task.variants[index - 1]
    return dataclasses.replace(task, name=f"{task.name}-p{index}", prompt=template, label_words=tuple(words),
                               variants=())


def prompt_variants(task: Task) -> list[Task]:
    """The task's own prompt and each of its variants, as tasks."""
    return [prompt_variant(task, i) for i in range(len(task.variants) + 1)]


_REGISTRY: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add `task` to the registry; a second task with the same name raises."""
    if task.name in _REGISTRY:
        raise TaskError(f"task {task.name!r} is already registered; pick another name")
    _REGISTRY[task.name] = task
    return task


def list_tasks() -> list[Task]:
    """All registered tasks, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_task(name: str, /, **overrides: Any) -> Task:
    """The task called `name`, with fields replaced by `overrides` (strings are coerced)."""
    if name not in _REGISTRY:
        raise TaskError(_unknown("task", name, sorted(_REGISTRY)) + " (a task from a file needs --include FILE)")
    task = _REGISTRY[name]
    if not overrides:
        return task
    fields = {f.name: f for f in dataclasses.fields(Task)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields or key == "name":
            raise TaskError(_unknown("task field", key, sorted(set(fields) - {"name"})))
        changes[key] = _coerce(key, value, typing.get_type_hints(Task)[key])
    return dataclasses.replace(task, **changes)


def _unknown(what: str, name: str, known: list[str]) -> str:
    near = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return f"Unknown {what} {name!r}.{hint} Known: {', '.join(known)}"


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn a `-T key=value` string into the field's type; other values pass through."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    args = typing.get_args(hint)
    if value.lower() in ("none", "null") and type(None) in args:
        return None
    if hint is bool:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise TaskError(f"-T {key}={value!r}: expected true or false")
        return value.lower() in ("true", "1", "yes")
    if hint is int or int in args:
        try:
            return int(value)
        except ValueError:
            raise TaskError(f"-T {key}={value!r}: expected a whole number") from None
    text = value.replace("\\n", "\n").replace("\\t", "\t")
    if typing.get_origin(hint) is tuple:
        return tuple(part for part in text.split(","))
    return text


def task_from_dict(entry: dict[str, Any], where: str = "task") -> Task:
    """A Task from plain data (a TOML/JSON table, or `to_dict()` read back); `where` prefixes errors."""
    known = {f.name for f in dataclasses.fields(Task)}
    for key in entry:
        if key not in known:
            raise TaskError(f"{where}: " + _unknown("task field", key, sorted(known)))
    try:
        return Task(**entry)  # checked, types included, by Task.__post_init__
    except (TypeError, TaskError) as exc:
        raise TaskError(f"{where}: {exc}") from None
