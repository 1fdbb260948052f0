"""The fine-tune output folder (`tenser finetune --output`): its lock, getting it ready (fresh,
`--overwrite` or `--resume`), and the settings a resume must match.

A fine-tune holds the folder's lock (as `tenser run` holds a run folder's) for its whole run, so a
second `tenser finetune --overwrite` on the same folder stops instead of deleting the first one's
checkpoints. A fresh fine-tune records its settings (model, task, data fingerprint, every
hyperparameter but the device) in `checkpoints/tenser_finetune.json`; `--resume` refuses to continue
under different ones and names the first that differs.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from harness import distributed
from harness.errors import UserError
from harness.store import keyed_folder, runs
from harness.store.identity import model_ref
from harness.training.config import CHECKPOINTS, FinetuneConfig
from tasks import Task

SETTINGS = "tenser_finetune.json"
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last: a checkpoint without it is half-written
UNKEYED = ("device",)  # a resume may move to another device
LABELS = {"task": "{task} (or its -T overrides)", "data": "the training data ({data})"}
P = ParamSpec("P")
R = TypeVar("R")


def holds_lock(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` (which takes an `output` folder argument) holding that folder's lock on rank 0."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        output = Path(signature.bind(*args, **kwargs).arguments["output"])
        with _rank0_lock(output):
            return fn(*args, **kwargs)

    return locked


@contextlib.contextmanager
def _rank0_lock(output: Path) -> Iterator[None]:
    distributed.init()
    with keyed_folder.lock_on_main(output, param="output"):
        yield


WORDING = keyed_folder.Wording(
    "output", not_folder="{output} {path}: exists and is not a folder; choose another {output}",
    not_empty="{output} {path}: the folder is not empty; {hint}pass {overwrite} to replace it, or choose another "
              "{output}",
    cannot_create="{output} {path}: cannot create the folder ({why}); choose another {output}")


def prepare(output: Path, *, overwrite: bool, resume: bool) -> None:
    """Make `output` ready: an interrupted fine-tune to resume, emptied with `overwrite`, else new or empty."""
    if resume:
        drop_torn_checkpoints(output)
    saved = any((output / CHECKPOINTS).glob("checkpoint-*"))
    if resume:
        if (output / "training_log.json").is_file():
            raise UserError(f"{{resume}}: the fine-tune in {output} finished (training_log.json); nothing to resume: use "
                            f"it as it is, or pass --overwrite instead of --resume to train it again", param="resume")
        if not saved:
            raise UserError(f"{{resume}}: no Trainer checkpoint in {output / CHECKPOINTS}; start without {{resume}}",
                            param="resume")
        return
    hint = "pass {resume} to continue its interrupted fine-tune, " if saved else ""
    keyed_folder.make_ready(output, WORDING, overwrite=overwrite, clear=keyed_folder.everything, hint=hint)


def drop_torn_checkpoints(output: Path) -> list[str]:
    """Remove the Trainer checkpoints a full disk or a kill left half-written; return their names."""
    torn = [p for p in sorted((output / CHECKPOINTS).glob("checkpoint-*")) if not (p / TRAINER_STATE).is_file()]
    for path in torn:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in torn]


@contextlib.contextmanager
def full_disk_is_a_user_error(output: Path) -> Iterator[None]:
    """A disk that fills while the Trainer or Tenser saves into `output` is one line; the torn checkpoint goes."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT) if isinstance(exc, OSError) else any(
            sign in str(exc) for sign in ("inline_container", "PytorchStreamWriter", "No space left", "os error 28"))
        if not full:  # torch reports a failed write as RuntimeError naming its zip writer
            raise
        torn = drop_torn_checkpoints(output)
        kept = any((output / CHECKPOINTS).glob("checkpoint-*"))
        again = "then add --resume to continue from the last whole checkpoint" if kept else "then run it again"
        raise UserError(f"{{output}} {output}: writing failed, the disk is likely full ({str(exc).splitlines()[0][:80]}); "
                        f"removed the half-written {', '.join(torn) or 'files'}; free some space, {again}", param="output") from None


def settings(model: str, task: Task, cfg: FinetuneConfig, fingerprint: str) -> dict[str, Any]:
    """What a fine-tune's result depends on: the key a resume must match."""
    knobs = {k: v for k, v in asdict(cfg).items() if k not in UNKEYED}
    return {"model": model_ref(model), "task": task.to_dict(), "data": fingerprint, **knobs}


def check_settings(output: Path, current: dict[str, Any], *, resume: bool) -> None:
    """Record the settings of a fresh fine-tune; on resume, refuse settings that differ from the recorded ones."""
    path = output / CHECKPOINTS / SETTINGS
    if not resume:
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(path, json.dumps(current, indent=2, ensure_ascii=False) + "\n")
        return
    recorded = keyed_folder.read_record(path)
    if recorded is None:
        print(f"warning: {path} is missing or unreadable; cannot check that --resume uses the interrupted "
              f"fine-tune's settings", file=sys.stderr)
        return
    differs = keyed_folder.first_difference(recorded, current, _label)
    if differs is not None:
        label, param, values = differs
        raise UserError(f"{{resume}}: {label} differs from the interrupted fine-tune's ({values}); resume with the "
                        f"same settings, or start again with {{overwrite}}", param=param, mentions=("resume", "overwrite"))


def _label(key: str, field: str | None) -> tuple[str, str]:
    """How a differing setting is named: its parameter, and for the task the field that differs."""
    text = LABELS.get(key, "{" + key + "}")
    return (f"{text}'s field {field}" if field else text), key
