"""Charts for the report, drawn with matplotlib (Agg, no display) and seaborn and returned
as base64 PNG strings for `<img src="data:image/png;base64,...">`, so the page needs no
files, network or JavaScript. Figures are `matplotlib.figure.Figure` objects rather than
pyplot ones: no global figure registry to leak and no backend switch forced on a caller
that already uses pyplot. matplotlib and seaborn are imported lazily, only when a report
is rendered. Each run keeps one colour across every chart.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import metric_catalog as catalog
from harness.metrics import confusion_matrix
from reports.sources import Run

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100  # modest resolution keeps the page small; charts are displayed at about this size
PALETTE = ("#3B6FB6", "#E07B39", "#3A9A5B", "#C0392B", "#7D5BA6", "#8C6D46", "#D16BA5", "#6B6B6B")
STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#999999",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#E8E8E8",
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "legend.frameon": False,
    "legend.fontsize": 8,
    # Plain tick values: nearly equal scores (one epoch's accuracy and F1) would get an offset axis like 1e−6+8.299e−1.
    "axes.formatter.useoffset": False,
}
MANY = 4  # more runs than this: charts drop per-bar values and long titles that would collide


def colour(i: int) -> str:
    """The colour of the i-th run, used in charts and in the page's run chips."""
    return PALETTE[i % len(PALETTE)]


@contextmanager
def figure(width: float, height: float) -> Iterator[Figure]:
    """A constrained-layout figure drawn in the report's style."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]  # stubs want literal rcParam keys
        yield Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def encode(fig: Figure) -> str:
    """The figure as a base64 PNG string."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _label(run: Run) -> str:
    return f"{run.role} · {run.name}"


def metrics_chart(runs: list[Run]) -> str:
    """Grouped bars of the headline metrics with their 95% intervals; loss on its own axis."""
    bars_of = [m for m in catalog.headline() if m.higher_is_better]  # scores on [0, 1]; loss is unbounded
    keys = [m.key for m in bars_of]
    with figure(10, 3.4) as fig:
        ax, loss_ax = fig.subplots(1, 2, width_ratios=[4, 1])
        width = 0.8 / len(runs)
        for j, run in enumerate(runs):
            x = np.arange(len(keys)) + (j - (len(runs) - 1) / 2) * width
            values = [run.metrics[k] for k in keys]
            bars = ax.bar(x, values, width * 0.92, color=colour(j), label=_label(run),
                          yerr=_errors(run, keys), capsize=2, error_kw={"elinewidth": 0.8})
            if len(runs) <= MANY:  # narrower bars cannot hold their values
                ax.bar_label(bars, fmt="%.3f", label_type="center", color="white", fontsize=7, fontweight="bold")
            loss_ax.bar([j], [run.metrics["loss"]], 0.7, color=colour(j), yerr=_errors(run, ["loss"]), capsize=2)
        ax.set(xticks=range(len(keys)), xticklabels=[m.short or m.label for m in bars_of], ylim=(0, 1.05),
               ylabel="score")
        ax.set_title("Headline metrics (macro averages, 95% CI)", loc="left")
        loss_ax.set(xticks=range(len(runs)), xticklabels=[r.role for r in runs])
        if len(runs) > MANY:
            loss_ax.tick_params(axis="x", rotation=90)
        loss_ax.set_title("Loss (lower is better)", loc="left")
        ax.grid(axis="x", visible=False)
        loss_ax.grid(axis="x", visible=False)
        fig.legend(loc="outside lower center", ncols=_legend_columns(runs))
        return encode(fig)


def _legend_columns(runs: list[Run]) -> int:
    """Up to four columns, fewer when long run names would not fit across the figure."""
    return max(1, min(len(runs), 4, 130 // max(len(_label(r)) for r in runs)))


def _errors(run: Run, keys: list[str]) -> np.ndarray | None:
    ci = run.metrics.get("ci95") or {}
    if not all(isinstance(ci.get(k), (list, tuple)) and len(ci[k]) == 2 for k in keys):
        return None
    return np.array([[max(run.metrics[k] - ci[k][0], 0) for k in keys], [max(ci[k][1] - run.metrics[k], 0) for k in keys]])


def confusion_chart(runs: list[Run]) -> str:
    """Heatmaps of counts (top) and row-normalised rates (bottom), one column per run, shared scales."""
    import seaborn as sns

    matrices = [_recorded_confusion(r) for r in runs]
    vmax = max(int(m.max()) for m in matrices) or 1
    k = max(len(r.labels) for r in runs)
    side = 2.2 + 0.35 * k
    with figure(min(side * len(runs) + 1.2, 11), 2 * side + 0.6) as fig:
        axes = fig.subplots(2, len(runs), squeeze=False)
        for j, (run, m) in enumerate(zip(runs, matrices)):
            rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
            common: dict[str, Any] = {"cmap": "Blues", "cbar": False, "square": True, "annot": k <= 12,
                                      "linewidths": 0.5, "linecolor": "white",
                                      "xticklabels": run.labels, "yticklabels": run.labels}
            sns.heatmap(m, ax=axes[0][j], vmin=0, vmax=vmax, fmt="d", **common)
            sns.heatmap(rates, ax=axes[1][j], vmin=0, vmax=1, fmt=".2f", **common)
            many = len(runs) > MANY  # narrow columns: the role alone, as in the page's run chips
            axes[0][j].set_title(f"{run.role if many else _label(run)}\ncounts", fontsize=9)
            axes[1][j].set_title("row share" if many else "share of each gold row", fontsize=9)
            for ax in axes[:, j]:
                ax.grid(False)
                ax.set_xlabel("predicted")
                ax.set_ylabel("gold" if j == 0 else "")
                ax.tick_params(axis="y", rotation=0)
        fig.colorbar(axes[0][0].collections[0], ax=axes[0, :], shrink=0.85, label="examples")
        fig.colorbar(axes[1][0].collections[0], ax=axes[1, :], shrink=0.85, label="share")
        return encode(fig)


def _recorded_confusion(run: Run) -> np.ndarray:
    recorded = run.metrics.get("confusion_matrix")
    k = len(run.labels)
    if isinstance(recorded, list) and np.shape(recorded) == (k, k):
        return np.array(recorded, dtype=int)
    return confusion_matrix(run.gold, run.pred, k)


def reliability_chart(runs: list[Run], calibration: list[dict[str, Any]]) -> str:
    """Reliability diagram (accuracy against confidence per bin) and the confidence histogram."""
    low = np.floor(10 / max(len(r.labels) for r in runs)) / 10  # confidence never falls below 1/K
    with figure(10, 3.8) as fig:
        ax, hist = fig.subplots(1, 2, width_ratios=[1.15, 1])
        ax.plot([low, 1], [low, 1], ls="--", lw=1, color="#999999", label="perfectly calibrated")
        width = 0.1 / len(runs)
        for j, (run, cal) in enumerate(zip(runs, calibration)):
            full = [b for b in cal["bins"] if b.n]
            ax.plot([b.confidence for b in full], [b.accuracy for b in full], marker="o", ms=4, lw=1.6,
                    color=colour(j), label=f"{run.role} (ECE {cal['ece']})")
            shares = [b.n / len(run.predictions) for b in cal["bins"]]
            centres = [b.low + (j + 0.5) * width for b in cal["bins"]]
            hist.bar(centres, shares, width * 0.95, color=colour(j), label=run.role)
        ax.set(xlim=(low, 1), ylim=(0, 1.02), xlabel="confidence (probability of the predicted label)",
               ylabel="accuracy in bin")
        ax.set_title("Reliability diagram (10 equal-width bins)", loc="left")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=len(runs) + 1)
        hist.set(xlim=(low, 1), xlabel="confidence", ylabel="share of examples")
        hist.set_title("Where the confidences fall", loc="left")
        hist.grid(axis="x", visible=False)
        return encode(fig)


def training_chart(log: dict[str, Any], run_colour: str) -> str:
    """Training loss per step and validation loss, accuracy and F1 per epoch; best epoch marked."""
    steps = [s for s in log.get("train_loss") or [] if "loss" in s]
    epochs = [e for e in log.get("epochs") or [] if "epoch" in e]
    by_epoch = all("epoch" in s for s in steps)
    with figure(10, 3.2) as fig:
        loss_ax, score_ax = fig.subplots(1, 2)
        if steps:
            x = np.array([s["epoch"] if by_epoch else s["step"] for s in steps], dtype=float)
            y = np.array([s["loss"] for s in steps], dtype=float)
            few = len(y) < 5  # a short log is drawn with markers, or a single point would be invisible
            loss_ax.plot(x, y, lw=0.8, alpha=0.35, color=run_colour)
            loss_ax.plot(x, _smooth(y), lw=1.6, color=run_colour, marker="o" if few else None, ms=4,
                         label="training loss" if few else "training loss (smoothed)")
        val = [(e["epoch"], e["val_loss"]) for e in epochs if e.get("val_loss") is not None]
        if val:
            loss_ax.plot(*zip(*val), marker="o", color="#222222", lw=1.2, label="validation loss")
        for key, name, style in (("val_accuracy", "validation accuracy", "-o"), ("val_f1_macro", "validation F1", "--s")):
            points = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None]
            if points:
                score_ax.plot(*zip(*points), style, color=run_colour, ms=4, label=name)
        for ax in (loss_ax, score_ax):
            _mark_best(ax, log.get("best_epoch"))
            ax.set_xlabel("epoch" if by_epoch else "step")
            ax.legend(loc="best")
        loss_ax.set_title("Loss", loc="left")
        score_ax.set_title("Validation scores", loc="left")
        return encode(fig)


def _smooth(y: np.ndarray) -> np.ndarray:
    window = max(1, len(y) // 20)
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def _mark_best(ax: Any, best: Any) -> None:
    if isinstance(best, (int, float)):
        ax.axvline(best, ls=":", color="#C0392B", lw=1.2)
        ax.annotate(f"best epoch {best}", (best, 1), xycoords=("data", "axes fraction"), ha="right",
                    va="top", fontsize=8, color="#C0392B", xytext=(-3, -2), textcoords="offset points")


def length_chart(runs: list[Run], buckets: list[str], values: list[list[float | None]]) -> str:
    """Accuracy per review-length bucket, one bar per run; empty buckets are left blank."""
    with figure(10, 3.0) as fig:
        ax = fig.subplots()
        width = 0.8 / len(runs)
        for j, (run, accs) in enumerate(zip(runs, values)):
            x = np.arange(len(buckets)) + (j - (len(runs) - 1) / 2) * width
            heights = [np.nan if a is None else a for a in accs]
            ax.bar(x, heights, width * 0.92, color=colour(j), label=_label(run))
        ax.set(xticks=range(len(buckets)), xticklabels=buckets, ylim=(0, 1.05), xlabel="input length (tokens)",
               ylabel="accuracy")
        ax.set_title("Accuracy by input length", loc="left")
        ax.grid(axis="x", visible=False)
        fig.legend(loc="outside lower center", ncols=_legend_columns(runs))
        return encode(fig)

