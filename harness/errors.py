"""The one exception type for user mistakes. The CLI prints its message on one line and
exits with code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator


class UserError(Exception):
    """Bad input from the user: the message names the value and the fix."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def renamed_flags(names: dict[str, str]) -> Iterator[None]:
    """Code shared by several commands names its own flags (`--data`); where a command calls that flag
    something else (`compare`'s `--train-data`), re-raise its user errors with this command's names."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        for old, new in names.items():
            message = re.sub(rf"(?<![\w-]){re.escape(old)}(?![\w-])", new, message)
        if message == str(exc):
            raise
        raise type(exc)(message) from None
