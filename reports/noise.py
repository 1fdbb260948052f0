"""The noise floor of a change: how far results move with things that should not matter.

Design (the cheapest honest one): no extra scoring at report time. `tenser bench` already
scores the same examples twice, once the way Tenser runs (its default dtype and batch size)
and once the fp32, one-review-at-a-time reference, and records the share of predictions that
differ (`agreement.disagreement` in bench.json). A prediction that flips moves a run's
accuracy by at most 1/n, so that share bounds how far each run's accuracy moves with batch
size and precision; a change between two runs can move by the sum of both runs' bounds. A
change no larger than that floor is labelled "within noise". Without a bench.json the floor
is "not measured", and the report says how to measure it; it is never guessed.

`tenser compare` measures its own floor by default (`harness.recipes.noise_check`): each run's
predictions on a seeded, stratified subset re-scored the reference way, written as OUT/noise.json
(`tenser_noise` in it). Its floors are per run folder, not per task; a run scored as the
reference already has a floor of 0 by construction, said so in the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError


@dataclass(frozen=True)
class NoiseFloor:
    """The share of predictions that moved between two ways of scoring that should agree."""

    share: float
    n: int
    task: str
    setting: str  # e.g. "float32, batch auto vs float32 batch 1"
    source: str = "bench"  # "bench" (bench.json) or "compare" (a compare's noise.json)
    run: str = ""  # compare: the run folder's name it was measured on
    flips: int | None = None  # compare: predictions that differed on the subset
    reference: bool = False  # compare: the run was scored as the reference already (floor 0 by construction)
    max_prob_diff: float | None = None  # compare: the largest label-probability difference on the subset

    def record(self) -> dict[str, Any]:
        """What comparison.json says about this floor."""
        out: dict[str, Any] = {"task": self.task, "share": self.share, "n": self.n, "setting": self.setting}
        if self.source == "compare":
            out.update(source="compare", run=self.run, flips=self.flips, reference=self.reference,
                       max_prob_diff=self.max_prob_diff)
        return out


def load_noise(path: str | Path | None) -> dict[str, NoiseFloor]:
    """Noise floors per task from a bench.json written by `tenser bench`, or per run folder from a
    compare's noise.json; {} without a path."""
    if path is None:
        return {}
    source = Path(path)
    if source.is_dir():
        source = source / ("noise.json" if (source / "noise.json").is_file() and not (source / "bench.json").is_file()
                           else "bench.json")
    try:
        body = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--noise {source}: not found; give the bench.json written by `tenser bench --out DIR`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--noise {source}: not JSON ({exc}); give the bench.json written by `tenser bench`") from None
    if isinstance(body, dict) and "tenser_noise" in body:
        return _compare_floors(body, source)
    floors = {}
    for entry in body.get("scoring") or [] if isinstance(body, dict) else []:
        floor = _floor(entry)
        if floor is not None:
            floors[floor.task] = floor
    if not floors:
        raise UserError(f"--noise {source}: no agreement check recorded; run `tenser bench` with the "
                        f"one_at_a_time way (the default)")
    return floors


def _floor(entry: Any) -> NoiseFloor | None:
    agree = entry.get("agreement") if isinstance(entry, dict) else None
    if not isinstance(agree, dict) or not isinstance(agree.get("disagreement"), (int, float)):
        return None
    runtime = entry.get("runtime") or {}
    setting = f"{runtime.get('dtype', '?')}, batch {runtime.get('batch_size', '?')} vs float32 batch 1"
    return NoiseFloor(float(agree["disagreement"]), int(entry.get("n", 0)), str(entry.get("task", "?")), setting)


def _compare_floors(body: dict[str, Any], source: Path) -> dict[str, NoiseFloor]:
    floors = {}
    for entry in body.get("runs") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("share"), (int, float)) or not entry.get("run"):
            continue
        setting = f"{entry.get('setting', '?')} vs {entry.get('reference_setting', 'float32, batch 1')}"
        floors[str(entry["run"])] = NoiseFloor(
            float(entry["share"]), int(entry.get("n", 0)), str(entry.get("task", "?")), setting, source="compare",
            run=str(entry["run"]), flips=int(entry.get("flips", 0)), reference=bool(entry.get("is_reference")),
            max_prob_diff=entry.get("max_prob_diff"))
    if not floors:
        raise UserError(f"--noise {source}: no run checked in this noise.json; rerun `tenser compare` with "
                        f"--noise-examples N (N > 0)")
    return floors


def describe(floors: dict[str, NoiseFloor]) -> str:
    """The report's sentence on how the floor was measured (floors from load_noise, not empty)."""
    measured = list(floors.values())
    if all(f.source == "bench" for f in measured):
        return ("Noise floor: the share of predictions that moved between Tenser's default dtype and batch size and "
                "the fp32, one-at-a-time reference in the given bench.json, summed over both runs; a change no larger "
                "is within noise.")
    n = max(f.n for f in measured)
    checks = "; ".join(f"{f.run}: {f.setting}, {f.flips} of {f.n} flipped" for f in measured)
    text = (f"Noise floor, measured by this compare on a seeded, label-stratified subset of {n} test examples: each "
            f"model re-scored them the reference way (float32 weights, batch size 1) and the share of predictions "
            f"that differ from its run's own is that run's bound, summed over both runs (noise.json next to this "
            f"page; {checks}); a change no larger is within noise.")
    same = [f.run for f in measured if f.reference]
    if len(same) == len(measured):
        text += (" Both runs were scored in float32 at batch size 1 already, the reference itself, so the floor is 0 "
                 "by construction (still measured on the subset); on a GPU's default mixed precision and batch size it "
                 "need not be.")
    elif same:
        text += f" {', '.join(same)} was scored as the reference already: its share is 0 by construction."
    return text


def floor_for(task: str, floors: dict[str, NoiseFloor], run: str = "") -> NoiseFloor | None:
    """The floor measured on the run folder `run` (a compare's noise.json), else for `task`, else the
    largest one measured (None when nothing was)."""
    if run and run in floors:
        return floors[run]
    if task in floors:
        return floors[task]
    return max(floors.values(), key=lambda f: f.share, default=None)


def change_floor(first: NoiseFloor | None, second: NoiseFloor | None) -> float | None:
    """How far a change between two runs can move by noise: the sum of both runs' floors.

    >>> a = NoiseFloor(0.005, 200, "imdb_zeroshot", "bf16")
    >>> change_floor(a, a), change_floor(a, None)
    (0.01, None)
    """
    if first is None or second is None:
        return None
    return first.share + second.share


def within_noise(change: float, floor: float | None) -> bool | None:
    """True when |change| is no larger than the floor; None when the floor was not measured.

    >>> within_noise(0.004, 0.005), within_noise(-0.02, 0.005), within_noise(0.0, 0.0), within_noise(0.1, None)
    (True, False, True, None)
    """
    if floor is None:
        return None
    return abs(change) <= floor + 1e-12
