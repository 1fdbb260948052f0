"""Running evaluations: data and model loading, inference, metrics, run folders, fine-tuning
and the Python API. Imports `tasks`; never `reports`, `demo` or the `tenser` CLI (checked by
tests/test_layout.py): harness writes run folders, and what reads them sits on top.

The Python API, importable from here: `evaluate`, `finetune`, `compare`, `Run`, `Comparison`
(see `harness.api`). They load on first use, so `import harness` stays light. `compare` writes
the HTML report only through the `render` it is given; `tenser` exports the same API with the
report wired in (`tenser.compare`, `tenser.report`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.version import VERSION

__version__ = VERSION

if TYPE_CHECKING:
    from harness.api import Comparison, compare, evaluate, finetune
    from harness.store.runs import Run

__all__ = ["Comparison", "Run", "compare", "evaluate", "finetune"]


def __getattr__(name: str) -> Any:
    if name == "Run":
        from harness.store.runs import Run

        return Run
    if name in ("Comparison", "compare", "evaluate", "finetune"):
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
