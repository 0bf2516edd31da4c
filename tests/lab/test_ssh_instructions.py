"""Every tunnel shape the instructions can print, run verbatim from the laptop through the real ssh lab (a launcher
on login for the workstation forms, a real Slurm job on compute for the double hop), then a password login."""

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
from labkit import http_login
from labkit.launch import Launcher, init_profile, start_launcher
from labkit.sshlab import SshLab, free_port
from labkit.sshslurm import CLUSTER, SshSlurm
from labkit.user import TestUser

from jupyter_hop.tracking import instructions
from jupyter_hop.tracking.records import Record

pytestmark = pytest.mark.lab

PASSWORD = "pw-s3cret"  # what lab.launch.init_profile sets
BINDS = ("localhost", "socket", "node")
COMMAND_RE = re.compile(r"^On your laptop, open the tunnel .*\n  (ssh .*)$", re.MULTILINE)
# the whole paste: from the shell line that appends to ~/.ssh/config down to the heredoc's end
BLOCK_RE = re.compile(r"^([^\n]*cat >> ~/\.ssh/config <<'EOF'\n.*?\nEOF)$", re.MULTILINE | re.DOTALL)
CONFIG_TUNNEL_RE = re.compile(r"^Then open the tunnel .*\n  (ssh -N (\S+))$", re.MULTILINE)
URL_RE = re.compile(r"^Then open (http://127\.0\.0\.1:(\d+)/\S*)", re.MULTILINE)


@dataclasses.dataclass
class Running:
    """A launcher in a lab namespace, what it printed and the record it wrote."""

    launcher: Launcher | None  # None for a Slurm job
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
        # the launcher is the process we started (every wrapper execs), and its record is named after it
        path = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records" / f"run-{ns}-{launcher.process.pid}.json"
        record = Record.from_dict(json.loads(path.read_text()))
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
    base = f"http://127.0.0.1:{local_port}/"  # the Host header Jupyter sees through the tunnel
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
    absent = ssh_dir.with_name(".ssh.jupyter-hop-test-absent")  # the user had none: whatever is there is ours
    if saved.exists() or absent.exists():  # leftovers of a killed run
        subprocess.run(["rm", "-rf", str(ssh_dir)], check=True)
        if saved.exists():
            saved.rename(ssh_dir)
        absent.unlink(missing_ok=True)
    had = ssh_dir.exists()
    if had:
        ssh_dir.rename(saved)
    else:
        absent.touch()
    try:
        yield ssh_dir / "config"
    finally:
        subprocess.run(["rm", "-rf", str(ssh_dir)], check=True)
        if had:
            saved.rename(ssh_dir)
        absent.unlink(missing_ok=True)


def run_config_form(lab: SshLab, printed: str, local_port: int, config: Path) -> tuple[str, str]:
    """Paste the printed block into a shell as the user, then run the printed `ssh -N ALIAS`."""
    block = BLOCK_RE.search(printed)
    tunnel = CONFIG_TUNNEL_RE.search(printed)
    assert block and tunnel, printed
    # what we paste is everything between the line that asks for it and the blank line after
    assert f"to ~/.ssh/config:\n{block.group(1)}\n\nThen open the tunnel" in printed, printed
    # only options that laptops' older OpenSSH (7.3+, for ProxyJump) know: one unknown option breaks every ssh
    options = {line.split()[0] for line in block.group(1).splitlines()[1:-1]}
    assert options <= {"Host", "HostName", "User", "ProxyJump", "LocalForward"}, options
    pasted = lab.run_laptop(["bash", "-c", block.group(1)])
    assert pasted.returncode == 0, pasted.stderr
    assert f"Host {tunnel.group(2)}\n" in config.read_text()
    with lab.tunnel(tunnel.group(1), local_port):
        check_login(lab, printed, local_port)
    return block.group(1), tunnel.group(1)


# --------------------------------------------------------------------------- workstation: laptop -> login


@pytest.mark.parametrize("bind", BINDS)
def test_workstation_command(ssh_lab: SshLab, user_home: dict[str, str], bind: str) -> None:
    with launched(ssh_lab, "login", user_home, bind, "--login-host", "login") as run:
        rec = run.record
        assert rec.host == "login" and rec.kind == "run"
        if bind == "node":
            assert rec.address == ssh_lab.addresses["login"]
        remote = {"localhost": f"127.0.0.1:{rec.port}", "socket": rec.sock, "node": f"{rec.address}:{rec.port}"}[bind]
        command = run_command_form(ssh_lab, run.printed, rec.local_port)
        assert command == f"ssh -N -L 127.0.0.1:{rec.local_port}:{remote} hoptest@login"


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


# --------------------------------------------------------------------------- double hop: a Slurm job on compute


@contextmanager
def submitted(slurm: SshSlurm, env: dict[str, str], name: str) -> Iterator[Running]:
    """`jupyter-hop slurm submit NAME` as the user on login, as a user types it; the job runs on compute."""
    result = slurm.on_login(["jupyter-hop", "slurm", "submit", name], env, timeout=240)
    match = re.search(r"Slurm job (\d+)", result.stderr + result.stdout)
    assert match, (result.stdout, result.stderr)
    job_id = match.group(1)
    try:
        assert result.returncode == 0, result.stderr
        path = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records" / f"job-{job_id}@{CLUSTER}.json"
        record = Record.from_dict(json.loads(path.read_text()))
        yield Running(None, result.stdout, record)
    finally:
        assert slurm.cancel(job_id) in ("CANCELLED", "COMPLETED"), slurm.job_state(job_id)


def job_profile(lab: SshLab, env: dict[str, str], name: str, bind: str, *args: str) -> None:
    init_profile(lab.user, env, name, "--app", "server", "--bind", bind, "--local-port", str(free_port()),
                 *args, password=PASSWORD)


@pytest.mark.parametrize("bind", BINDS)
def test_job_command(ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str], bind: str) -> None:
    """The login node comes from the job (SLURM_SUBMIT_HOST), not from the profile."""
    job_profile(ssh_lab, user_home, "job", bind)
    with submitted(ssh_slurm, user_home, "job") as run:
        rec = run.record
        assert (rec.kind, rec.host, rec.login_host) == ("job", "compute", "login")
        if bind == "node":
            assert rec.address == ssh_lab.addresses["compute"]
        command = run_command_form(ssh_lab, run.printed, rec.local_port)
        local = f"127.0.0.1:{rec.local_port}"
        expected = {
            "localhost": f"ssh -N -J hoptest@login -L {local}:127.0.0.1:{rec.port} hoptest@compute",
            "socket": f"ssh -N -J hoptest@login -L {local}:{rec.sock} hoptest@compute",
            "node": f"ssh -N -L {local}:{ssh_lab.addresses['compute']}:{rec.port} hoptest@login",
        }[bind]
        assert command == expected
        if bind == "socket":  # the helper's Unix-socket path, straight to the server (root may connect)
            assert http_login.login(socket_path=rec.sock, password=PASSWORD) == 200
        # the launcher always names the user; without one the shapes name bare hosts and work the same
        bare = instructions.render(dataclasses.replace(rec, ssh_user=""))
        assert "@" not in run_command_form(ssh_lab, bare, rec.local_port)


@pytest.mark.parametrize("bind", BINDS)
def test_job_config_block(
    ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str], ssh_config: Path, bind: str
) -> None:
    """ssh.style = "config", and the login node named in the profile (--login-host)."""
    job_profile(ssh_lab, user_home, "job", bind, "--login-host", "login")
    set_style(user_home, "job", "config")
    with submitted(ssh_slurm, user_home, "job") as run:
        assert run.record.login_host == "login"
        run_config_form(ssh_lab, run.printed, run.record.local_port, ssh_config)


def test_config_block_pasted_for_two_jobs(
    ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str], ssh_config: Path
) -> None:
    """The same profile submitted again (same laptop port, another server port), its block pasted after the first
    one's: the new block must reach the new server."""
    job_profile(ssh_lab, user_home, "job", "localhost")
    set_style(user_home, "job", "config")
    for _ in range(2):
        with submitted(ssh_slurm, user_home, "job") as run:
            run_config_form(ssh_lab, run.printed, run.record.local_port, ssh_config)
    assert ssh_config.read_text().count("Host ") == 2
    assert os.stat(ssh_config).st_uid == ssh_lab.user.uid


def test_launcher_user_is_printed(ssh_lab: SshLab, user_home: dict[str, str], test_user: TestUser) -> None:
    """--ssh-user overrides the login name in every printed shape."""
    with launched(ssh_lab, "login", user_home, "localhost", "--ssh-user", test_user.name) as run:
        assert f" {test_user.name}@login" in run.printed


# --------------------------------------------------------------------------- the other printed lines


def printed_line(printed: str, pattern: str) -> str:
    match = re.search(pattern, printed, re.MULTILINE)
    assert match, printed
    return match.group(1)


def test_workstation_stop_line(ssh_lab: SshLab, user_home: dict[str, str]) -> None:
    """`Stop it: jupyter hop stop KEY`, typed on the machine where it runs, stops the launcher cleanly."""
    with launched(ssh_lab, "login", user_home, "localhost") as run:
        stop = printed_line(run.printed, r"^Stop it: (jupyter hop stop \S+)$")
        done = ssh_lab.run_in("login", ["bash", "-c", stop], user_home)
        assert done.returncode == 0, done.stderr
        assert run.launcher is not None
        assert run.launcher.wait(timeout=30) == 0


def test_job_stop_line(ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str]) -> None:
    """The job's stop line, typed on the login node, ends the job and its record."""
    job_profile(ssh_lab, user_home, "job", "localhost")
    with submitted(ssh_slurm, user_home, "job") as run:
        stop = printed_line(run.printed, r"^Stop it: (jupyter hop stop \S+)$")
        assert stop == f"jupyter hop stop {run.record.job_id}"
        done = ssh_slurm.on_login(["bash", "-c", stop], user_home)
        assert done.returncode == 0, done.stderr
        assert ssh_slurm.job_state(run.record.job_id) not in ("PENDING", "RUNNING")
        assert not list((Path(user_home["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob("job-*.json"))


def test_job_token_mode(ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str]) -> None:
    """Without a password: the printed `jupyter hop instructions KEY`, run on the user's own terminal (a pty) on
    login, shows the URL with the token, and that URL logs in through the printed tunnel."""
    init_profile(ssh_lab.user, user_home, "tok", "--app", "server", "--local-port", str(free_port()), password=None)
    with submitted(ssh_slurm, user_home, "tok") as run:
        assert "token=" not in run.printed  # the submit output here is not a terminal
        again = printed_line(run.printed, r"^  (jupyter hop instructions \S+)$")
        shown = ssh_slurm.on_login(["script", "-qec", again, "/dev/null"], user_home)
        assert shown.returncode == 0, shown.stderr
        url = printed_line(shown.stdout.replace("\r\n", "\n"), r"^Then open (http://127\.0\.0\.1:\d+/\S*token=\S+)")
        token = url.split("token=", 1)[1]
        local = run.record.local_port
        with ssh_lab.tunnel(run_tunnel_line(run.printed), local):
            assert http_login.Session(f"http://127.0.0.1:{local}/").request("GET", "api/status")[0] == 403
            session = http_login.Session(url)
            assert session.request("GET", "")[0] in (200, 302)
            status, _, _ = http_login.Session(f"http://127.0.0.1:{local}/").request(
                "GET", "api/status", headers={"Authorization": f"token {token}"})
            assert status == 200


def run_tunnel_line(printed: str) -> str:
    return printed_line(printed, r"^  (ssh -N .*)$")


def test_two_jobs_at_once_get_distinct_local_ports(
    ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str]
) -> None:
    """A second server of the same profile prints another laptop port; both tunnels work at once."""
    job_profile(ssh_lab, user_home, "job", "localhost")
    with submitted(ssh_slurm, user_home, "job") as first, submitted(ssh_slurm, user_home, "job") as second:
        assert second.record.local_port != first.record.local_port
        assert f" -L 127.0.0.1:{second.record.local_port}:" in second.printed
        with ssh_lab.tunnel(run_tunnel_line(first.printed), first.record.local_port), \
                ssh_lab.tunnel(run_tunnel_line(second.printed), second.record.local_port):
            check_login(ssh_lab, first.printed, first.record.local_port)
            check_login(ssh_lab, second.printed, second.record.local_port)


def test_two_runs_at_once_warn_about_the_local_port(ssh_lab: SshLab, user_home: dict[str, str]) -> None:
    """The launcher's own output says why the second server's laptop port is not the profile's."""
    with launched(ssh_lab, "login", user_home, "localhost") as first, \
            launched(ssh_lab, "login", user_home, "localhost", init=False) as second:
        wanted = first.record.local_port
        assert second.record.local_port != wanted
        assert f"({wanted} is used by another of your servers' tunnels, so this one uses " \
               f"{second.record.local_port}.)" in second.printed
        with ssh_lab.tunnel(run_tunnel_line(second.printed), second.record.local_port):
            check_login(ssh_lab, second.printed, second.record.local_port)
