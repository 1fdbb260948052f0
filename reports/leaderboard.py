"""Many models in one report: a leaderboard against the baseline, and a curve over the checkpoints
of one fine-tune.

The leaderboard ranks each run by its paired accuracy difference from the baseline (95% interval
of `reports.power`), with McNemar's p-value per comparison and Holm's step-down adjustment over
the k comparisons (Holm 1979), so that "significant" holds for the family of k tests at 5%.

A checkpoint curve needs runs whose models are Trainer checkpoints (`checkpoint-STEP` folders
holding `trainer_state.json`, as `tenser finetune --keep-checkpoints` keeps them) of one
fine-tune: their test metrics are drawn over training steps, and the checkpoint chosen on
validation (best validation loss, the Trainer's `best_global_step`) is marked as the one to trust.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.metrics.seed_stats import holm
from reports import charts
from reports import formatting as fmt
from reports.comparison import ALPHA, PairedComparison
from reports.power import paired_difference
from reports.sources import LoadedRun

TRAINER_STATE = "trainer_state.json"


def leaderboard(comparisons: list[PairedComparison]) -> dict[str, Any] | None:
    """Rows ranked by paired accuracy difference, with Holm-adjusted McNemar p-values; None for fewer than 2."""
    paired = [c for c in comparisons if c.paired and c.mcnemar is not None and c.other_pred is not None]
    if len(comparisons) < 2 or not paired:
        return None
    adjusted = holm(p_values=[c.mcnemar.p_value for c in paired if c.mcnemar is not None])
    entries = []
    for comp, p_holm in zip(paired, adjusted):
        d = paired_difference(comp.base.correct, comp.other_pred == comp.base.gold)
        assert comp.mcnemar is not None
        entries.append({"role": comp.other.role, "name": comp.other.name, "path": str(comp.other.path),
                        "accuracy": d.second, "difference": d.mean, "ci95": [d.low, d.high],
                        "p_mcnemar": comp.mcnemar.p_value, "p_holm": p_holm, "significant": p_holm < ALPHA})
    entries.sort(key=lambda e: -e["difference"])
    rows = [{"rank": str(i + 1), "run": f"{e['role']} · {e['name']}", "accuracy": fmt.num(e["accuracy"]),
             "difference": fmt.signed(e["difference"]), "ci": fmt.interval(e["ci95"], sign=True),
             "p": fmt.p_value(e["p_mcnemar"]), "p_holm": fmt.p_value(e["p_holm"]),
             "verdict": "significant at 5% (Holm)" if e["significant"] else "not significant (Holm)",
             "significant": e["significant"]} for i, e in enumerate(entries)]
    return {"rows": rows, "k": len(paired), "baseline": comparisons[0].base.role,
            "record": {"baseline": str(comparisons[0].base.path), "adjustment": "Holm 1979 step-down over the "
                       f"{len(paired)} McNemar tests", "runs": entries}}


def trainer_checkpoint(run: LoadedRun) -> tuple[Path, int, float | None] | None:
    """(checkpoint folder, global step, epoch) when the run's model is a Trainer checkpoint, else None."""
    folder = Path(str(run.results["model"].get("name_or_path", ""))).expanduser()
    state = folder / TRAINER_STATE
    if not state.is_file():
        return None
    try:
        body = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return folder, int(body.get("global_step", 0)), body.get("epoch")


def checkpoint_curve(runs: list[LoadedRun]) -> dict[str, Any] | None:
    """Test accuracy and macro F1 over training steps for the checkpoints of one fine-tune among `runs`."""
    points = [(run, found) for run in runs if (found := trainer_checkpoint(run)) is not None]
    if len(points) < 2 or len({found[0].parent.resolve() for _, found in points}) != 1:
        return None
    points.sort(key=lambda p: p[1][1])
    chosen = _chosen_step(points[-1][1][0])
    rows = [{"step": f"{found[1]:,}", "epoch": fmt.num(found[2], 2), "run": f"{run.role} · {run.name}",
             "accuracy": fmt.num(run.metrics["accuracy"]), "f1": fmt.num(run.metrics["f1_macro"]),
             "chosen": found[1] == chosen} for run, found in points]
    note = (f"The checkpoint chosen on validation (step {chosen:,}, best validation loss) is the one to trust. "
            "Choosing the checkpoint with the best test score would tune on the test set, and its score would "
            "overstate what a new sample gives.") if chosen is not None else \
        "No checkpoint records the validation choice; choose on validation, never on these test scores."
    return {"rows": rows, "note": note, "chart": _curve_chart(points, chosen)}


def _chosen_step(last: Path) -> int | None:
    """The step the Trainer chose on validation loss, from the latest checkpoint's trainer_state.json."""
    body = json.loads((last / TRAINER_STATE).read_text(encoding="utf-8"))
    if body.get("best_global_step") is not None:
        return int(body["best_global_step"])
    best = body.get("best_model_checkpoint")
    return int(str(best).rsplit("-", 1)[-1]) if best and str(best).rsplit("-", 1)[-1].isdigit() else None


def _curve_chart(points: list[tuple[LoadedRun, tuple[Path, int, float | None]]], chosen: int | None) -> str:
    steps = [found[1] for _, found in points]
    with charts.figure(6.4, 3.0) as fig:
        ax = fig.subplots()
        for i, (key, label) in enumerate((("accuracy", "test accuracy"), ("f1_macro", "test macro F1"))):
            ax.plot(steps, [run.metrics[key] for run, _ in points], "o-", color=charts.colour(i + 1), label=label)
        if chosen is not None:
            ax.axvline(chosen, color="#222222", ls="--", lw=1.2, label="chosen on validation")
        ax.set_xlabel("training step")
        ax.legend(loc="lower right")
        return charts.encode(fig)
