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
    """One concern per module: a module past 450 lines is a sign that it holds two."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "src" / "jupyter_hop").rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 450} == {}
