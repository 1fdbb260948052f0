"""The `Task` record and the registry: a plain dict with loud errors.

Register each task in exactly one place. Unknown names list the known ones and suggest
the nearest; duplicates raise. Users add tasks without editing the package through
`tasks.files.include_file` (a Python, TOML or JSON file).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from tasks import kinds

TaskKind = Literal["zeroshot", "classifier"]  # the rows of `tasks.kinds.KINDS`
KINDS: tuple[str, ...] = tuple(kinds.KINDS)
Calibration = Literal["none", "contextual", "pmi"]
CALIBRATIONS: tuple[str, ...] = typing.get_args(Calibration)
TRUNCATION_SIDES = ("left", "right")


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
    # zeroshot only: the prompt must hold "{text}" once and must not end in whitespace,
    # because BPE vocabularies put the space at the start of the next word (" positive").
    prompt: str = ""
    label_words: tuple[str, ...] = ()  # one per label, in label order, usually with a leading space
    # None = the model's context length. Reviews are cut, never the prompt around them.
    max_tokens: int | None = None
    # "left" drops the start of a long review and keeps its end, where reviewers tend to
    # give their verdict; "right" keeps the start.
    truncation_side: Literal["left", "right"] = "left"
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
    # word is scored as the start of the assistant's answer (harness.chat), for instruct models.
    chat_template: bool = False
    system_prompt: str = ""  # with chat_template: a system message before the user turn ("" = none)
    fewshot_as_multiturn: bool = False  # with chat_template and shots: demonstrations as user/assistant turns
    chat_turns: tuple[tuple[str, ...], ...] = ()  # (user, answer) turns; filled by few-shot, not by hand
    # Extra metrics as Hugging Face `evaluate` modules (a Hub id or a local module folder), computed from
    # the recorded predictions (harness.extra_metrics). Tenser's own metrics stay scikit-learn's.
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_task(self)

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON-ready plain data."""
        return dataclasses.asdict(self)


def check_task(task: Task) -> None:
    """Raise TaskError naming the first field that makes `task` unusable."""
    where = f"task {task.name!r}"
    if not task.name or not task.name.replace("_", "").replace("-", "").isalnum():
        raise TaskError(f"{where}: name must be letters, digits, '_' or '-'")
    if task.kind not in KINDS:
        raise TaskError(f"{where}: kind {task.kind!r} is not one of {', '.join(KINDS)}")
    if len(task.labels) < 2 or len(set(task.labels)) != len(task.labels):
        raise TaskError(f"{where}: labels must be at least two distinct names, got {task.labels!r}")
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
    if used := _foreign_fields_set(task):
        owner = next(k.name for k in kinds.KINDS.values() if used[0] in k.only)
        raise TaskError(f"{where}: {', '.join(used)} apply to {owner} tasks only; a {task.kind} task reads the review "
                        f"as it is and scores it with the model's head (drop {'them' if len(used) > 1 else 'it'})")


def _foreign_fields_set(task: Task) -> list[str]:
    """The fields of other kinds `task` sets: its kind would ignore them while results.json records them."""
    defaults = {f.name: f.default for f in dataclasses.fields(Task)}
    return [name for name in kinds.fields_of_other_kinds(task.kind) if getattr(task, name) != defaults[name]]


def _check_prompt(task: Task, where: str) -> None:
    if task.prompt.count("{text}") != 1:
        raise TaskError(f"{where}: prompt must contain the placeholder {{text}} exactly once, got {task.prompt!r}")
    if len(task.label_words) != len(task.labels):
        raise TaskError(
            f"{where}: needs one label word per label ({len(task.labels)}), got {task.label_words!r}"
        )
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
        raise TaskError(_unknown("task", name, sorted(_REGISTRY)))
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
    hints = typing.get_type_hints(Task)
    values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if typing.get_origin(hints[k]) is tuple
              and isinstance(v, (list, tuple)) else v for k, v in entry.items()}
    try:
        return Task(**values)  # type: ignore[arg-type]  # checked by Task.__post_init__
    except TypeError as exc:
        raise TaskError(f"{where}: {exc}") from None
