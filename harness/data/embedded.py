"""Embedded data: `embedded:imdb` names the real IMDB sample shipped inside the `tasks` package
(tasks/data/imdb_sample/, with its PROVENANCE.md), and the `embedded:` prefix that the embedded model
(harness.backends.base.embedded) shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UserError

PREFIX = "embedded:"
DATA = {"imdb": ("data", "imdb_sample")}  # inside the `tasks` package


def is_embedded(name: str | None) -> bool:
    return bool(name) and str(name).startswith(PREFIX)


def lookup(name: str, table: dict[str, Any], what: str) -> Any:
    key = name.removeprefix(PREFIX)
    if key not in table:
        known = ", ".join(PREFIX + k for k in table)
        raise UserError(f"{name}: no such embedded {what}; known: {known}")
    return table[key]


def data_path(name: str) -> str:
    """The bundled data folder named `embedded:NAME`."""
    import tasks

    folder = Path(tasks.__file__).resolve().parent.joinpath(*lookup(name, DATA, "data set"))
    if not folder.is_dir():
        raise UserError(f"{name}: the bundled sample is missing from this install ({folder}); reinstall tenser")
    return str(folder)
