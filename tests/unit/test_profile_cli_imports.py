"""The CLI stays light: importing it, or running the profile commands, never imports jupyter_server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from labkit.hoptree import HopTree

# Heavy packages the profile commands must not pull in (jupyter_server alone costs about 1.6 s).
FORBIDDEN = ("jupyter_server", "jupyterlab", "jupyter_client", "tornado", "jupyter_events", "notebook")

PROBE = """
import atexit, json, sys
path = sys.argv[1]
def report():
    with open(path, "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(report)
sys.argv = ["jupyter-hop", *sys.argv[2:]]
from jupyter_hop.cli import main
main()
"""


def modules_after(tree: HopTree, args: list[str], stdin: str | None = None) -> list[str]:
    out = tree.base / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=tree.env(),
        cwd=tree.work,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(out.read_text())
    return loaded


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in FORBIDDEN]


def test_import_cli_only(tmp_path: Path) -> None:
    code = "import json, sys, jupyter_hop.cli; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert heavy(json.loads(done.stdout)) == []


@pytest.mark.parametrize(
    "args",
    [["--help"], ["config", "p"], ["config", "p", "--json"], ["init", "p", "--local-port", "9000"]],
    ids=["help", "config", "config-json", "init-update"],
)
def test_profile_commands_never_import_jupyter_server(tmp_path: Path, args: list[str]) -> None:
    tree = HopTree.make(tmp_path)
    made = tree.hop(["init", "p", "--password-stdin", "--root-dir", str(tree.work)], stdin="pw\n")
    assert made.returncode == 0, made.stderr
    assert heavy(modules_after(tree, args)) == []


def test_init_with_password_never_imports_jupyter_server(tmp_path: Path) -> None:
    tree = HopTree.make(tmp_path)
    loaded = modules_after(tree, ["init", "q", "--password-stdin", "--root-dir", str(tree.work)], stdin="pw\n")
    assert "argon2" in {m.split(".")[0] for m in loaded}  # the probe saw the real work being done
    assert heavy(loaded) == []
