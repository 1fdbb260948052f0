"""Running evaluations: data and model loading, inference, metrics, run folders, fine-tuning,
the Python API and the `tenser` command line. Imports `tasks`; never `reports` or `demo`
(except the composition roots, `harness.api` and `harness.commands`, which import them lazily).

The Python API, importable from here: `evaluate`, `finetune`, `compare`, `report`, `Run`,
`Comparison` (see `harness.api`). They load on first use, so `import harness` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from harness.api import Comparison, compare, evaluate, finetune, report
    from harness.runs import Run

__all__ = ["Comparison", "Run", "compare", "evaluate", "finetune", "report"]


def __getattr__(name: str) -> Any:
    if name == "Run":
        from harness.runs import Run

        return Run
    if name in ("Comparison", "compare", "evaluate", "finetune", "report"):
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
