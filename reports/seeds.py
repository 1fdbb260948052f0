"""Is the fine-tuning gain real? The report's training-seed section.

Runs after the baseline that are seeds of one recipe are grouped from their training logs: each
run's model has a `training_log.json`, and the logs agree on the base model, task, objective,
training data and every hyperparameter but the training seed, which differs. Their per-seed gains,
seed SD, test-sampling SE, pooled 95% interval, verdict and flips come from `harness.metrics.seed_stats`;
this module turns them into the first lines of the report, a per-seed table, a strip chart of
per-seed accuracy against the baseline, and the `seeds` record of comparison.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.metrics.seed_stats import seed_flips, seed_gains, verdict
from reports import charts, sections
from reports import formatting as fmt
from reports.comparison import PairedComparison


def recipe_seeds(comparisons: list[PairedComparison]) -> list[tuple[int, PairedComparison]] | None:
    """(training seed, comparison) for each run after the baseline when all are paired seeds of one recipe."""
    if len(comparisons) < 2 or not all(c.paired for c in comparisons):
        return None
    logs = [sections.training_log(c.other)[0] for c in comparisons]
    if any(log is None for log in logs):
        return None
    recipes = [_recipe(log) for log in logs if log is not None]
    seeds = [log["hyperparameters"].get("seed") for log in logs if log is not None]
    if any(r != recipes[0] for r in recipes) or len(set(seeds)) < len(seeds):
        return None
    return [(int(s), c) for s, c in zip(seeds, comparisons)]


def _recipe(log: dict[str, Any]) -> Any:
    knobs = {k: v for k, v in (log.get("hyperparameters") or {}).items() if k not in ("seed", "device")}
    data = {k: v for k, v in (log.get("data") or {}).items() if k != "n_available"}
    return (log.get("base_model"), log.get("task"), log.get("objective"), knobs, data)


def correct_matrix(comparisons: list[PairedComparison]) -> np.ndarray:
    """(K, n) per-example correctness of each seed, in the baseline's example order."""
    return np.array([c.other_pred == c.base.gold for c in comparisons if c.other_pred is not None])


def section(grouped: list[tuple[int, PairedComparison]]) -> dict[str, Any]:
    """The seed section's context and its comparison.json record."""
    base = grouped[0][1].base
    comps = [c for _, c in grouped]
    tuned = correct_matrix(comps)
    g = seed_gains(baseline=base.correct, finetuned=tuned)
    v = verdict(gains=g)
    flips = seed_flips(baseline=base.correct, finetuned=tuned)
    counts = {"fixed_by_all": len(flips.fixed_by_all), "broken_by_all": len(flips.broken_by_all),
              "fixed_by_some": len(flips.fixed_by_some), "broken_by_some": len(flips.broken_by_some)}
    pts = [f"seed {s} {100 * gain:+.1f}" for (s, _), gain in zip(grouped, g.gains)]
    assert g.seed_sd is not None  # two or more seeds
    lines = [
        f"{g.seeds} fine-tunes of one recipe, differing only in the training seed, against {base.role} "
        f"({base.name}) on the same {g.n:,} test examples. Per-seed gains in accuracy: {', '.join(pts)} points.",
        f"Mean gain {100 * g.mean:+.1f} points; seed-to-seed SD {100 * g.seed_sd:.1f} points next to the "
        f"test-sampling SE {100 * g.test_se:.1f} points.",
        f"95% interval for the expected gain of this recipe: {100 * g.low:+.1f} to {100 * g.high:+.1f} points "
        f"({g.kind}: {g.method})",
        v.sentence,
    ]
    rows = [{"seed": str(s), "run": f"{c.other.role} · {c.other.name}", "accuracy": fmt.num(acc),
             "gain": fmt.signed(gain), "test": _mcnemar(c)} for (s, c), acc, gain in zip(grouped, g.accuracies, g.gains)]
    record = {"seeds": [s for s, _ in grouped], "baseline": {"role": base.role, "path": str(base.path),
                                                            "accuracy": g.baseline},
              "per_seed": [{"seed": s, "path": str(c.other.path), "accuracy": acc, "gain": gain}
                           for (s, c), acc, gain in zip(grouped, g.accuracies, g.gains)],
              "pooled": {"mean": g.mean, "seed_sd": g.seed_sd, "test_se": g.test_se, "se": g.se,
                         "ci95": [g.low, g.high], "interval": g.kind, "df": g.df, "method": g.method},
              "verdict": v.sentence, "seeds_needed": v.seeds_needed, "disagree": v.disagree, "flips": counts}
    return {"lines": lines, "rows": rows, "flips": counts, "chart": strip_chart(grouped, g.accuracies, g.baseline,
                                                                             (g.mean, g.low, g.high)),
            "record": record}


def _mcnemar(comp: PairedComparison) -> str:
    t = comp.mcnemar
    return fmt.DASH if t is None else f"McNemar {fmt.p_value(t.p_value)}"


def strip_chart(grouped: list[tuple[int, PairedComparison]], accuracies: tuple[float, ...], baseline: float,
                pooled: tuple[float, float, float]) -> str:
    """Per-seed accuracy (with each run's 95% interval), the pooled mean and interval, the baseline as a line."""
    with charts.figure(6.4, 0.5 + 0.42 * (len(grouped) + 1)) as fig:
        ax = fig.subplots()
        for i, ((_seed, comp), acc) in enumerate(zip(grouped, accuracies)):
            ci = comp.other.metrics.get("ci95", {}).get("accuracy")
            if ci:
                ax.plot(ci, [i, i], color=charts.colour(1), lw=1.5)
            ax.plot([acc], [i], "o", color=charts.colour(1))
        mean, low, high = pooled
        k = len(grouped)
        ax.plot([baseline + low, baseline + high], [k, k], color="#222222", lw=2.5)
        ax.plot([baseline + mean], [k], "D", color="#222222")
        ax.axvline(baseline, color=charts.colour(0), ls="--", lw=1.2, label=f"{grouped[0][1].base.role} {baseline:.3f}")
        ax.set_yticks(range(k + 1), [f"seed {s}" for s, _ in grouped] + ["recipe (pooled)"])
        ax.invert_yaxis()
        ax.set_xlabel("test accuracy (95% intervals)")
        ax.legend(loc="lower right")
        return charts.encode(fig)
