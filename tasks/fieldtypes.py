"""Field types of the `Task` record: whether a value fits a field's type hint, and the hint in a user's words.

Task files are plain data, so a wrong type must be refused, not read in some other way: the string
"np" is not the labels n and p, and the string "false" does not turn a switch on.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

_WORDS = {str: ("a string", "strings"), int: ("a whole number", "whole numbers"), bool: ("true or false", "booleans"),
          type(None): ("none", "nones")}


def as_tuples(value: Any, hint: Any) -> Any:
    """`value` with its lists turned into tuples wherever `hint` asks for tuples (JSON and TOML have lists only)."""
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        return tuple(as_tuples(item, typing.get_args(hint)[0]) for item in value)
    return value


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` names (a Literal's values are checked by the task's own checks)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return any(type(value) is type(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(fits(item, args[0]) for item in value)
    if hint is int:  # True is an int to Python, not a number of tokens to a user
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def describe(hint: Any, *, plural: bool = False) -> str:
    """The type `hint` in a task file writer's words, e.g. 'a list of strings'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg, plural=plural) for arg in args)
    if origin is tuple:
        return ("lists of " if plural else "a list of ") + describe(args[0], plural=True)
    return _WORDS.get(hint, (hint.__name__, hint.__name__ + "s"))[plural]


def shown(value: Any) -> str:
    """`value` as the task file wrote it (lists, not the tuples the record keeps)."""
    def lists(v: Any) -> Any:
        return [lists(item) for item in v] if isinstance(v, tuple) else v
    return repr(lists(value))
