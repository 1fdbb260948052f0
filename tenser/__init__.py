"""The composition root: the one place that wires `harness` (scoring, fine-tuning, run
folders) to what reads its run folders (`reports`, `demo`). It holds the `tenser` command
line (`tenser.cli`, `tenser.commands`; `python -m tenser`) and the whole Python API for
notebooks, report included:

    from tenser import evaluate, compare, report, Run
    done = compare("gpt2", "imdb", out="cmp", limit=200)   # writes cmp/report.html
    report([done.pretrained, done.finetuned], "again.html")

`evaluate`, `finetune`, `Run` and `Comparison` are harness's own; `compare` is
`harness.compare` with `reports.render_report` as its `render`. Why a package of its own:
harness must not import reports or demo (tasks -> harness -> run folders -> reports/demo),
yet the CLI and a report-writing `compare` need both, so they live above both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import api
from harness.api import Comparison, evaluate, finetune
from harness.store.runs import Run

__all__ = ["Comparison", "Run", "compare", "evaluate", "finetune", "report"]


def compare(model: str, task: Any = "imdb", *, out: str | Path, **options: Any) -> Comparison:
    """`harness.compare` (same arguments) that also writes OUT/report.html."""
    from reports import render_report  # lazy: seaborn loads for reports only

    return api.compare(model, task, out=out, render=render_report, **options)


def report(runs: list[str | Path | Run], out: str | Path, *, baseline: str | None = None, title: str | None = None,
           noise: str | None = None) -> Path:
    """Render run folders (the first is the baseline unless `baseline`) into one HTML file; return its path."""
    from reports import render_report

    folders = [r.path if isinstance(r, Run) else Path(r) for r in runs]
    return Path(render_report(folders, out, baseline=baseline, title=title, noise=noise))
