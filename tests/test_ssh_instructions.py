"""Every tunnel shape the instructions can print, run verbatim from the laptop through the real ssh lab, then a
password login through the tunnel."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from lab import http_login
from lab.launch import Launcher, init_profile, start_launcher
from lab.sshlab import SshLab, free_port
from lab.user import TestUser

from jupyter_hop import instructions
from jupyter_hop.records import Record

pytestmark = pytest.mark.lab

PASSWORD = "pw-s3cret"  # what lab.launch.init_profile sets
BINDS = ("localhost", "socket", "node")
COMMAND_RE = re.compile(r"^On your laptop, open the tunnel .*\n  (ssh .*)$", re.MULTILINE)
# the whole paste: from the shell line that appends to ~/.ssh/config down to the heredoc's end
BLOCK_RE = re.compile(r"^([^\n]*cat >> ~/\.ssh/config <<'EOF'\n.*?\nEOF)$", re.MULTILINE | re.DOTALL)
CONFIG_TUNNEL_RE = re.compile(r"^Then open the tunnel .*\n  (ssh -N (\S+))$", re.MULTILINE)
URL_RE = re.compile(r"^Then open (http://localhost:(\d+)/\S*)", re.MULTILINE)


@dataclasses.dataclass
class Running:
    """A launcher in a lab namespace, what it printed and the record it wrote."""

    launcher: Launcher
    printed: str
    record: Record


@contextmanager
def launched(
    lab: SshLab, ns: str, env: dict[str, str], bind: str, *init_args: str, init: bool = True
) -> Iterator[Running]:
    name = f"{ns}-{bind}"
    if init:
        init_profile(lab.user, env, name, "--app", "server", "--bind", bind, "--local-port", str(free_port()),
                     *init_args, password=PASSWORD)
    launcher = start_launcher(lab.user, env, name, prefix=lab.prefix(ns))
    try:
        printed = launcher.wait_ready()
        files = list((Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob("*.json"))
        assert len(files) == 1, files
        record = Record.from_dict(json.loads(files[0].read_text()))
        yield Running(launcher, printed, record)
    finally:
        launcher.stop()
    assert launcher.process.returncode == 0, launcher.err[-3000:]


def set_style(env: dict[str, str], name: str, style: str) -> None:
    """Edit the profile as a user would (there is no init flag for the hop style)."""
    import tomlkit

    path = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"
    doc = tomlkit.parse(path.read_text())
    doc.setdefault("ssh", tomlkit.table())["style"] = style  # type: ignore[index]
    path.write_text(tomlkit.dumps(doc))


def check_login(lab: SshLab, printed: str, local_port: int) -> None:
    """The printed URL goes through the tunnel, the password logs in, a wrong one does not."""
    match = URL_RE.search(printed)
    assert match, printed
    assert int(match.group(2)) == local_port, printed
    base = f"http://localhost:{local_port}/"
    assert http_login.login(base, PASSWORD) == 200
    assert http_login.wrong_password_status(base, "not-the-password") == 401
    # the URL as printed answers (a redirect to the login page for a fresh browser)
    status, headers, _ = http_login.Session(match.group(1)).request("GET", "")
    assert status in (200, 302), (status, headers)


def run_command_form(lab: SshLab, printed: str, local_port: int) -> str:
    match = COMMAND_RE.search(printed)
    assert match, printed
    command = match.group(1)
    with lab.tunnel(command, local_port):
        check_login(lab, printed, local_port)
    return command


@pytest.fixture
def ssh_config(ssh_lab: SshLab) -> Iterator[Path]:
    """hoptest's real ~/.ssh/config, restored (or removed) afterwards; the test starts without ~/.ssh."""
    user = ssh_lab.user
    ssh_dir = user.home / ".ssh"
    saved = ssh_dir.with_name(".ssh.jupyter-hop-test-saved")
    if saved.exists():  # leftover of a killed run: that is the user's real directory
        subprocess.run(["rm", "-rf", str(ssh_dir)], check=True)
        saved.rename(ssh_dir)
    had = ssh_dir.exists()
    if had:
        ssh_dir.rename(saved)
    try:
        yield ssh_dir / "config"
    finally:
        subprocess.run(["rm", "-rf", str(ssh_dir)], check=True)
        if had:
            saved.rename(ssh_dir)


def run_config_form(lab: SshLab, printed: str, local_port: int, config: Path) -> tuple[str, str]:
    """Paste the printed block into a shell as the user, then run the printed `ssh -N ALIAS`."""
    block = BLOCK_RE.search(printed)
    tunnel = CONFIG_TUNNEL_RE.search(printed)
    assert block and tunnel, printed
    # what we paste is everything between the line that asks for it and the blank line after
    assert f"to ~/.ssh/config:\n{block.group(1)}\n\nThen open the tunnel" in printed, printed
    pasted = lab.run_laptop(["bash", "-c", block.group(1)])
    assert pasted.returncode == 0, pasted.stderr
    assert f"Host {tunnel.group(2)}\n" in config.read_text()
    with lab.tunnel(tunnel.group(1), local_port):
        check_login(lab, printed, local_port)
    return block.group(1), tunnel.group(1)


def as_job(record: Record, login_host: str = "login") -> Record:
    """The record a Slurm job on compute writes for this same server: login_host set (see the report)."""
    return dataclasses.replace(record, kind="job", job_id="4242", login_host=login_host, ssh_host="")


# --------------------------------------------------------------------------- workstation: laptop -> login


@pytest.mark.parametrize("bind", BINDS)
def test_workstation_command(ssh_lab: SshLab, user_home: dict[str, str], bind: str) -> None:
    with launched(ssh_lab, "login", user_home, bind, "--login-host", "login") as run:
        rec = run.record
        assert rec.host == "login" and rec.kind == "run"
        remote = {"localhost": f"localhost:{rec.port}", "socket": rec.sock, "node": f"login:{rec.port}"}[bind]
        command = run_command_form(ssh_lab, run.printed, rec.local_port)
        assert command == f"ssh -N -L {rec.local_port}:{remote} hoptest@login"


def test_workstation_default_ssh_host_is_the_hostname(ssh_lab: SshLab, user_home: dict[str, str]) -> None:
    """Without --login-host the printed host is this machine's name, and that works too."""
    with launched(ssh_lab, "login", user_home, "localhost") as run:
        command = run_command_form(ssh_lab, run.printed, run.record.local_port)
        assert command.endswith(" hoptest@login")


@pytest.mark.parametrize("bind", BINDS)
def test_workstation_config_block(
    ssh_lab: SshLab, user_home: dict[str, str], ssh_config: Path, bind: str
) -> None:
    name = f"login-{bind}"
    init_profile(ssh_lab.user, user_home, name, "--app", "server", "--bind", bind,
                 "--local-port", str(free_port()), "--login-host", "login", password=PASSWORD)
    set_style(user_home, name, "config")
    with launched(ssh_lab, "login", user_home, bind) as run:
        run_config_form(ssh_lab, run.printed, run.record.local_port, ssh_config)


# --------------------------------------------------------------------------- double hop: laptop -> login -> compute


@pytest.mark.parametrize("bind", BINDS)
def test_double_hop_command(ssh_lab: SshLab, user_home: dict[str, str], bind: str) -> None:
    with launched(ssh_lab, "compute", user_home, bind) as run:
        rec = run.record
        assert rec.host == "compute"
        if bind == "node":
            assert rec.address == ssh_lab.addresses["compute"]
        job = as_job(rec)
        printed = instructions.render(job)
        command = run_command_form(ssh_lab, printed, rec.local_port)
        expected = {
            "localhost": f"ssh -N -J hoptest@login -L {rec.local_port}:localhost:{rec.port} hoptest@compute",
            "socket": f"ssh -N -J hoptest@login -L {rec.local_port}:{rec.sock} hoptest@compute",
            "node": f"ssh -N -L {rec.local_port}:compute:{rec.port} hoptest@login",
        }[bind]
        assert command == expected
        # without an ssh user the shapes name bare hosts, and they work for the same user on the laptop
        bare = run_command_form(ssh_lab, instructions.render(dataclasses.replace(job, ssh_user="")), rec.local_port)
        assert "@" not in bare


@pytest.mark.parametrize("bind", BINDS)
def test_double_hop_config_block(
    ssh_lab: SshLab, user_home: dict[str, str], ssh_config: Path, bind: str
) -> None:
    with launched(ssh_lab, "compute", user_home, bind) as run:
        printed = instructions.render(as_job(run.record), style="config")
        run_config_form(ssh_lab, printed, run.record.local_port, ssh_config)


def test_config_block_pasted_for_two_launches(
    ssh_lab: SshLab, user_home: dict[str, str], ssh_config: Path
) -> None:
    """The same profile launched again (same laptop port, another server port), its block pasted after the first
    one's: the new block must reach the new server."""
    for attempt in range(2):
        with launched(ssh_lab, "compute", user_home, "localhost", init=attempt == 0) as run:
            printed = instructions.render(as_job(run.record), style="config")
            run_config_form(ssh_lab, printed, run.record.local_port, ssh_config)
    assert ssh_config.read_text().count("Host ") == 2
    assert os.stat(ssh_config).st_uid == ssh_lab.user.uid


def test_launcher_user_is_printed(ssh_lab: SshLab, user_home: dict[str, str], test_user: TestUser) -> None:
    """--ssh-user overrides the login name in every printed shape."""
    with launched(ssh_lab, "login", user_home, "localhost", "--ssh-user", test_user.name) as run:
        assert f" {test_user.name}@login" in run.printed
