"""Turning a review into token ids for a task: the prompt around it, truncation inside it.

The whole prompt is tokenized once, with character offsets, so ids equal what the
tokenizer gives for the full string. When it is too long, tokens are dropped from the
review only (its start or its end, by the task's `truncation_side`), never from the prompt
text before or after it. A literal special-token string inside a review (say
"<|endoftext|>") stays plain text and is not turned into the special token.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from harness import chat
from harness.errors import UserError
from tasks import Task
from tasks.kinds import get_kind

# The full prompt is tokenized before it is cut to fit, so this warning would be noise.
logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
# A review longer than this many characters per allowed token is cut to that length before tokenizing
# (tokenizing megabytes with offsets takes seconds and gigabytes). Tokens average 3-5 characters, so
# the tokens kept after truncation are the same unless a review's tokens average over 20 characters.
MAX_CHARS_PER_TOKEN = 20


@dataclass(frozen=True)
class Encoded:
    """Token ids for one input, its length, and whether the review was cut to fit."""

    ids: list[int]
    truncated: bool

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


class Encoder:
    """Encodes texts for `task` with `tokenizer`, at most `max_tokens` ids each."""

    def __init__(self, task: Task, tokenizer: Any, max_tokens: int, *, reserve: int = 0) -> None:
        self.task = task
        self.tokenizer = tokenizer
        prompted = get_kind(task.kind).prompted  # a classifier reads the review as it is
        self.template = task.prompt if prompted else "{text}"
        self.max_tokens = max_tokens - reserve  # `reserve` keeps room for appended label tokens
        self.prefix, self.suffix = self.template.split("{text}")
        # A chat template (harness.chat) adds a head and a tail holding its special tokens, tokenized apart
        # with them recognised; the tokenizer's own BOS is not added again (the template writes it).
        self.head: list[int] = []
        self.tail: list[int] = []
        self.chat: chat.Rendered | None = None
        if prompted and task.chat_template:
            self.chat = chat.render(task, tokenizer)
            self.template, self.prefix, self.suffix = self.chat.text, self.chat.prefix, self.chat.suffix
            self.head, self.tail = (tokenizer(part, add_special_tokens=False)["input_ids"] if part else []
                                    for part in (self.chat.head, self.chat.tail))
        fixed = len(self.head) + len(self.tail) + len(self._tokenize([self.prefix + self.suffix])["input_ids"][0])
        if fixed + 1 > self.max_tokens:
            raise UserError(
                f"task {task.name!r}: the prompt alone takes {fixed} tokens of the {self.max_tokens} allowed; "
                f"shorten the prompt or raise -T max_tokens"
            )

    def render(self, text: str) -> str:
        """The full prompt string for `text` (before any truncation)."""
        if self.chat is not None:
            return self.chat.head + self.prefix + text + self.suffix + self.chat.tail
        return self.prefix + text + self.suffix

    def _tokenize(self, texts: list[str], **kw: Any) -> Any:
        """The prompt's plain-text part: special-token strings stay text (with a template, no BOS added)."""
        extra = {"add_special_tokens": False} if self.chat is not None else {}
        return self.tokenizer(texts, split_special_tokens=True, **extra, **kw)

    def encode(self, text: str) -> Encoded:
        """Token ids for `text` in the prompt, cut inside the review when too long."""
        return self.encode_many([text])[0]

    def encode_many(self, texts: list[str], *, chunk: int = 512) -> list[Encoded]:
        """`encode` for each text; the tokenizer gets them in batches (a fast tokenizer uses every core)."""
        out: list[Encoded] = []
        for start in range(0, len(texts), chunk):
            cut = [self._precut(t) for t in texts[start : start + chunk]]
            enc = self._tokenize([self.prefix + t + self.suffix for t, _ in cut], return_offsets_mapping=True)
            out += [self._fit(t, ids, offsets, was_cut) for (t, was_cut), ids, offsets
                    in zip(cut, enc["input_ids"], enc["offset_mapping"])]
        return out

    def _precut(self, text: str) -> tuple[str, bool]:
        """A multi-megabyte review is cut in characters first, on the side that truncation drops."""
        budget = self.max_tokens * MAX_CHARS_PER_TOKEN
        if len(text) <= budget:
            return text, False
        if self.task.truncation_side == "left":
            head = re.match(r"\s{0,64}\S{0,64}\s?", text).group()  # type: ignore[union-attr]
            return head + text[-budget:], True  # the first word shares a token with the prompt, which is kept
        return text[:budget], True

    def _fit(self, text: str, ids: list[int], offsets: list[tuple[int, int]], was_cut: bool) -> Encoded:
        """Drop tokens from inside the review until the prompt fits."""
        excess = len(ids) + len(self.head) + len(self.tail) - self.max_tokens
        if excess <= 0:
            return Encoded(self.head + list(ids) + self.tail, was_cut)
        start, end = len(self.prefix), len(self.prefix) + len(text)
        # A token belongs to the review if it lies within it. One that also holds prompt text
        # (BPE merges the prompt's trailing space into the review's first word) is kept.
        inside = [i for i, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
        if len(inside) <= excess:
            raise UserError(f"task {self.task.name!r}: the prompt leaves no room for the review; raise -T max_tokens")
        first, last = inside[0], inside[-1] + 1
        if self.task.truncation_side == "left":
            kept = ids[:first] + ids[first + excess : last] + ids[last:]
        else:
            kept = ids[:first] + ids[first : last - excess] + ids[last:]
        return Encoded(self.head + list(kept) + self.tail, True)

    def decode(self, encoded: Encoded) -> str:
        """The exact text the model sees for `encoded` (after truncation)."""
        return str(self.tokenizer.decode(encoded.ids))


def label_token_ids(task: Task, tokenizer: Any) -> list[list[int]]:
    """Token ids of each label word; a word that tokenizes to nothing is a user error."""
    out = []
    for label, word in zip(task.labels, chat.label_words(task)):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"task {task.name!r}: label word {word!r} for {label!r} tokenizes to nothing; pick another")
        out.append(list(ids))
    return out
