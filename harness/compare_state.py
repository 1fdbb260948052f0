"""A `tenser compare` output folder: the settings its result depends on, how far it got, and resuming.

A fresh compare records its settings (models, task, data fingerprints, sample, training
hyperparameters; not the device or batch size) and its phase in `OUT/compare.json`. Re-running
the same command after a crash resumes: finished run folders are reused, an unfinished one resumes
by its job key (`harness.jobs`), a finished fine-tune is reused, an interrupted one continues from
its last Trainer checkpoint (`harness.train_folder`), a finished noise floor (OUT/noise.json,
`harness.noise_check`) is reused while its runs are, and the report is rendered again. A folder
recorded under other settings is refused, naming the first that differs, unless `--overwrite`.
The whole compare holds OUT's lock, so a second compare into it stops with one line. With
`--seeds` (K >= 2) each training seed has its own checkpoint and run folder (`seed_folders`), and
compare.json records every seed's phase, so a resume continues with the unfinished seed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harness import distributed, runs
from harness.errors import UserError
from harness.train_data import CHECKPOINTS, TRAINING_LOG, FinetuneConfig

STATE = "compare.json"
UNKEYED = ("device",)  # a resume may move to another device
FLAGS = {"model": "--model", "finetuned": "--finetuned", "task": "--task (or its -T overrides)", "data": "--data",
         "data_content": "the data in --data", "split": "--split", "limit": "--limit", "seed": "--seed",
         "dtype": "--dtype", "train_data": "--train-data", "train_content": "the data in --train-data",
         "select_on": "--select-on", "val_limit": "--val-limit", "training": "the fine-tuning flags"}
TRAINING_FLAGS = {"limit": "--train-limit", "batch_size": "--train-batch-size"}
FinetuneStep = Literal["reuse", "resume", "fresh"]
KEPT = ("seeds", "validation")  # what compare.json keeps from one mark to the next


def seed_folders(seed: int, seeds: int) -> tuple[str, str]:
    """The checkpoint folder and run-name stem of one training seed: today's names for one seed."""
    return ("finetuned", "finetuned") if seeds == 1 else (f"finetuned-seed{seed}", f"finetuned-seed{seed}")


def seed_phase(out: Path, seed: int, seeds: int) -> str:
    """How far one seed got, read from its folders: fine-tuning, fine-tuned, scored, or waiting."""
    folder, stem = seed_folders(seed, seeds)
    if any((out / "runs").glob(f"{stem}__*/{runs.RESULTS}")):
        return "scored"
    if (out / folder / TRAINING_LOG).is_file():
        return "fine-tuned"
    return "fine-tuning" if (out / folder).is_dir() else "waiting"


def model_identity(model: str | None) -> str | None:
    """A model id as given, or a local folder's path and content hash (a changed checkpoint is another model)."""
    from harness.models import content_hash

    if model is None:
        return None
    local = Path(model).expanduser()
    return f"{local.resolve()} ({content_hash(local)})" if local.is_dir() else model


def data_ref(data: str | None) -> str | None:
    """A data path as an absolute path (an embedded or Hub name as given)."""
    local = Path(data).expanduser() if data else None
    return str(local.resolve()) if local is not None and local.exists() else data


def settings(model: str, *, finetuned: str | None, task: dict[str, Any], scoring: dict[str, Any],
             training: FinetuneConfig | None, fingerprints: tuple[str, str | None]) -> dict[str, Any]:
    """What a compare's result depends on: the key a resumed compare must match. `scoring` holds the
    data, split, limit, seed, dtype, train_data, select_on and val_limit it was given."""
    refs = {k: data_ref(v) if k in ("data", "train_data") else v for k, v in scoring.items()}
    knobs = None if training is None else {k: v for k, v in asdict(training).items() if k not in UNKEYED}
    return json.loads(json.dumps({
        "model": model_identity(model), "finetuned": model_identity(finetuned), "task": task, **refs,
        "data_content": fingerprints[0], "train_content": fingerprints[1], "training": knobs,
    }))  # as recorded: tuples become lists


@dataclass(frozen=True)
class CompareFolder:
    """An open compare folder: fresh, or `resumed` from an interrupted compare of the same settings."""

    out: Path
    settings: dict[str, Any]
    resumed: bool
    seeds: tuple[int, ...] = ()  # the training seeds; () when the compare does not fine-tune

    def mark(self, phase: str, **record: Any) -> None:
        """Record that the compare is now in `phase`, each seed's phase, and `record` (rank 0 writes)."""
        if not distributed.world().main:
            return
        kept = {k: v for k, v in (_recorded(self.out) or {}).items() if k in KEPT}
        if self.seeds:
            kept["seeds"] = {str(s): seed_phase(self.out, s, len(self.seeds)) for s in self.seeds}
        state = {"tenser_compare": 1, "phase": phase, "settings": self.settings, **kept, **record}
        runs.write_atomic(self.out / STATE, json.dumps(state, indent=2, ensure_ascii=False) + "\n")

    def recorded(self, key: str) -> Any:
        """What a resumed compare recorded under `key` (e.g. the validation check), else None."""
        return (_recorded(self.out) or {}).get(key) if self.resumed else None

    def finished_run(self, run_dir: Path) -> Path | None:
        """`run_dir` when a resumed compare finished it already (its results.json is written last)."""
        if not (self.resumed and (run_dir / runs.RESULTS).is_file()):
            return None
        print(f"{run_dir.name}: reusing the finished run in {run_dir}", file=sys.stderr)
        return run_dir

    def finetune_step(self, output: Path) -> FinetuneStep:
        """Reuse a finished fine-tune, resume one from its last Trainer checkpoint, or start afresh."""
        if self.resumed and (output / TRAINING_LOG).is_file():  # written after the model, before cleaning up
            shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)  # a crash may have left some behind
            print(f"reusing the finished fine-tune in {output}", file=sys.stderr)
            return "reuse"
        if self.resumed and any((output / CHECKPOINTS).glob("checkpoint-*")):
            return "resume"
        return "fresh"


def open_folder(out: Path, current: dict[str, Any], *, overwrite: bool, seeds: tuple[int, ...] = ()) -> CompareFolder:
    """A fresh compare folder (an empty one, or emptied with `overwrite`), or the interrupted compare of the
    same settings to resume; another compare's folder is refused naming the first setting that differs."""
    recorded = _recorded(out)
    if recorded is not None and not overwrite:
        _check(out, recorded["settings"], current)
        phase = recorded.get("phase", "?")
        state = "it finished; reusing its results" if phase == "done" else f"it stopped during {phase}"
        print(f"resuming the compare in {out} ({state}); pass --overwrite to start again", file=sys.stderr)
        return CompareFolder(out, current, resumed=True, seeds=seeds)
    if overwrite and out.is_dir():
        (out / STATE).unlink(missing_ok=True)
    runs.prepare_run_dir(out, overwrite=overwrite)
    return CompareFolder(out, current, resumed=False, seeds=seeds)


def _recorded(out: Path) -> dict[str, Any] | None:
    path = out / STATE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("settings"), dict):
        raise UserError(f"{path}: unreadable, so the interrupted compare cannot be resumed; pass --overwrite to "
                        f"start again, or choose another --out")
    return recorded


def _check(out: Path, then_all: dict[str, Any], now_all: dict[str, Any]) -> None:
    for key in [*now_all, *(k for k in then_all if k not in now_all)]:
        then, now = then_all.get(key), now_all.get(key)
        if then == now:
            continue
        flag = FLAGS.get(key, "--" + key.replace("_", "-"))
        if isinstance(then, dict) and isinstance(now, dict):  # the task or the training flags: name the field
            field = next(k for k in [*now, *then] if then.get(k) != now.get(k))
            flag = TRAINING_FLAGS.get(field, "--" + field.replace("_", "-")) if key == "training" else \
                f"{flag}'s field {field}"
            then, now = then.get(field), now.get(field)
        raise UserError(f"--out {out} holds an interrupted compare with other settings: {flag} differs "
                        f"({_show(then)} then, {_show(now)} now); rerun it with the same settings, pass --overwrite "
                        f"to start again, or choose another --out")


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT's lock on rank 0 for the whole compare: a second compare into OUT stops with one line."""
    with runs.lock_on_main(out):
        yield
