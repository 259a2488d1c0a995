"""Import architecture: the `[tool.importlinter]` contracts of pyproject.toml hold, and no module is
part of an import cycle (lazy imports inside functions count: they are cycles all the same).

* `lint-imports` checks the contracts: `idp_assets.logic` imports neither Dagster nor `resources`;
  product code does not import `idp_assets.bench`; no cycles between the modules and subpackages
  of a package (`acyclic_siblings`).
* `acyclic_siblings` cannot see a cycle that runs through two root packages (`idp_assets.x ->
  resources.y -> idp_assets.x`): `import_cycles` looks for those in grimp's module graph.

Both are also run on a copy of the packages with a cycle (or a forbidden import) put in, to show
that they fail.  Each check runs in its own Python process, started in the folder to check, so
that the copy and not the installed tree is analysed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOT_PACKAGES = ("idp_assets", "resources", "sensors", "idp_api")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {c["id"]: c["name"] for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]}

_GRAPH_SCRIPT = """
import json, sys
import grimp
graph = grimp.build_graph(*sys.argv[1:], cache_dir=None)
print(json.dumps({m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}))
"""


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the pyproject.toml of `root`, on the packages under `root`."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "pyproject.toml"], cwd=root,
                          capture_output=True, text=True, timeout=120)


def import_graph(root: Path) -> dict[str, list[str]]:
    """module -> the modules it imports (anywhere in the file), for the root packages under `root`."""
    res = subprocess.run([sys.executable, "-c", _GRAPH_SCRIPT, *ROOT_PACKAGES], cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def import_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def _describe(graph: dict[str, list[str]], cycles: list[list[str]]) -> str:
    return "\n".join(f"{len(c)} modules: " + "; ".join(f"{m} -> {', '.join(sorted(set(graph[m]) & set(c)))}" for m in c)
                     for c in cycles)


# -- the tree as it is -----------------------------------------------------------------------
def test_import_contracts_hold():
    assert set(CONTRACTS) == {"logic-is-pure", "bench-is-not-product", "no-cycles"}
    res = lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in res.stdout, res.stdout


def test_no_import_cycles():
    graph = import_graph(REPO)
    assert "idp_assets.logic.fields" in graph and "sensors.backfill" in graph  # the graph is the real one
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + _describe(graph, cycles)


def test_import_cycles_finds_components():
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"]}
    assert import_cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert import_cycles({"a": ["b"], "b": []}) == []


# -- the checks fail on a tree that breaks the rules -------------------------------------------
def _copy_tree(dst: Path) -> Path:
    for pkg in ROOT_PACKAGES:
        shutil.copytree(REPO / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")
    return dst


def _add_lazy_import(path: Path, statement: str) -> None:
    """Append a function running the import `statement` to a module (a lazy import: still a dependency)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(f"\n\ndef _added_by_test_architecture():\n    {statement}  # noqa\n")


@pytest.mark.parametrize(
    ("module", "statement", "cycle", "lint_sees_it"),
    [
        # two modules of one package: common already imports partitions
        ("idp_assets/partitions.py", "from idp_assets import common", ["idp_assets.common", "idp_assets.partitions"], True),
        # an asset module importing the runner, which loads the definitions, which load every asset
        ("idp_assets/tables.py", "from idp_assets.runner import DocumentRunner",
         ["idp_assets.definitions", "idp_assets.runner", "idp_assets.tables"], True),
        # through two root packages: the runner already imports resources.storage
        ("resources/storage.py", "from idp_assets import runner", ["idp_assets.runner", "resources.storage"], False),
        # the lazy import of old: backfill -> runner -> definitions -> sensors.backfill -> backfill
        ("idp_assets/backfill.py", "from idp_assets.runner import failure_reason",
         ["idp_assets.backfill", "idp_assets.definitions", "idp_assets.runner", "sensors.backfill"], False),
    ],
    ids=["two-modules", "asset-imports-runner", "across-root-packages", "backfill-imports-runner"],
)
def test_checks_report_an_added_cycle(tmp_path, module, statement, cycle, lint_sees_it):
    root = _copy_tree(tmp_path)
    _add_lazy_import(root / module, statement)
    graph = import_graph(root)
    cycles = import_cycles(graph)
    assert any(set(cycle) <= set(c) for c in cycles), _describe(graph, cycles) or "no cycle found"
    if lint_sees_it:  # acyclic_siblings: a cycle between the modules of one package
        res = lint_imports(root)
        assert res.returncode != 0, res.stdout + res.stderr
        assert f"{CONTRACTS['no-cycles']} BROKEN" in res.stdout and "2 kept, 1 broken" in res.stdout, res.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        ("idp_assets/logic/numbers.py", "import dagster", "logic-is-pure"),
        ("idp_assets/logic/numbers.py", "from resources import storage", "logic-is-pure"),
        ("sensors/common.py", "from idp_assets.bench import ocr", "bench-is-not-product"),
    ],
    ids=["logic-imports-dagster", "logic-imports-resources", "sensor-imports-bench"],
)
def test_contracts_report_a_forbidden_import(tmp_path, module, statement, broken):
    root = _copy_tree(tmp_path)
    _add_lazy_import(root / module, statement)
    res = lint_imports(root)
    assert res.returncode != 0, res.stdout + res.stderr
    assert f"{CONTRACTS[broken]} BROKEN" in res.stdout and "2 kept, 1 broken" in res.stdout, res.stdout  # that one only
