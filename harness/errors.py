"""The one exception type for user mistakes. The CLI prints its message on one line and
exits with code 2; anything else is a bug and keeps its traceback.

Errors speak the caller's language: a message names the parameters it is about as `{name}`
placeholders (`param`, the one whose value is bad, and any `mentions`). A Python caller reads
the parameter's name (`batch_size 0: ...`); the CLI renders each as its flag (`--batch-size 0: ...`)
through `speak`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class UserError(Exception):
    """Bad input from the user: the message names the value and the fix."""

    def __init__(self, message: str, *, param: str | None = None, mentions: tuple[str, ...] = ()) -> None:
        self.template, self.param, self.mentions = message, param, mentions
        super().__init__(self.speak())

    @property
    def params(self) -> tuple[str, ...]:
        """Every parameter the message names: `param` first."""
        return ((self.param,) if self.param else ()) + self.mentions

    def speak(self, name: Callable[[str], str] = str) -> str:
        """The message with each parameter placeholder rendered by `name` (default: the Python name)."""
        text = self.template
        for p in self.params:
            text = text.replace("{" + p + "}", name(p))
        return text

    def extended(self, more: str, *, mentions: tuple[str, ...] = ()) -> UserError:
        """The same error with `more` (which may name `mentions`) added to its message."""
        new = self._remade(self.template + more, {})
        new.mentions = (*new.mentions, *(m for m in mentions if m not in new.params))
        new.args = (new.speak(),)
        return new

    def renamed(self, names: dict[str, str]) -> UserError:
        """The same error with its parameters renamed (`names`: old name to new)."""
        template = self.template
        for p in self.params:
            template = template.replace("{" + p + "}", "{" + names.get(p, p) + "}")
        return self._remade(template, names)

    def _remade(self, template: str, names: dict[str, str]) -> UserError:
        new = type(self).__new__(type(self))  # a copy of any subclass, whatever its __init__ takes
        new.__dict__.update(self.__dict__)
        new.template = template
        new.param = names.get(self.param, self.param) if self.param else None
        new.mentions = tuple(names.get(m, m) for m in self.mentions)
        new.args = (new.speak(),)
        return new


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def renamed_params(names: dict[str, str]) -> Iterator[None]:
    """Code shared by several entry points names its own parameters (`data`); where an entry point calls
    that parameter something else (`compare`'s `train_data`), re-raise its user errors with this one's names."""
    try:
        yield
    except UserError as exc:
        if not any(p in names for p in exc.params):
            raise
        raise exc.renamed(names) from None
