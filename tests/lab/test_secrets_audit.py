"""Secrets audit: after real runs, the password is nowhere in clear and the token only where the design allows."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from labkit.http_login import Session, login
from labkit.launch import hop, init_profile, start_launcher
from labkit.slurmlab import SlurmLab
from labkit.systemdlab import UserManager
from labkit.user import TestUser

# Scanned while the server runs and again after it stopped: every file under the test user's XDG config and
# state dirs, the launch's runtime dir, the node-local runtime base and the user's home; the command line and
# environment of the launcher, the server and their children (a kernel is started so there is one), every
# command line on the machine; and everything the launcher and the CLI printed. The same for a Slurm job (batch
# script, job log, Slurm's own copies, squeue/scontrol output) and a systemd user unit (unit file, unit log,
# `systemctl --user show/cat/status`).

pytestmark = pytest.mark.lab

MAX_FILE = 20 << 20  # larger files are not jupyter-hop's or Jupyter's small state files
# World-writable places a careless program might drop a file in (/tmp itself holds every test's files: the
# node-local runtime base under it is scanned instead).
SHARED_TMP = [Path("/dev/shm"), Path("/var/tmp")]


def fresh_password() -> str:
    # Letters, digits and '-' only: URL, JSON and shell encodings leave it unchanged, so a plain search finds it.
    return "pw-" + secrets.token_hex(12)


@dataclass
class Audit:
    """Collects where each secret was seen; `allowed` lists the only files a secret may be in."""

    secrets: dict[str, str]  # label -> value
    allowed: dict[str, set[Path]] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)  # label -> places it was (allowed ones too)
    files: set[Path] = field(default_factory=set)
    processes: set[int] = field(default_factory=set)
    cmdlines: int = 0
    texts: int = 0

    def _hits(self, data: bytes) -> list[str]:
        return [label for label, value in self.secrets.items() if value.encode() in data]

    def file(self, path: Path) -> None:
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE:
                return
            data = path.read_bytes()
        except OSError:  # vanished meanwhile (another test's file, a temp file)
            return
        self.files.add(path)
        for label in self._hits(data):
            self.seen.setdefault(label, set()).add(str(path))
            if path not in self.allowed.get(label, set()):
                self.findings.append(f"{label} in file {path} (mode {oct(stat.S_IMODE(info.st_mode))})")

    def tree(self, root: Path) -> None:
        for dirpath, _, names in os.walk(root):
            for name in names:
                self.file(Path(dirpath) / name)

    def text(self, where: str, text: str) -> None:
        self.texts += 1
        for label in self._hits(text.encode()):
            self.findings.append(f"{label} in {where}")

    def process(self, pid: int) -> None:
        """A process jupyter-hop started: its argv and environment, and that others cannot read the latter."""
        proc = Path(f"/proc/{pid}")
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
            mode = stat.S_IMODE((proc / "environ").stat().st_mode)
        except OSError:
            return
        self.processes.add(pid)
        shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]
        for label in self._hits(cmdline):
            self.findings.append(f"{label} in the command line of pid {pid}: {shown}")
        for label in self._hits(environ):
            self.findings.append(f"{label} in the environment of pid {pid}: {shown}")
        if mode & 0o077:
            self.findings.append(f"/proc/{pid}/environ is readable by others (mode {oct(mode)})")

    def all_cmdlines(self) -> None:
        """Every command line on the machine: `ps` shows them to every user."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                self.cmdlines += 1
                for label in self._hits(cmdline):
                    self.findings.append(f"{label} in the command line of pid {entry.name}")

    def check(self) -> None:
        assert not self.findings, "secrets found where they must not be:\n" + "\n".join(self.findings)

    def summary(self) -> str:
        return (f"{len(self.files)} files, {len(self.processes)} processes (argv + environ), "
                f"{self.cmdlines} command lines, {self.texts} outputs")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def environ_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def mode_problems(root: Path, *, files: int = 0o600, dirs: int = 0o700, exempt: Iterable[str] = ()) -> list[str]:
    """Entries under `root` (itself included) whose mode is not exactly `dirs` for a dir, `files` otherwise."""
    skip = set(exempt)
    problems = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for path, want in [(Path(dirpath), dirs), *((Path(dirpath) / n, files) for n in names if n not in skip)]:
            mode = stat.S_IMODE(path.lstat().st_mode) & 0o777  # Jupyter sets the sticky bit on its runtime dir
            if mode != want:
                problems.append(f"{path}: {oct(mode)}, want {oct(want)}")
    return problems


def hop_dirs(env: dict[str, str]) -> list[Path]:
    return [Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop", Path(env["XDG_STATE_HOME"]) / "jupyter-hop"]


def only_record(env: dict[str, str]) -> tuple[Path, dict[str, object]]:
    (path,) = (Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob("*.json")
    return path, json.loads(path.read_text())


def kernel_pid(server_pid: int) -> int:
    def find() -> int:
        for pid in descendants(server_pid):
            try:
                if b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return 0

    return int(wait_for(find, 30, "a kernel process under the server"))


def start_kernel(record: dict[str, object], *, password: str = "", token: str = "") -> None:
    """Log in (password) or use the token, then start a kernel through the REST API, so there is one to scan."""
    base = f"http://127.0.0.1:{record['port']}{record['base_url']}"
    body = '{"name": "python3"}'
    if password:
        assert login(base, password) == 200
        session = Session(base)
        assert session.post_login(password) == 302
        headers = {"X-XSRFToken": session.cookies["_xsrf"], "Content-Type": "application/json"}
        status, _, _ = session.request("POST", "api/kernels", body, headers)
        assert status == 201
        return
    request = urllib.request.Request(
        f"{base}api/kernels", data=body.encode(), method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


Cli = Callable[..., "subprocess.CompletedProcess[str]"]


def cli_outputs(cli: Cli, audit: Audit, profile: str, *commands: list[str]) -> None:
    """What the CLI prints about the running server, not on a terminal (as in a job log or a pipe)."""
    common = [["list"], ["list", "--json"], ["config", profile], ["config", profile, "--json"]]
    for args in [*commands, *common]:
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        audit.text(f"`jupyter-hop {' '.join(args)}` stdout", result.stdout)
        audit.text(f"`jupyter-hop {' '.join(args)}` stderr", result.stderr)


def scan_server(env: dict[str, str], audit: Audit, home: Path, extra: Iterable[Path] = (),
                mode_exempt: Iterable[str] = ()) -> tuple[Path, Path]:
    """Files, modes and processes while the server and a kernel run; returns the record and the runtime dir."""
    record_path, record = only_record(env)
    launcher_pid = int(record["pid"])  # type: ignore[call-overload]
    server_pid = int(record["server_pid"])  # type: ignore[call-overload]
    kernel = kernel_pid(server_pid)
    runtime = Path(environ_of(server_pid)["JUPYTER_RUNTIME_DIR"])
    problems = []
    for directory in hop_dirs(env):
        problems += mode_problems(directory, exempt=mode_exempt)
    # Jupyter's own files in the per-launch dir: the json and the token 0600; the -open.html is 0644, which
    # is only safe because the dir around it is 0700 (and so is the base above it).
    problems += mode_problems(runtime, exempt=[f"jpserver-{server_pid}-open.html"])
    problems += mode_problems(runtime.parent, exempt=[p.name for p in runtime.parent.iterdir()])
    assert not problems, "\n".join(problems)
    if record["token"]:
        audit.allowed["token"] = {
            record_path, runtime / "token", runtime / f"jpserver-{server_pid}.json",
            runtime / f"jpserver-{server_pid}-open.html",
        }
    for directory in [*hop_dirs(env), runtime.parent, home, *SHARED_TMP, *extra]:
        audit.tree(directory)
    for pid in [launcher_pid, *descendants(launcher_pid)]:
        audit.process(pid)
    assert {launcher_pid, server_pid, kernel} <= audit.processes
    audit.all_cmdlines()
    return record_path, runtime


def rescan_stopped(env: dict[str, str], runtime: Path, audit: Audit, home: Path, extra: Iterable[Path] = ()) -> None:
    assert not runtime.exists()
    audit.allowed = {}  # the record and the runtime dir are gone: the token may be nowhere now
    for directory in [*hop_dirs(env), runtime.parent, home, *SHARED_TMP, *extra]:
        if directory.is_dir():
            audit.tree(directory)
        elif directory.exists():
            audit.file(directory)


# --- a foreground run on a workstation -------------------------------------------------------------------------


def workstation_run(user: TestUser, env: dict[str, str], password: str | None) -> Audit:
    init_profile(user, env, "audit", "--app", "lab", password=password)
    launcher = start_launcher(user, env, "audit")
    try:
        launcher.wait_ready(timeout=120)
        record_path, record = only_record(env)
        token = str(record["token"])
        assert bool(token) == (password is None)
        audit = Audit({"password": password} if password else {"token": token})
        start_kernel(record, password=password or "", token=token)
        _, runtime = scan_server(env, audit, user.home)
        if token:  # the scanner does find the token where it is allowed
            assert {str(record_path), str(runtime / "token")} <= audit.seen["token"]
        key = f"{record['host']}-{record['pid']}"
        cli_outputs(lambda *args: hop(user, env, *args), audit, "audit", ["instructions", key],
                    ["instructions", key, "--ssh-config"])
        launcher.signal(signal.SIGTERM)
        assert launcher.wait() == 0
        rescan_stopped(env, runtime, audit, user.home)
        audit.text("the launcher's stdout (not a terminal)", launcher.out)
        audit.text("the launcher's stderr (the server log)", launcher.err)
        audit.check()
        return audit
    finally:
        launcher.stop()


def test_workstation_password_run(test_user: TestUser, user_home: dict[str, str]) -> None:
    audit = workstation_run(test_user, user_home, fresh_password())
    print(f"\npassword run audited: {audit.summary()}")


def test_workstation_token_run(test_user: TestUser, user_home: dict[str, str]) -> None:
    audit = workstation_run(test_user, user_home, None)
    print(f"\ntoken run audited: {audit.summary()}; token seen in: {sorted(audit.seen['token'])}")


# --- a Slurm job ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["password", "token"])
def test_slurm_job(test_user: TestUser, user_home: dict[str, str], slurm_lab: SlurmLab, mode: str) -> None:
    env = {**user_home, **slurm_lab.env()}
    password = fresh_password() if mode == "password" else None
    init_profile(test_user, env, "audit", "--app", "lab", password=password)
    submitted = hop(test_user, env, "slurm", "submit", "audit", timeout=240)
    job_id = ""
    if "Submitted Slurm job" in submitted.stderr:
        job_id = submitted.stderr.split("Submitted Slurm job", 1)[1].split()[0].strip(".;,")
    try:
        assert submitted.returncode == 0, submitted.stderr
        assert job_id.isdigit(), submitted.stderr
        _, record = only_record(env)
        token = str(record["token"])
        audit = Audit({"password": password} if password else {"token": token})
        audit.text("`jupyter-hop slurm submit` stdout (not a terminal)", submitted.stdout)
        audit.text("`jupyter-hop slurm submit` stderr", submitted.stderr)
        start_kernel(record, password=password or "", token=token)
        jobs = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "jobs"
        script, log = jobs / "audit.sbatch", jobs / f"audit-{job_id}.log"
        assert script.exists() and log.exists()
        # Slurm keeps its own copies of the script and the submit environment in its state dir: scanned too.
        _, runtime = scan_server(env, audit, test_user.home, [slurm_lab.base])
        assert {script, log} <= audit.files
        for argv in (["squeue", "-h", "-j", job_id, "-o", "%all"], ["scontrol", "show", "job", "-d", job_id],
                     ["scontrol", "write", "batch_script", job_id, "-"]):
            shown = slurm_lab.run(*argv)
            assert shown.returncode == 0, (argv, shown.stderr)
            audit.text(f"`{' '.join(argv)}`", shown.stdout)
        cli_outputs(lambda *args: hop(test_user, env, *args), audit, "audit", ["slurm", "status"],
                    ["slurm", "status", "--json"], ["slurm", "instructions", job_id])
        cancelled = hop(test_user, env, "slurm", "cancel", job_id, timeout=120)
        assert cancelled.returncode == 0, cancelled.stderr
        job_id = ""
        rescan_stopped(env, runtime, audit, test_user.home, [slurm_lab.base])
        assert log.exists() and stat.S_IMODE(log.stat().st_mode) == 0o600
        assert "Jupyter" in log.read_text()  # the job log is the launcher's and the server's output
        audit.check()
    finally:
        if job_id:
            slurm_lab.run("scancel", job_id)
    print(f"\nSlurm job ({mode}) audited: {audit.summary()}")


# --- a systemd user unit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["password", "token"])
def test_systemd_unit(user_manager: UserManager, unit_env: dict[str, str], mode: str) -> None:
    env, user = unit_env, user_manager.user
    unit = "jupyter-hop-audit.service"
    password = fresh_password() if mode == "password" else None

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return user_manager.run(["jupyter-hop", *args], env, input=stdin, timeout=180)

    secret_args = ["--password-stdin"] if password else ["--no-password"]
    made = cli("init", "audit", "--root-dir", env["WORK_DIR"], "--app", "lab", *secret_args,
               stdin=f"{password}\n" if password else None)
    assert made.returncode == 0, made.stderr
    installed = cli("systemd", "install", "audit", "--now")
    try:
        assert installed.returncode == 0, installed.stderr
        _, record = only_record(env)
        token = str(record["token"])
        audit = Audit({"password": password} if password else {"token": token})
        audit.text("`jupyter-hop systemd install --now` stdout (not a terminal)", installed.stdout)
        audit.text("`jupyter-hop systemd install --now` stderr", installed.stderr)
        start_kernel(record, password=password or "", token=token)
        unit_file = user_manager.unit_dir / unit
        # The unit log's mode has its own (expected to fail) test below; here only its content is audited.
        # The unit's private /tmp (PrivateTmp=), as its processes see it.
        private_tmp = Path(f"/proc/{record['pid']}/root/tmp")
        _, runtime = scan_server(env, audit, user.home, [user_manager.unit_dir, user_manager.log, private_tmp],
                                 mode_exempt=["unit-audit.log"])
        assert unit_file in audit.files
        for args in (["show", unit], ["cat", unit], ["status", "--no-pager", "-l", unit], ["show-environment"]):
            shown = user_manager.systemctl(*args)
            assert shown.returncode == 0, (args, shown.stderr)
            audit.text(f"`systemctl --user {' '.join(args)}`", shown.stdout + shown.stderr)
        cli_outputs(cli, audit, "audit", ["systemd", "status", "audit"], ["systemd", "status", "audit", "--json"],
                    ["systemd", "logs", "audit", "-n", "400"], ["instructions", "audit"])
        stopped = cli("systemd", "stop", "audit")
        assert stopped.returncode == 0, stopped.stderr
        unit_log = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "logs" / "unit-audit.log"
        rescan_stopped(env, runtime, audit, user.home, [user_manager.unit_dir, user_manager.log])
        assert unit_log in audit.files and "Jupyter" in unit_log.read_text()
        audit.check()
    finally:
        cli("systemd", "uninstall", "audit")
    print(f"\nsystemd unit ({mode}) audited: {audit.summary()}")


def test_systemd_unit_log_is_private(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    """The unit log holds the server's output: 0600 like every other jupyter-hop file (its dir is 0700)."""
    env = unit_env

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return user_manager.run(["jupyter-hop", *args], env, timeout=180)

    made = cli("init", "logmode", "--root-dir", env["WORK_DIR"], "--app", "server", "--no-password")
    assert made.returncode == 0, made.stderr
    try:
        installed = cli("systemd", "install", "logmode", "--now")
        assert installed.returncode == 0, installed.stderr
        log = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "logs" / "unit-logmode.log"
        assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, oct(log.stat().st_mode)
    finally:
        cli("systemd", "uninstall", "logmode")


def test_audit_finds_a_planted_secret(tmp_path: Path) -> None:
    """The scanner itself: a secret in an unexpected file, argv or environment is reported."""
    secret = fresh_password()
    (tmp_path / "leak.txt").write_text(f"x {secret} y")
    audit = Audit({"password": secret})
    audit.tree(tmp_path)
    # `read` is a builtin: sh never forks, so no half-started child shares its argv for an instant
    proc = subprocess.Popen(["sh", "-c", "read -r _", "sh", secret], env={"LEAK": secret}, stdin=subprocess.PIPE)
    try:
        wait_for(lambda: secret.encode() in Path(f"/proc/{proc.pid}/cmdline").read_bytes(), 10, "sh runs")
        audit.process(proc.pid)
        audit.all_cmdlines()
    finally:
        proc.kill()
        proc.communicate()
    assert len(audit.findings) == 4, audit.findings  # file, argv, environ, and argv again in the machine scan
