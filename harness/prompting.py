"""Prompt variants: choosing one on a validation split, and the spread across variants.

Selection scores each variant on examples carved from the train split and never reads the
test split: `select_prompt` is given validation examples only. Sensitivity summarises
accuracy across variants (mean, standard deviation, min, max).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.backends import Backend
from harness.data import Example, load_examples, sample_stratified
from harness.errors import renamed_params
from harness.fewshot import choose, with_demonstrations
from harness.inference import make_encoder, predict_texts
from tasks import Task

TRAIN_DATA = {"data": "train_data"}  # the train split comes from train_data in `run` and `compare`


def validation_examples(task: Task, *, train_data: str | None, limit: int, seed: int) -> list[Example]:
    """A seeded, stratified validation sample carved from the task's train split."""
    with renamed_params(TRAIN_DATA):
        pool, _ = load_examples(task, data=train_data, split=task.train_split)
    return sample_stratified(pool, limit, seed + 7919)  # another seed than few-shot's draw


def accuracy(task: Task, loaded: Backend, examples: list[Example], batch_size: int | str) -> float:
    """Accuracy of `task`'s prompt (calibration not applied) on `examples`."""
    probs = predict_texts(task, loaded, [e.text for e in examples], batch_size=batch_size)
    return float((probs.argmax(1) == np.array([e.label for e in examples])).mean())


def select_prompt(variants: list[Task], loaded: Backend, val: list[Example], *, batch_size: int | str = "auto",
                  seed: int = 0) -> tuple[Task, dict[str, Any]]:
    """The variant with the highest validation accuracy, and a record of how it was chosen."""
    scores = {v.name: accuracy(v, loaded, val, batch_size) for v in variants}
    best = max(variants, key=lambda v: scores[v.name])
    return best, {
        "chosen": best.name, "prompt": best.prompt, "label_words": list(best.label_words),
        "method": f"highest accuracy on {len(val)} validation examples carved from the train split "
                  f"(seed {seed}); the test split was not read",
        "validation_accuracy": scores,
    }


def sensitivity(accuracies: dict[str, float]) -> dict[str, Any]:
    """Mean, standard deviation, min and max of accuracy across prompt variants.

    >>> sensitivity({"p0": 0.7, "p1": 0.8, "p2": 0.9})["std"]
    0.1
    """
    values = np.array(list(accuracies.values()))
    return {"per_variant": accuracies, "mean": round(float(values.mean()), 6),
            "std": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 6),
            "min": float(values.min()), "max": float(values.max())}


def add_demonstrations(task: Task, loaded: Backend, *, train_data: str | None, seed: int,
                       exclude: set[str]) -> tuple[Task, dict[str, Any] | None]:
    """The task with `task.shots` demonstrations before its prompt, and their record."""
    if not task.shots:  # a zero-shot-only field (tasks.kinds)
        return task, None
    with renamed_params(TRAIN_DATA):
        pool, info = load_examples(task, data=train_data, split=task.train_split)
    demos = choose(pool, task.shots, len(task.labels), seed=seed, exclude=exclude)
    budget = make_encoder(task, loaded).max_tokens
    record = {"k": task.shots, "source": info.source, "split": info.split, "seed": seed,
              "demonstrations": [{"id": d.id, "label": task.labels[d.label], "preview": d.text[:200]} for d in demos]}
    return with_demonstrations(task, demos, loaded.tokenizer, budget), record
