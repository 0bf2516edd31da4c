"""Shell completion in a real bash: the script `--show-completion` prints completes commands, subcommands and
options, although the CLI registers only the command its argv names (completion passes no words in argv)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from labkit.hoptree import HopTree

# Source the script the way a user would, then ask it what TAB offers for each command line (the last word is
# the one being completed, "" for a new word), one answer per block.
BASH = r"""
eval "$(jupyter-hop --show-completion bash)"
complete -p jupyter-hop
offer() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
    _jupyter_hop_completion jupyter-hop
    printf '%s\n' "${COMPREPLY[@]}" | sort
    echo ---
}
offer jupyter-hop sys
offer jupyter-hop s
offer jupyter-hop systemd ren
offer jupyter-hop slurm ""
offer jupyter-hop run --verb
offer jupyter-hop --debug co
"""


@pytest.fixture
def tree(tmp_path: Path) -> HopTree:
    return HopTree.make(tmp_path)


def test_bash_completes_with_the_printed_script(tree: HopTree) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed for this test"
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", BASH], capture_output=True, text=True, env=tree.env(), cwd=tree.work,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    registered, *answers = done.stdout.split("\n", 1)
    assert registered == "complete -o default -F _jupyter_hop_completion jupyter-hop"
    blocks = [block.split() for block in answers[0].split("---\n")][:-1]
    assert blocks == [
        ["systemd"],
        ["slurm", "stop", "systemd"],
        ["render"],
        ["cancel", "instructions", "render", "status", "submit"],
        ["--verbose"],
        ["config", "connect"],
    ], done.stdout


def test_help_lists_the_completion_options(tree: HopTree) -> None:
    helptext = tree.hop(["--help"]).stdout
    assert "--install-completion" in helptext and "--show-completion" in helptext
