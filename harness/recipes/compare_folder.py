"""A `tenser compare` output folder: the settings its result depends on, how far it got, and resuming.

A fresh compare records its settings (models, task, data fingerprints, sample, training
hyperparameters; not the device or batch size) and its phase in `OUT/compare.json`. Re-running
the same command after a crash resumes: finished run folders are reused, an unfinished one resumes
by its job key (`harness.recipes.jobs`), a finished fine-tune is reused, an interrupted one continues from
its last Trainer checkpoint (`harness.training.folder`), a finished noise floor (OUT/noise.json,
`harness.recipes.noise_check`) is reused while its runs are, and the report is rendered again. A folder
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

from harness import distributed
from harness.errors import UserError
from harness.store import keyed_folder, runs
from harness.store.identity import data_ref, model_ref
from harness.training.config import CHECKPOINTS, TRAINING_LOG, FinetuneConfig

STATE = "compare.json"
UNKEYED = ("device",)  # a resume may move to another device
LABELS = {"task": ("{task} (or its -T overrides)", "task"), "data_content": ("the data in {data}", "data"),
          "train_content": ("the data in {train_data}", "train_data"), "training": ("the fine-tuning flags", "training")}
TRAINING_PARAMS = {"limit": "train_limit"}  # compare's own name for a fine-tuning setting; others are training.X
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


def settings(model: str, *, finetuned: str | None, task: dict[str, Any], scoring: dict[str, Any],
             training: FinetuneConfig | None, fingerprints: tuple[str, str | None]) -> dict[str, Any]:
    """What a compare's result depends on: the key a resumed compare must match. `scoring` holds the
    data, split, limit, seed, dtype, train_data, select_on and val_limit it was given."""
    refs = {k: data_ref(v) if k in ("data", "train_data") else v for k, v in scoring.items()}
    knobs = None if training is None else {k: v for k, v in asdict(training).items() if k not in UNKEYED}
    return json.loads(json.dumps({
        "model": model_ref(model), "finetuned": finetuned and model_ref(finetuned), "task": task, **refs,
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
        from harness.training.folder import drop_torn_checkpoints

        if self.resumed:  # a checkpoint a full disk or a kill left half-written cannot be resumed from
            drop_torn_checkpoints(output)
        if self.resumed and any((output / CHECKPOINTS).glob("checkpoint-*")):
            return "resume"
        return "fresh"


def open_folder(out: Path, current: dict[str, Any], *, overwrite: bool, seeds: tuple[int, ...] = ()) -> CompareFolder:
    """A fresh compare folder (an empty one, or emptied with `overwrite`), or the interrupted compare of the
    same settings to resume; another compare's folder is refused naming the first setting that differs."""
    recorded = _recorded(out)
    if recorded is not None and not overwrite:
        differs = keyed_folder.first_difference(recorded["settings"], current, _label)
        if differs is not None:
            label, param, values = differs
            raise UserError(f"{{out}} {out} holds an interrupted compare with other settings: {label} differs "
                            f"({values}); rerun it with the same settings, pass {{overwrite}} to start again, or "
                            f"choose another {{out}}", param=param, mentions=("out", "overwrite"))
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
    recorded = keyed_folder.read_record(path)
    if not isinstance(recorded, dict) or not isinstance(recorded.get("settings"), dict):
        raise UserError(f"{path}: unreadable, so the interrupted compare cannot be resumed; pass {{overwrite}} to "
                        f"start again, or choose another {{out}}", param="out", mentions=("overwrite",))
    return recorded


def _label(key: str, field: str | None) -> tuple[str, str]:
    """How a differing setting is named: its parameter; the task's or the fine-tuning flags' field that differs."""
    if key == "training" and field is not None:
        param = TRAINING_PARAMS.get(field, "training." + field)
        return "{" + param + "}", param
    text, param = LABELS.get(key, ("{" + key + "}", key))
    return (f"{text}'s field {field}" if field else text), param


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT's lock on rank 0 for the whole compare: a second compare into OUT stops with one line."""
    with keyed_folder.lock_on_main(out):
        yield
