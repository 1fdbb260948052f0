"""Task families: one dataset evaluated zero-shot and with a classifier head, declared once.

`register_family(zeroshot_task)` registers the zero-shot task and its classifier twin
(`BASE_classifier`: same data, labels and token budget, no prompt), linked under the family
name `BASE` (the zero-shot name without `_zeroshot`). `tenser compare --task` takes a family
or either of its tasks and runs the before/after job: the pretrained LM on the zero-shot
task, the fine-tuned model on the classifier (or, prompt-tuned, on the zero-shot) task.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tasks.kinds import ZEROSHOT_ONLY
from tasks.registry import Task, TaskError, _unknown, get_task, register_task

# What the two tasks of a family must share: the data and the labels.
SHARED = ("labels", "dataset", "dataset_config", "split", "train_split", "text_column", "label_column")


@dataclass(frozen=True)
class Family:
    """A zero-shot task and its classifier counterpart, by name."""

    name: str
    zeroshot: str
    classifier: str

    def task(self, kind: str, **overrides: str) -> Task:
        """The family's task of `kind`, with -T overrides (zero-shot-only fields skip the classifier)."""
        if kind == "zeroshot":
            return get_task(self.zeroshot, **overrides)
        return get_task(self.classifier, **{k: v for k, v in overrides.items() if k not in ZEROSHOT_ONLY})


_FAMILIES: dict[str, Family] = {}


def classifier_twin(task: Task, name: str) -> Task:
    """The classifier task over the same data and labels as zero-shot `task`."""
    blank = {f.name: f.default for f in dataclasses.fields(Task) if f.name in ZEROSHOT_ONLY}
    return dataclasses.replace(task, **blank, name=name, kind="classifier")  # type: ignore[arg-type]


def register_family(zeroshot: Task, *, classifier: Task | None = None, name: str | None = None) -> Family:
    """Register `zeroshot`, its classifier twin (or `classifier`, which must share its data), and the link."""
    base = name or zeroshot.name.removesuffix("_zeroshot")
    if zeroshot.kind != "zeroshot":
        raise TaskError(f"family {base!r}: {zeroshot.name!r} must be a zeroshot task, not {zeroshot.kind}")
    if base in _FAMILIES:
        raise TaskError(f"family {base!r} is already registered; pick another name")
    twin = classifier or classifier_twin(zeroshot, f"{base}_classifier")
    differ = [f for f in SHARED if getattr(twin, f) != getattr(zeroshot, f)]
    if twin.kind != "classifier" or differ:
        raise TaskError(f"family {base!r}: {twin.name!r} must be a classifier task with the same "
                        f"{', '.join(differ or SHARED)} as {zeroshot.name!r}")
    register_task(zeroshot)
    register_task(twin)
    _FAMILIES[base] = Family(base, zeroshot.name, twin.name)
    return _FAMILIES[base]


def get_family(name: str) -> Family:
    """The family called `name`, or the one that holds the task called `name`."""
    if name in _FAMILIES:
        return _FAMILIES[name]
    for family in _FAMILIES.values():
        if name in (family.zeroshot, family.classifier):
            return family
    known = sorted({n for f in _FAMILIES.values() for n in (f.name, f.zeroshot, f.classifier)})
    raise TaskError(_unknown("task family", name, known) + " (register one with register_family, or a "
                    "[[family]] table in a task file)")


def list_families() -> list[Family]:
    """All registered families, sorted by name."""
    return [_FAMILIES[name] for name in sorted(_FAMILIES)]
