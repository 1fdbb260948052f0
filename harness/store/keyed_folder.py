"""Settings-keyed output folders: the one logic behind run folders, fine-tune outputs and compare folders.

A command that fills a folder records the settings its result depends on (its key) there. Run again
into the same folder, it is fresh (an empty or new folder), resumed (an interrupted job of the same
key), reused (a finished one), or refused: a non-empty folder without `overwrite`, or one recorded
under other settings, named by the first setting that differs. The process writing a folder holds
its lock, so a second process stops with one line instead of interleaving or deleting its files.
Each caller keeps its own wording (`Wording`) and record file; the decisions live here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError

LOCK = ".tenser.lock"  # held by the process writing the folder
Label = Callable[[str, str | None], tuple[str, str]]  # (setting, field) -> (message text, its parameter)


@dataclass(frozen=True)
class Wording:
    """How a command names its folder in the three refusals of `make_ready` (`{path}`: the folder;
    `{param}` placeholders as in `UserError`)."""

    param: str  # the parameter naming the folder (`out`, `output`)
    not_folder: str
    not_empty: str
    cannot_create: str


def is_empty(path: Path) -> bool:
    """Whether `path` holds nothing but its lock (the lock alone does not make a folder taken)."""
    return not any(p.name != LOCK for p in path.iterdir())


def make_ready(path: Path, wording: Wording, *, overwrite: bool, clear: Callable[[Path], Iterable[Path]],
               hint: str = "") -> None:
    """Create `path` fresh: a file there, or a non-empty folder without `overwrite`, is refused; with
    `overwrite`, the files and folders `clear(path)` lists are removed. `hint` goes into the not-empty refusal."""
    mentions = (wording.param, "overwrite", "resume")
    if path.exists() and not path.is_dir():
        raise UserError(_fill(wording.not_folder, path=path), param=wording.param, mentions=mentions)
    if path.is_dir() and not is_empty(path):
        if not overwrite:
            raise UserError(_fill(wording.not_empty, path=path, hint=hint), param=wording.param, mentions=mentions)
        for p in clear(path):
            _remove(p)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(_fill(wording.cannot_create, path=path, why=exc.strerror), param=wording.param,
                        mentions=mentions) from None


def _fill(template: str, **values: object) -> str:
    for name, value in values.items():  # not str.format: the templates hold {param} placeholders too
        template = template.replace("{" + name + "}", str(value))
    return template


def everything(path: Path) -> list[Path]:
    """All of `path` but its lock (which stays: it is what keeps a second process out)."""
    return [p for p in path.iterdir() if p.name != LOCK]


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)


def first_difference(then_all: dict[str, Any], now_all: dict[str, Any], label: Label) -> tuple[str, str, str] | None:
    """The first setting that differs, as (its text, its parameter, 'THEN then, NOW now'); None when none does.
    A setting that is a dict (the task, the training flags) is named by its first field that differs."""
    now_all = json.loads(json.dumps(now_all))  # as recorded: tuples become lists
    for key in [*now_all, *(k for k in then_all if k not in now_all)]:
        then, now = then_all.get(key), now_all.get(key)
        if then == now:
            continue
        field = None
        if isinstance(then, dict) and isinstance(now, dict):
            field = next((k for k in [*now, *then] if then.get(k) != now.get(k)), None)
            if field is None:  # only a field added since, at its default None (e.g. training.data_seed)
                continue
            then, now = then.get(field), now.get(field)
        text, param = label(key, field)
        return text, param, f"{show(then)} then, {show(now)} now"
    return None


def show(value: Any) -> str:
    """A recorded value in a message: strings as they are, the rest as JSON, cut at 60 characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def read_record(path: Path) -> Any:
    """The JSON a folder recorded at `path`; None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def lock(path: Path, *, param: str = "out") -> Iterator[None]:
    """Hold `path`'s lock while a job writes there: a second process writing the same folder
    (which would interleave or delete the first one's files) gets a clear error instead."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform (Windows): carry on unlocked
        yield
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / LOCK, "a")
    except OSError:  # not a folder, or not writable: make_ready says so
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"output folder {path} is in use by another tenser process; wait for it to finish "
                            f"or choose another {{{param}}}", param=param) from None
        try:
            yield
        finally:  # removed while still held: a process that opened it before sees it locked
            (path / LOCK).unlink(missing_ok=True)


@contextlib.contextmanager
def lock_on_main(path: Path, *, param: str = "out") -> Iterator[None]:
    """`lock(path)` held by rank 0 alone; a lock error stops every rank. `param` names the folder's parameter."""
    from harness import distributed  # lazy: reports read run folders and need no torch.distributed

    error: UserError | None = None
    with contextlib.ExitStack() as stack:
        if distributed.world().main:
            try:
                stack.enter_context(lock(path, param=param))
            except UserError as exc:
                error = exc
        distributed.check_all(error)
        yield
