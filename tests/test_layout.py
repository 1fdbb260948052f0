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


# harness/ in rooms, layered: a room imports only rooms before it (and the shared top-level modules).
ROOMS = ("store", "metrics", "data", "backends", "scoring", "training", "recipes")
SHARED = ("errors", "distributed", "version")


def runtime_imports(path: Path) -> set[str]:
    """Our modules `path` imports when it runs, lazy imports included, `if TYPE_CHECKING:` blocks left out."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in OURS}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_harness_is_in_rooms_each_with_a_purpose_and_three_to_eight_modules():
    rooms = sorted(p.parent.name for p in (ROOT / "harness").glob("*/__init__.py"))
    assert rooms == sorted(ROOMS)
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((ROOT / "harness" / room / "__init__.py").read_text()))
        assert doc and "\n" not in doc.strip(), f"harness/{room}/__init__.py needs a one-line purpose"
        n = len([p for p in (ROOT / "harness" / room).glob("*.py") if p.name != "__init__.py"])
        assert 3 <= n <= 8, f"harness/{room}/ has {n} modules; a room holds 3 to 8"
    loose = sorted(p.stem for p in (ROOT / "harness").glob("*.py"))
    assert loose == sorted({"__init__", "__main__", "api", *SHARED}), f"harness/ modules outside a room: {loose}"


@pytest.mark.parametrize("path", modules("harness"), ids=lambda p: str(p.relative_to(ROOT)))
def test_rooms_import_only_the_rooms_before_them(path):
    parts = path.relative_to(ROOT / "harness").parts
    if len(parts) == 1:
        return  # api.py sits on all rooms; errors, distributed and version import no room (next test)
    mine = ROOMS.index(parts[0])
    later = sorted(n for n in runtime_imports(path) if n.split(".")[0] == "harness" and len(n.split(".")) > 1
                   and n.split(".")[1] in ROOMS and ROOMS.index(n.split(".")[1]) > mine)
    assert not later, f"{path.relative_to(ROOT)} (room {parts[0]}) imports {later} from a later room"


def test_shared_modules_import_no_room():
    for name in SHARED:
        bad = sorted(n for n in runtime_imports(ROOT / "harness" / f"{name}.py") if n.startswith("harness."))
        assert all(n.split(".")[1] in SHARED for n in bad), f"harness/{name}.py imports {bad}"


def test_no_import_cycles_in_harness_and_tenser():
    """Not even through lazy imports: every module of harness/ and tenser/ is a node, every import an edge."""
    paths = modules("harness") + modules("tenser")
    known = {module_name(p) for p in paths}
    graph = {module_name(p): {n if n in known else n.rsplit(".", 1)[0] for n in runtime_imports(p)} & known
             for p in paths}
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in done:
            return
        for nxt in sorted(graph[node] - {node}):
            visit(nxt, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_cycle_check_sees_a_lazy_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.x import y\n")
    b.write_text("def f():\n    from harness.x import y\n")
    assert runtime_imports(a) == set() and runtime_imports(b) == {"harness.x.y"}
