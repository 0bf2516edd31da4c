"""The wheel carries the units/ and slurm/ templates and the --json schema, and works installed in a fresh venv outside
the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("src", "units", "slurm", "pyproject.toml", "README.md")


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 300)
    done = subprocess.run(argv, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    site: Path
    home: Path  # cwd and HOME for the commands: outside the checkout

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_STATE_HOME": str(self.home / "state"),
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }

    def hop(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run([str(self.bin / "jupyter-hop"), *args], input=stdin, env=self.env(), cwd=self.home)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    """Build the wheel from a copy of the shipped files (nothing is written into the checkout) and install it
    into a new venv whose only other packages are the dev venv's dependencies, reached through a .pth line.

    A --system-site-packages venv would see the system Python's packages, not the dev venv's, and pip-installing
    jupyter-server and its dependencies again would take minutes; the .pth adds the dev site-packages as a plain
    path, so its editable-install hook (which points at the checkout) is never run.
    """
    # Outside /tmp: a rendered unit refuses paths under /tmp (the unit gets a private /tmp).
    cache = Path.home() / ".cache"
    cache.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="jupyter-hop-wheel-test-", dir=cache))
    source = base / "source"
    source.mkdir()
    for name in SHIPPED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, source / name)
    dist = base / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)], cwd=base)
    (wheel,) = dist.glob("jupyter_hop-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the test venv may hold a non-editable jupyter-hop (as in CI), visible through the .pth
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "--ignore-installed",
         str(wheel)])
    home = base / "home"
    (home / "work").mkdir(parents=True)
    try:
        yield Installed(wheel, venv / "bin", site, home)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_templates_are_in_the_wheel(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for folder in ("units", "slurm"):
        shipped = [p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert shipped, f"{folder}/ is empty in the checkout"
        for path in shipped:
            inside = "jupyter_hop/templates/" + path.relative_to(REPO).as_posix()
            assert inside in names, f"{inside} is missing from {installed.wheel.name}"


def test_the_installed_package_is_the_wheel(installed: Installed) -> None:
    where = run(
        [str(installed.bin / "python"), "-c", "import jupyter_hop; print(jupyter_hop.__file__)"],
        cwd=installed.home,
        env=installed.env(),
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.site), f"jupyter_hop was imported from {where}"
    script = (installed.bin / "jupyter-hop").read_text()
    assert script.startswith(f"#!{installed.bin / 'python'}")


def test_commands_run_from_the_wheel(installed: Installed) -> None:
    assert "init" in installed.hop(["--help"]).stdout
    work = installed.home / "work"
    done = installed.hop(["init", "w", "--password-stdin", "--root-dir", str(work)], stdin="wheel password\n")
    assert "Created profile 'w'" in done.stdout
    shown = installed.hop(["config", "w"]).stdout
    # `config` says a password is set and never shows the hash (issue 10, item 8)
    assert "c.PasswordIdentityProvider.hashed_password = '(argon2 hash, not shown)'" in shown
    assert "$argon2" not in shown and "Password: set (argon2)" in shown
    assert f"c.ServerApp.root_dir = {str(work)!r}" in shown


@pytest.mark.parametrize(("group", "marker"), [("slurm", "#SBATCH"), ("systemd", "[Service]")])
def test_render_from_the_wheel(installed: Installed, group: str, marker: str) -> None:
    """Once a group has a `render` command, it renders from the templates inside the installed wheel."""
    helptext = installed.hop([group, "--help"]).stdout
    if " render " not in helptext and "│ render" not in helptext:
        pytest.skip(f"`jupyter-hop {group} render` does not exist yet")
    work = installed.home / "work"
    installed.hop(["init", "r", "--no-password", "--root-dir", str(work)])
    rendered = installed.hop([group, "render", "r"]).stdout
    assert marker in rendered
    # the launcher it starts is this environment's interpreter, which imports the wheel's package
    assert f"{installed.bin}/python" in rendered
    assert str(REPO) not in rendered, "the rendered file points into the checkout"


def test_protocol_schema_is_in_the_wheel(installed: Installed) -> None:
    """The --json schema document ships beside the module that builds the objects, and loads installed."""
    assert "jupyter_hop/protocol.schema.json" in set(zipfile.ZipFile(installed.wheel).namelist())
    code = "import jupyter_hop, jupyter_hop.protocol as p; print(p.schema()['title'], jupyter_hop.__file__)"
    shown = run([str(installed.bin / "python"), "-c", code], cwd=installed.home, env=installed.env()).stdout
    assert shown.startswith("jupyter-hop --json, schema 1 ") and str(installed.site) in shown
