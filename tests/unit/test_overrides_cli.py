"""One-off overrides through the real CLI: each option reaches its directive, the profile file stays as it was
unless --save, and --save changes only the overridden lines."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit.hoptree import HopTree

# option, value, the #SBATCH line it must produce
SLURM_CASES = [
    ("--time", "2:00:00", "--time=2:00:00"),
    ("--partition", "gpu", "--partition=gpu"),
    ("--cpus", "8", "--cpus-per-task=8"),
    ("--mem", "16G", "--mem=16G"),
    ("--gpus", "a100:2", "--gpus=a100:2"),
    ("--gres", "gpu:1", "--gres=gpu:1"),
    ("--account", "proj.42", "--account=proj.42"),
    ("--qos", "high", "--qos=high"),
    ("--constraint", "a100&ib", "--constraint='a100&ib'"),
    ("--job-name", "nb-1", "--job-name=nb-1"),
    ("--sbatch", "--mail-type=END", "--mail-type=END"),
]
PROFILE = """\
# my cluster profile: keep this comment
[server]
root_dir = "@WORK@"

[slurm]
time = "04:00:00" # four hours is plenty
partition = "short"
extra_directives = ["--exclusive"] # the site likes whole nodes
"""


@pytest.fixture
def tree(tmp_path: Path) -> HopTree:
    tree = HopTree.make(tmp_path)
    path = tree.profile("gpu")
    path.parent.mkdir(parents=True)
    path.write_text(PROFILE.replace("@WORK@", str(tree.work)))
    return tree


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_each_option_reaches_its_directive(tree: HopTree) -> None:
    before = tree.profile("gpu").read_bytes()
    for flag, value, line in SLURM_CASES:
        done = tree.hop(["slurm", "render", "gpu", flag, value])
        assert done.returncode == 0, done.stderr
        assert line in directives(done.stdout), (flag, directives(done.stdout))
    assert tree.profile("gpu").read_bytes() == before


def test_rendered_with_every_override_is_clean_shell(tree: HopTree, tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck is not installed (tests/run.sh installs it)"
    argv = ["slurm", "render", "gpu"]
    for flag, value, _ in SLURM_CASES:
        argv += [flag, value]
    done = tree.hop([*argv, "--sbatch", "-C a100|v100", "--sbatch", "--comment=it's $HOME"])
    assert done.returncode == 0, done.stderr
    found = directives(done.stdout)
    assert "--partition=gpu" in found and "--partition=short" not in found
    assert found[-4:] == ["--exclusive", "--mail-type=END", "-C a100|v100", "--comment=it's $HOME"]
    assert "--constraint='a100&ib'" not in found  # -C is --constraint: the extra one replaces it
    script = tmp_path / "job.sbatch"
    script.write_text(done.stdout)
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0 and not syntax.stderr, syntax.stderr
    check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout, check.stdout


def test_save_changes_only_the_overridden_lines(tree: HopTree) -> None:
    path = tree.profile("gpu")
    before = path.read_text().splitlines()
    done = tree.hop(["slurm", "render", "gpu", "--time", "2:00:00", "--cpus", "4", "--sbatch", "--mail-type=END",
                     "--save"])
    assert done.returncode == 0, done.stderr
    after = path.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=False) if old != new]
    assert changed == [
        ('time = "04:00:00" # four hours is plenty', 'time = "2:00:00" # four hours is plenty'),
        ('extra_directives = ["--exclusive"] # the site likes whole nodes',
         'extra_directives = ["--exclusive", "--mail-type=END"] # the site likes whole nodes'),
    ]
    assert after[len(before):] == ["cpus = 4"]  # a key the file did not have is added to its table
    again = tree.hop(["slurm", "render", "gpu"])
    assert again.returncode == 0 and again.stdout == done.stdout  # the saved profile renders the same script
    tree.hop(["slurm", "render", "gpu", "--time", "2:00:00", "--save"])
    assert path.read_text().splitlines() == after


@pytest.fixture
def home_tree() -> Iterator[HopTree]:
    """A tree outside /tmp, where a unit may point (units get a private /tmp)."""
    base = Path(tempfile.mkdtemp(prefix="hop-unit-test-", dir=Path.home()))
    try:
        yield HopTree.make(base)
    finally:
        shutil.rmtree(base)


def test_unit_overrides_and_save(home_tree: HopTree) -> None:
    tree = home_tree
    other = tree.work / "other"
    other.mkdir()
    made = tree.hop(["init", "gpu", "--no-password", "--root-dir", str(tree.work)])
    assert made.returncode == 0, made.stderr
    profile, config = tree.profile("gpu"), tree.server_dir("gpu") / "jupyter_server_config.py"
    before = profile.read_bytes(), config.read_bytes()

    shown = tree.hop(["systemd", "render", "gpu", "--root-dir", "other", "--idle-timeout", "600"])
    assert shown.returncode == 0, shown.stderr
    assert f'run "gpu" "--root-dir" "{other}" "--idle-timeout" "600"\n' in shown.stdout
    assert (profile.read_bytes(), config.read_bytes()) == before

    tmp = tree.hop(["systemd", "render", "gpu", "--root-dir", "/tmp", "--save"])
    assert tmp.returncode != 0 and "--root-dir = '/tmp' is under /tmp" in tmp.stderr, tmp.stderr
    assert (profile.read_bytes(), config.read_bytes()) == before  # refused: not saved either

    saved = tree.hop(["systemd", "render", "gpu", "--root-dir", "other", "--idle-timeout", "600", "--save"])
    assert saved.returncode == 0, saved.stderr
    assert 'run "gpu"\n' in saved.stdout  # the profile carries them now
    text = profile.read_text()
    assert f'root_dir = "{other}"' in text and "idle_timeout = 600 #" in text
    # like init, the server config follows the profile
    assert str(other) in config.read_text() and "shutdown_no_activity_timeout = 600" in config.read_text()


def test_help_shows_the_accepted_forms(tree: HopTree) -> None:
    done = tree.hop(["slurm", "submit", "--help"], env={"COLUMNS": "200"})
    assert "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS" in done.stdout
    assert "--save" in done.stdout and "--sbatch" in done.stdout
    done = tree.hop(["run", "--help"], env={"COLUMNS": "200"})
    assert "1024-65535" in done.stdout and "--idle-timeout" in done.stdout
