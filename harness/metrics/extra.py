"""Extra metrics as Hugging Face `evaluate` modules, named by a task's `metrics` field (or
`-T metrics=a,b`): a Hub id such as `matthews_correlation`, or a local module folder (see
`metrics/macro_scores`, the worked example). They are computed from the recorded predictions
(label ids in the task's order), so they never re-run the model, and go into results.json under
`extra_metrics`. Modules are loaded before scoring starts, so a missing one fails at once.
Tenser's own metrics stay scikit-learn's (`harness.metrics.classification`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UserError, first_line
from tasks import Task


def load(name: str) -> Any:
    """The `evaluate` module `name` (a local folder or a Hub id); offline or missing is a one-line UserError."""
    try:
        import evaluate
    except ImportError:
        raise UserError(f"-T metrics={name}: needs the `evaluate` package; pip install evaluate") from None
    local = Path(name).expanduser()
    if not local.is_dir() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise UserError(f"-T metrics={name}: no such module folder; give a folder holding {local.name}.py")
    try:
        return evaluate.load(str(local) if local.is_dir() else name)
    except Exception as exc:  # evaluate raises ConnectionError, FileNotFoundError, ValueError... by case
        if local.is_dir():
            raise UserError(f"-T metrics={name}: the local evaluate module fails to load ({first_line(exc)})") from None
        short = name.rsplit("/", 1)[-1]
        raise UserError(
            f"-T metrics={name}: cannot load the evaluate module {name!r} from the Hub (offline or unknown: "
            f"{first_line(exc)}); use a local copy: git clone https://huggingface.co/spaces/evaluate-metric/{short} "
            f"and pass -T metrics=./{short}") from None


def load_all(task: Task) -> dict[str, Any]:
    """The task's extra metric modules by name, loaded (before any scoring)."""
    return {name: load(name) for name in task.metrics}


def compute(task: Task, modules: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each module's result on the recorded predictions: {module name: {metric: value}}."""
    gold = [task.labels.index(r["label"]) for r in records]
    pred = [task.labels.index(r["pred"]) for r in records]
    out = {}
    for name, module in modules.items():
        try:
            result = module.compute(predictions=pred, references=gold)
        except Exception as exc:  # a module's own argument checks (e.g. binary-only metrics)
            raise UserError(f"-T metrics={name}: the module failed on this task's predictions ({first_line(exc)})") \
                from None
        out[name] = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in (result or {}).items()}
    return out
