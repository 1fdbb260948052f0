"""Few-shot demonstrations: k labelled examples from the train split put before each input.

Chosen once per run (seeded, balanced across labels, short examples preferred), each with
every field in the prompt and one field cut (as in `harness.scoring.encoding`) to fit its share of half the context, and never the example being scored (excluded by id and
by text). The same demonstrations precede every input, and the content-free inputs of
contextual calibration, so every example is scored under the same prompt.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.data.examples import Example
from harness.errors import UserError
from tasks import Task
from tasks.fields import escape, input_columns, render, substitute

MIN_REVIEW_TOKENS = 16  # a demonstration shorter than this says nothing about its label


def choose(pool: list[Example], k: int, n_labels: int, *, seed: int, exclude: set[str]) -> list[Example]:
    """k demonstrations: labels round-robin, each drawn from the shortest quarter of its label."""
    rng = np.random.default_rng(seed)
    usable = [e for e in pool if e.id not in exclude and e.text not in exclude]
    chosen: list[Example] = []
    for label in range(n_labels):
        mine = sorted((e for e in usable if e.label == label), key=lambda e: sum(map(len, e.fields.values())) or len(e.text))
        want = k // n_labels + (1 if label < k % n_labels else 0)
        if len(mine) < want:
            raise UserError(f"-T shots={k}: the train split has only {len(mine)} usable example(s) of label {label}")
        short = mine[: max(want, len(mine) // 4)]
        chosen += [short[i] for i in rng.choice(len(short), size=want, replace=False)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def with_demonstrations(task: Task, demos: list[Example], tokenizer: object, max_tokens: int) -> Task:
    """The task with `demos` (each as prompt + gold label word) placed before its prompt."""
    if not demos:
        return task
    budget = max_tokens // 2 // len(demos)
    columns = input_columns(task)
    blocks, turns = [], []
    for demo in demos:
        empty = render(task.prompt, dict.fromkeys(columns, ""), task.text_column)
        fixed = len(tokenizer(empty + task.label_words[demo.label])["input_ids"])  # type: ignore[operator]
        ids = {c: tokenizer(t, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
               for c, t in (demo.fields or {columns[0]: demo.text}).items() if c in columns}
        longest = task.truncate_column or max(columns, key=lambda c: len(ids[c]))
        room = budget - fixed - sum(len(v) for c, v in ids.items() if c != longest)
        if room < MIN_REVIEW_TOKENS:
            raise UserError(
                f"-T shots={len(demos)}: the demonstrations cannot fit in half of the {max_tokens}-token context; "
                f"use fewer shots or a larger -T max_tokens"
            )
        ids[longest] = ids[longest][-room:] if task.truncation_side == "left" else ids[longest][:room]
        values = {c: escape(tokenizer.decode(v)) for c, v in ids.items()}  # type: ignore[attr-defined]
        shown = substitute(task.prompt, values, task.text_column)  # the prompt's own escaped braces stay escaped
        blocks.append(shown + escape(task.label_words[demo.label]) + "\n\n")
        turns.append((shown, task.label_words[demo.label]))
    if task.chat_template and task.fewshot_as_multiturn:  # each demonstration a user turn and its answer
        return dataclasses.replace(task, chat_turns=tuple(turns))
    return dataclasses.replace(task, prompt="".join(blocks) + task.prompt)
