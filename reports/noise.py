"""The noise floor of a change: how far results move with things that should not matter.

Design (the cheapest honest one): no extra scoring at report time. `tenser bench` already
scores the same examples twice, once the way Tenser runs (its default dtype and batch size)
and once the fp32, one-review-at-a-time reference, and records the share of predictions that
differ (`agreement.disagreement` in bench.json). A prediction that flips moves a run's
accuracy by at most 1/n, so that share bounds how far each run's accuracy moves with batch
size and precision; a change between two runs can move by the sum of both runs' bounds. A
change no larger than that floor is labelled "within noise". Without a bench.json the floor
is "not measured", and the report says how to measure it; it is never guessed.
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


def load_noise(path: str | Path | None) -> dict[str, NoiseFloor]:
    """Noise floors per task from a bench.json written by `tenser bench`; {} without a path."""
    if path is None:
        return {}
    source = Path(path)
    if source.is_dir():
        source = source / "bench.json"
    try:
        body = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--noise {source}: not found; give the bench.json written by `tenser bench --out DIR`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--noise {source}: not JSON ({exc}); give the bench.json written by `tenser bench`") from None
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


def floor_for(task: str, floors: dict[str, NoiseFloor]) -> NoiseFloor | None:
    """The floor measured for `task`, else the largest one measured (None when nothing was)."""
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
