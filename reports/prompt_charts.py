"""Charts of the zero-shot sections, in the style of `reports.charts`: the share of examples
predicted per label before and after calibration against the gold share, and the accuracy
of each prompt variant with its interval against the spread across variants.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reports.charts import encode, figure


def share_chart(labels: list[str], series: list[tuple[str, str, list[float]]], run_colour: str) -> str:
    """Share of examples per label: gold, then predicted before and after calibration (kind, name, shares)."""
    from matplotlib.ticker import PercentFormatter

    styles: dict[str, dict[str, Any]] = {"gold": {"color": "#9AA3B2"}, "raw": {"color": run_colour, "alpha": 0.4},
                                         "calibrated": {"color": run_colour}}
    height = 0.8 / len(series)
    with figure(5.4, 1.1 + 0.5 * len(labels)) as fig:
        ax = fig.subplots()
        for j, (kind, name, shares) in enumerate(series):
            y = np.arange(len(labels)) + (j - (len(series) - 1) / 2) * height
            bars = ax.barh(y, shares, height * 0.9, label=name, **styles[kind])
            ax.bar_label(bars, labels=[f"{s:.0%}" for s in shares], padding=2, fontsize=7, color="#444444")
        ax.set(yticks=range(len(labels)), yticklabels=labels, xlim=(0, 1.1), xlabel="share of examples")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        fig.legend(loc="outside lower center", ncols=len(series))
        return encode(fig)


def sensitivity_chart(names: list[str], accuracy: list[float], intervals: list[list[float] | None],
                      colours: list[str], mean: float, sd: float) -> str:
    """Accuracy per prompt variant with its 95% interval; the band is the mean ± one SD across variants."""
    with figure(10, 1.1 + 0.32 * len(names)) as fig:
        ax = fig.subplots()
        ax.axvspan(mean - sd, mean + sd, color="#E3EAF5", label="mean ± SD across prompts")
        ax.axvline(mean, color="#2F5D9E", lw=1, ls="--", label=f"mean {mean:.3f}")
        for i, (acc, ci, c) in enumerate(zip(accuracy, intervals, colours)):
            err = None if ci is None else [[max(acc - ci[0], 0)], [max(ci[1] - acc, 0)]]
            ax.errorbar([acc], [i], xerr=err, fmt="o", color=c, ms=6, capsize=3, elinewidth=1.2)
        ax.set(yticks=range(len(names)), yticklabels=names, xlabel="accuracy (whiskers: 95% CI of each run)")
        ax.invert_yaxis()
        ax.margins(y=0.25)
        ax.grid(axis="y", visible=False)
        ax.set_title("Accuracy per prompt", loc="left")
        fig.legend(loc="outside right upper")
        return encode(fig)
