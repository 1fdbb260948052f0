"""A task's input fields: the data columns a prompt names as `{column}`, or a classifier's text and pair.

`{text}` stands for the task's `text_column`, so one-field prompts read as before. `{{` and `}}`
are literal braces (few-shot demonstrations are escaped this way before they join a prompt); a
lone brace that opens no placeholder stays literal. This module imports only the kind table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tasks.kinds import get_kind

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
TEXT = "text"  # the placeholder that means the task's text_column


def parse(template: str) -> tuple[list[str], list[str]]:
    """The literal pieces (unescaped) and the placeholder names between them: len(pieces) = len(names) + 1."""
    pieces, names, buf, pos = [], [], "", 0
    for m in PLACEHOLDER.finditer(template):
        buf += template[pos : m.start()]
        pos = m.end()
        if m.group(1) is None:  # an escaped brace
            buf += m.group()[0]
            continue
        pieces.append(buf)
        names.append(m.group(1))
        buf = ""
    pieces.append(buf + template[pos:])
    return pieces, names


def placeholders(template: str) -> list[str]:
    """The placeholder names of `template`, in order."""
    return parse(template)[1]


def split_at_fields(template: str) -> tuple[str, str, str]:
    """The raw template before its first placeholder, from there to the end of its last, and after it."""
    spans = [m.span() for m in PLACEHOLDER.finditer(template) if m.group(1) is not None]
    if not spans:
        return template, "", ""
    return template[: spans[0][0]], template[spans[0][0] : spans[-1][1]], template[spans[-1][1] :]


def escape(text: str) -> str:
    """`text` as literal template text: its braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def column_of(name: str, text_column: str) -> str:
    """The data column a placeholder names."""
    return text_column if name == TEXT else name


def input_columns(task: Any) -> tuple[str, ...]:
    """The data columns `task` reads for each input, in prompt (or text, pair) order."""
    if get_kind(task.kind).prompted:
        return tuple(column_of(n, task.text_column) for n in placeholders(task.prompt))
    return (task.text_column, task.pair_column) if task.pair_column else (task.text_column,)


def main_column(task: Any) -> str:
    """The column an example's `text` holds: `text_column` when it is an input, else the first input."""
    columns = input_columns(task)
    return task.text_column if task.text_column in columns or not columns else columns[0]


def render(template: str, values: Mapping[str, str], text_column: str) -> str:
    """`template` with each placeholder replaced by its column's value."""
    pieces, names = parse(template)
    out = pieces[0]
    for name, piece in zip(names, pieces[1:]):
        out += values[column_of(name, text_column)] + piece
    return out


def substitute(template: str, values: Mapping[str, str], text_column: str) -> str:
    """`template` with each placeholder replaced by its column's value, the rest (escapes too) left as is."""
    return PLACEHOLDER.sub(lambda m: m.group() if m.group(1) is None else values[column_of(m.group(1), text_column)],
                           template)
