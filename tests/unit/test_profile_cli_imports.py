"""The CLI stays light: importing it, or running the profile commands, never imports jupyter_server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
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


def test_render_commands_import_only_what_rendering_needs() -> None:
    """The render commands run often (a unit's or script's text piped elsewhere): they must not pay for the
    tracking of servers, the systemd operations or the other commands of their group."""
    # Outside /tmp: a rendered unit refuses paths under /tmp (the unit gets a private /tmp).
    cache = Path.home() / ".cache"
    cache.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="jupyter-hop-imports-test-", dir=cache))
    try:
        _render_imports(HopTree.make(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _render_imports(tree: HopTree) -> None:
    made = tree.hop(["init", "p", "--password-stdin", "--root-dir", str(tree.work)], stdin="pw\n")
    assert made.returncode == 0, made.stderr
    assert tree.hop(["config", "p"]).returncode == 0  # a first read parses the profile and caches what it found
    for group in ("systemd", "slurm"):
        loaded = set(modules_after(tree, [group, "render", "p"]))
        assert "tomllib" not in loaded and "tomlkit" not in loaded  # the profile parsed before, now cached
        assert f"jupyter_hop.commands.{group}" in loaded
        not_needed = {"jupyter_hop.tracking.records", "jupyter_hop.systemd.ops", "jupyter_hop.systemd.systemctl",
                      "jupyter_hop.slurm.jobs"}
        assert not_needed & loaded == set()
        assert heavy(sorted(loaded)) == []


def test_a_group_names_all_its_commands_when_none_is_given(tmp_path: Path) -> None:
    tree = HopTree.make(tmp_path)
    shown = tree.hop(["systemd", "--help"])
    assert shown.returncode == 0
    for command in ("render", "install", "start", "restart", "stop", "status", "logs", "uninstall"):
        assert f" {command} " in shown.stdout
    typo = tree.hop(["systemd", "rendr"])
    assert typo.returncode == 2 and "Did you mean 'render'?" in typo.stderr
