"""The import rules that make the architecture readable from the tree (DESIGN.md, "One-way flow"):
tasks -> harness -> run folders -> reports/demo, with the `tenser` package as the composition root
on top. Imports are read with `ast`, lazy ones inside functions included."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("tasks", "harness", "reports", "demo", "tenser")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth: `from harness import runs` yields harness.store.runs."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def ours(path: Path) -> set[str]:
    return {name for name in imported(path) if name.split(".")[0] in OURS}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_imported_sees_lazy_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from harness import cli\n    import reports.render\n")
    assert ours(src) == {"harness.cli", "reports.render"}


# What reports/ may use of harness: the run-folder contract, its errors, the numpy-only metrics
# with the metric catalog (so the report shows and tests metrics exactly as the runs computed them),
# and the numpy/scipy-only seed statistics (one home for the paired SE, alpha, power and z).
REPORTS_MAY_USE = ("harness.store.runs", "harness.errors", "harness.metrics.classification", "harness.metrics.reviewer",
                   "harness.metrics.catalog", "harness.metrics.seed_stats", "harness.metrics.seed_power")


@pytest.mark.parametrize("path", modules("reports"), ids=lambda p: p.name)
def test_reports_read_only_the_run_folder_contract(path):
    """reports/ knows harness only as the run-folder contract, its errors and the numpy-only metrics."""
    bad = sorted(n for n in ours(path) if n.split(".")[0] != "reports" and
                 not any(n == a or n.startswith(a + ".") for a in REPORTS_MAY_USE))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; reports/ may use only {', '.join(REPORTS_MAY_USE)}"


def test_what_reports_may_use_imports_no_torch():
    """The harness modules reports/ may import load neither torch nor transformers (nor anything else heavy)."""
    code = (f"import sys; import {', '.join(REPORTS_MAY_USE)}; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'sklearn', 'tasks') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.split() == ["[]"], f"importing {REPORTS_MAY_USE} loads {done.stdout.strip()}"


@pytest.mark.parametrize("path", modules("harness"), ids=lambda p: p.name)
def test_harness_imports_no_reader_of_its_run_folders(path):
    """harness/ imports tasks and itself: never reports/, demo/ or the tenser composition root."""
    bad = sorted(n for n in ours(path) if n.split(".")[0] in ("reports", "demo", "tenser"))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; wire them in the tenser package instead"


@pytest.mark.parametrize("path", modules("tasks"), ids=lambda p: p.name)
def test_tasks_import_nothing_of_ours(path):
    bad = sorted(n for n in ours(path) if n.split(".")[0] != "tasks")
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; tasks/ is plain data"


@pytest.mark.parametrize("path", modules("demo"), ids=lambda p: p.name)
def test_demo_uses_harness_and_tasks_only(path):
    bad = sorted(n for n in ours(path) if n.split(".")[0] in ("reports", "tenser"))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_python_api_importable_from_harness_and_tenser():
    import harness
    import tenser

    assert {"evaluate", "finetune", "compare", "Run", "Comparison"} <= set(harness.__all__)
    assert harness.evaluate is tenser.evaluate and harness.Run is tenser.Run
    assert callable(tenser.compare) and callable(tenser.report)
