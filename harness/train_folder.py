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
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from harness import distributed, identity, keyed_folder, runs
from harness.errors import UserError
from harness.train_data import CHECKPOINTS, FinetuneConfig
from tasks import Task

SETTINGS = "tenser_finetune.json"
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
    saved = any((output / CHECKPOINTS).glob("checkpoint-*"))
    if resume:
        if not saved:
            raise UserError(f"{{resume}}: no Trainer checkpoint in {output / CHECKPOINTS}; start without {{resume}}",
                            param="resume")
        return
    hint = "pass {resume} to continue its interrupted fine-tune, " if saved else ""
    keyed_folder.make_ready(output, WORDING, overwrite=overwrite, clear=keyed_folder.everything, hint=hint)


def settings(model: str, task: Task, cfg: FinetuneConfig, fingerprint: str) -> dict[str, Any]:
    """What a fine-tune's result depends on: the key a resume must match."""
    knobs = {k: v for k, v in asdict(cfg).items() if k not in UNKEYED}
    return {"model": identity.model_ref(model), "task": task.to_dict(), "data": fingerprint, **knobs}


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
