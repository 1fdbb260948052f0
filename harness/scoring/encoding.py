"""Turning an input into token ids for a task: the prompt around its fields, truncation inside one field.

An input is one text, or a mapping of input columns to texts (`tasks.fields`). The whole prompt
is tokenized once, with character offsets, so ids equal what the tokenizer gives for the full
string. When it is too long, tokens are dropped from one field only (the task's
`truncate_column`, else the example's longest field), at its start or its end by the task's
`truncation_side`, never from the prompt text around the fields or from another field. A
classifier task with a `pair_column` encodes (text, pair) with the tokenizer's own pair
encoding and cuts the same way. A literal special-token string inside a field (say
"<|endoftext|>") stays plain text and is not turned into the special token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.backends.base import Encoded, Inputs, label_token_ids  # noqa: F401  (label_token_ids: re-exported)
from harness.errors import UserError
from harness.scoring import chat
from tasks import Task
from tasks.fields import column_of, input_columns, parse
from tasks.kinds import get_kind

# The full prompt is tokenized before it is cut to fit, so this warning would be noise.
logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
# A field longer than this many characters per allowed token is cut to that length before tokenizing
# (tokenizing megabytes with offsets takes seconds and gigabytes). Tokens average 3-5 characters, so
# the tokens kept after truncation are the same unless a field's tokens average over 20 characters.
MAX_CHARS_PER_TOKEN = 20


class Encoder:
    """Encodes inputs for `task` with `tokenizer`, at most `max_tokens` ids each."""

    def __init__(self, task: Task, tokenizer: Any, max_tokens: int, *, reserve: int = 0) -> None:
        self.task = task
        self.tokenizer = tokenizer
        prompted = get_kind(task.kind).prompted  # a classifier reads the review as it is
        self.columns = input_columns(task)
        self.pair = not prompted and bool(task.pair_column)
        self.template = task.prompt if prompted else "{text}"
        self.max_tokens = max_tokens - reserve  # `reserve` keeps room for appended label tokens
        # A chat template (harness.scoring.chat) adds a head and a tail holding its special tokens, tokenized apart
        # with them recognised; the tokenizer's own BOS is not added again (the template writes it).
        self.head: list[int] = []
        self.tail: list[int] = []
        self.chat: chat.Rendered | None = None
        if prompted and task.chat_template:
            self.chat = chat.render(task, tokenizer)
            self.template = self.chat.body
            self.head, self.tail = (tokenizer(part, add_special_tokens=False)["input_ids"] if part else []
                                    for part in (self.chat.head, self.chat.tail))
        self.pieces, names = parse(self.template)
        self.names = [column_of(n, task.text_column) for n in names]
        self.prefix, self.suffix = self.pieces[0], self.pieces[-1]
        fixed = len(self.head) + len(self.tail) + len(self._tokenize([dict.fromkeys(self.columns, "")])[0][0])
        if reserve and fixed + 1 > self.max_tokens:
            raise UserError(f"task {task.name!r}: the label words take up to {reserve} more tokens, leaving "
                            f"{max(self.max_tokens - fixed, 0)} of {max_tokens} for the input; use shorter label "
                            f"words or raise -T max_tokens")
        if fixed + 1 > self.max_tokens:
            raise UserError(
                f"task {task.name!r}: the prompt alone takes {fixed} tokens of the {self.max_tokens} allowed; "
                f"shorten the prompt or raise -T max_tokens"
            )

    def fields(self, inputs: Inputs) -> dict[str, str]:
        """Each input column's text; one text is the only field of a one-field task."""
        if isinstance(inputs, str):
            if len(self.columns) != 1:
                raise UserError(f"task {self.task.name!r} reads {len(self.columns)} fields "
                                f"({', '.join(self.columns)}); give a text for each")
            return {self.columns[0]: inputs}
        missing = [c for c in self.columns if c not in inputs]
        if missing:
            raise UserError(f"task {self.task.name!r}: no text for field(s) {', '.join(missing)}; "
                            f"give one for each of {', '.join(self.columns)}")
        return {c: inputs[c] for c in self.columns}

    def _spans(self, values: Mapping[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
        """The prompt's plain-text part for `values`, and where each field lies in it."""
        out, spans = self.pieces[0], {}
        for name, piece in zip(self.names, self.pieces[1:]):
            spans[name] = (len(out), len(out) + len(values[name]))
            out += values[name] + piece
        return out, spans

    def render(self, inputs: Inputs) -> str:
        """The full prompt string for `inputs` (before any truncation); a pair joined by a newline."""
        values = self.fields(inputs)
        if self.pair:
            return "\n".join(values.values())
        text = self._spans(values)[0]
        return self.chat.head + text + self.chat.tail if self.chat is not None else text

    def _tokenize(self, rows: list[dict[str, str]]) -> tuple[list[list[int]], list[list[str | None]]]:
        """Ids of the plain-text part (special-token strings stay text), and the field each id lies in."""
        extra = {"add_special_tokens": False} if self.chat is not None else {}
        if self.pair:
            first, second = ([r[c] for r in rows] for c in self.columns)
            enc = self.tokenizer(first, second, split_special_tokens=True)
            owners = [[None if s is None else self.columns[s] for s in enc.sequence_ids(i)] for i in range(len(rows))]
            return enc["input_ids"], owners
        rendered = [self._spans(r) for r in rows]
        enc = self.tokenizer([t for t, _ in rendered], split_special_tokens=True, return_offsets_mapping=True, **extra)
        # A token belongs to a field if it lies within it. One that also holds prompt text (BPE merges
        # the prompt's trailing space into a field's first word) belongs to the prompt and is kept.
        owners = [[next((c for c, (lo, hi) in spans.items() if b > a and a >= lo and b <= hi), None)
                   for a, b in offsets] for (_, spans), offsets in zip(rendered, enc["offset_mapping"])]
        return enc["input_ids"], owners

    def encode(self, inputs: Inputs) -> Encoded:
        """Token ids for `inputs` in the prompt, cut inside one field when too long."""
        return self.encode_many([inputs])[0]

    def encode_many(self, inputs: Sequence[Inputs], *, ids: Sequence[str] | None = None,
                    chunk: int = 512) -> list[Encoded]:
        """`encode` for each input; the tokenizer gets them in batches (a fast tokenizer uses every core).
        `ids` name the examples in errors."""
        out: list[Encoded] = []
        for start in range(0, len(inputs), chunk):
            cut = [self._precut(self.fields(x)) for x in inputs[start : start + chunk]]
            tokens, owners = self._tokenize([values for values, _ in cut])
            for i, ((_, was_cut), row, owner) in enumerate(zip(cut, tokens, owners), start):
                out.append(self._fit(list(row), owner, was_cut, ids[i] if ids is not None else f"input {i + 1}"))
        return out

    def _cuttable(self, sizes: Mapping[str, int]) -> str:
        """The field that gives way: the task's truncate_column, else the largest by `sizes` (first on ties)."""
        return self.task.truncate_column or max(self.columns, key=lambda c: sizes.get(c, 0))

    def _precut(self, values: dict[str, str]) -> tuple[dict[str, str], str]:
        """A multi-megabyte field is cut in characters first, on the side that truncation drops."""
        budget = self.max_tokens * MAX_CHARS_PER_TOKEN
        column = self._cuttable({c: len(t) for c, t in values.items()})
        text = values[column]
        if len(text) <= budget:
            return values, ""
        if self.task.truncation_side == "left":
            head = re.match(r"\s{0,64}\S{0,64}\s?", text).group()  # type: ignore[union-attr]
            text = head + text[-budget:]  # the first word shares a token with the prompt, which is kept
        else:
            text = text[:budget]
        return {**values, column: text}, column

    def _fit(self, ids: list[int], owners: list[str | None], was_cut: str, name: str) -> Encoded:
        """Drop tokens from inside the field that gives way until the prompt fits."""
        excess = len(ids) + len(self.head) + len(self.tail) - self.max_tokens
        if excess <= 0:
            return Encoded(self.head + ids + self.tail, bool(was_cut), was_cut)
        column = self._cuttable({c: owners.count(c) for c in self.columns})
        inside = [i for i, owner in enumerate(owners) if owner == column]
        if len(inside) <= excess:
            if len(self.columns) == 1:
                raise UserError(f"task {self.task.name!r}: the prompt leaves no room for the review; raise -T max_tokens")
            raise UserError(
                f"task {self.task.name!r}, example {name}: {len(ids) - len(inside) + len(self.head) + len(self.tail)} "
                f"tokens of prompt and other fields leave no room for field {column!r} ({len(inside)} tokens) in "
                f"{self.max_tokens} allowed; raise -T max_tokens or cut another field with -T truncate_column=NAME")
        first, last = inside[0], inside[-1] + 1
        drop = (first, first + excess) if self.task.truncation_side == "left" else (last - excess, last)
        return Encoded(self.head + ids[: drop[0]] + ids[drop[1] :] + self.tail, True, column)

    def decode(self, encoded: Encoded) -> str:
        """The exact text the model sees for `encoded` (after truncation)."""
        return str(self.tokenizer.decode(encoded.ids))
