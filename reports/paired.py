"""The paired accuracy difference of each comparison, as data: the numbers of `reports.power`
(paired SE and CI, correlation, unpaired SE, minimum detectable effect) and the noise floor of
`reports.noise`, gathered per comparison into one record. The same records become
comparison.json next to report.html, the "Paired difference and power" table, and summary
sentences in plain words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.store.runs import write_atomic
from reports import formatting as fmt
from reports.comparison import PairedComparison
from reports.noise import NoiseFloor, change_floor, floor_for, within_noise
from reports.power import (
    ALPHA,
    FORMULA,
    POWER,
    mde_sentence,
    minimum_detectable_effect,
    paired_difference,
    required_n,
)

COMPARISON_FILE = "comparison.json"


def record(comp: PairedComparison, floors: dict[str, NoiseFloor]) -> dict[str, Any]:
    """One comparison's paired numbers as JSON-ready data."""
    head = {"before": _who(comp.base), "after": _who(comp.other), "paired": comp.paired, "reason": comp.reason}
    if not comp.paired or comp.other_pred is None:
        return head
    d = paired_difference(comp.base.correct, comp.other_pred == comp.base.gold)
    mde = minimum_detectable_effect(d.n, d.discordance)
    need = required_n(d.mean, d.discordance)
    firsts = [floor_for(str(r.results["task"].get("name")), floors, Path(r.path).name) for r in (comp.base, comp.other)]
    floor = change_floor(firsts[0], firsts[1])
    test = comp.mcnemar
    return {**head, "n": d.n, "accuracy": {"before": d.first, "after": d.second},
            "mcnemar": None if test is None else {"p_value": test.p_value, "significant": test.p_value < ALPHA},
            "difference": {"mean": d.mean, "se": d.se, "ci95": [d.low, d.high]},
            "correlation": d.correlation, "unpaired_se": d.unpaired_se,
            "discordance": d.discordance,
            "power": {"alpha": ALPHA, "power": POWER, "method": FORMULA, "mde": mde,
                      "detectable": None if mde is None else abs(d.mean) >= mde, "n_needed_for_observed": need},
            "noise": {"floor": floor, "within_noise": within_noise(d.mean, floor),
                      "sources": [None if f is None else f.record() for f in firsts]}}


def _who(run: Any) -> dict[str, str]:
    return {"role": run.role, "name": run.name, "path": str(run.path)}


def write_comparison(records: list[dict[str, Any]], report: Path, extra: dict[str, Any] | None = None) -> Path:
    """Save the records (and `extra` sections: seeds, leaderboard, validation) as comparison.json in the
    report's folder and return its path."""
    target = report.with_name(COMPARISON_FILE)
    body = {"comparisons": records, **(extra or {})}
    write_atomic(target, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    return target


def rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The "Paired difference and power" table: one formatted row per paired comparison."""
    out = []
    for r in records:
        if not r["paired"]:
            continue
        d, p, noise = r["difference"], r["power"], r["noise"]
        ratio = d["se"] / r["unpaired_se"] if r["unpaired_se"] else None
        out.append({
            "name": f"{r['after']['role']} − {r['before']['role']}",
            "difference": fmt.signed(d["mean"]), "ci": fmt.interval(d["ci95"], sign=True),
            "se": fmt.num(d["se"], 4), "unpaired_se": fmt.num(r["unpaired_se"], 4),
            "ratio": fmt.DASH if ratio is None else f"{ratio:.2f}",
            "correlation": fmt.signed(r["correlation"]), "discordance": fmt.percent(r["discordance"]),
            "mde": fmt.DASH if p["mde"] is None else f"{100 * p['mde']:.1f} points",
            "n_needed": fmt.DASH if p["n_needed_for_observed"] is None else f"{p['n_needed_for_observed']:,}",
            "noise": _noise_cell(noise),
        })
    return out


def _noise_cell(noise: dict[str, Any]) -> str:
    if noise["floor"] is None:
        return "not measured"
    label = "within noise" if noise["within_noise"] else "above noise"
    return f"{100 * noise['floor']:.1f} points · {label}"


def findings(records: list[dict[str, Any]]) -> list[str]:
    """Plain-words power and noise sentences, one or two per paired comparison."""
    out = []
    for r in records:
        if not r["paired"]:
            continue
        who = f"{r['after']['role']} versus {r['before']['role']}"
        significant = (r.get("mcnemar") or {}).get("significant")
        out.append(f"{who}: {mde_sentence(r['n'], r['discordance'], r['difference']['mean'], significant=significant)}")
        noise = r["noise"]
        if noise["within_noise"]:
            out.append(f"{who}: the accuracy change is within noise: scoring the same model with another batch "
                       f"size or precision moved results by up to {100 * noise['floor']:.1f} points.")
    return out
