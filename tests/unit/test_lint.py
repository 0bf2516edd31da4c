"""The code stays ruff- and mypy-clean: checked in every run, not left to memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ruff() -> None:
    result = subprocess.run([str(BIN / "ruff"), "check", "src", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run([str(BIN / "mypy"), "src/jupyter_hop"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_stay_small() -> None:
    """One concern per module: a module past 350 lines is a sign that it holds two."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "src" / "jupyter_hop").rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 350} == {}


def _imports(package: Path) -> dict[str, set[str]]:
    """Each jupyter_hop module and the jupyter_hop modules it imports, at the top or inside a function."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jupyter_hop"):
                found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        graph[name] = found
    return {name: {d for d in deps if d in graph and d != name} for name, deps in graph.items()}


def test_no_import_cycle() -> None:
    """No module imports one that imports it back, even through others or inside a function."""
    graph = _imports(ROOT / "src" / "jupyter_hop")
    cycles = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for dep in sorted(graph[name]):
            if dep in path:
                cycles.append([*path[path.index(dep):], dep])
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []
