"""Secrets audit: after real runs, the password is nowhere in clear and the token only where the design allows.

Scanned while the server runs and again after it stopped: every file under the test user's XDG config and
state dirs, the launch's runtime dir, the node-local runtime base and the user's home; the command line and
environment of the launcher, the server and their children (a kernel is started so there is one), every
command line on the machine; and everything the launcher and the CLI printed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lab.http_login import Session, login
from lab.launch import Launcher, hop, init_profile, start_launcher
from lab.user import TestUser

pytestmark = pytest.mark.lab

MAX_FILE = 20 << 20  # larger files are not jupyter-hop's or Jupyter's small state files


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


def cli_outputs(user: TestUser, env: dict[str, str], audit: Audit, key: str, profile: str) -> None:
    """What the CLI prints about the running server, not on a terminal (as in a job log or a pipe)."""
    for args in (["instructions", key], ["instructions", key, "--ssh-config"], ["list"], ["list", "--json"],
                 ["config", profile], ["config", profile, "--json"]):
        result = hop(user, env, *args)
        assert result.returncode == 0, (args, result.stderr)
        audit.text(f"`jupyter-hop {' '.join(args)}` stdout", result.stdout)
        audit.text(f"`jupyter-hop {' '.join(args)}` stderr", result.stderr)


def scan_running(user: TestUser, env: dict[str, str], launcher: Launcher, audit: Audit) -> Path:
    """Everything while the server and a kernel run; returns the launch's runtime dir."""
    record_path, record = only_record(env)
    server_pid = int(record["server_pid"])  # type: ignore[call-overload]
    assert record["pid"] == launcher.process.pid
    kernel = kernel_pid(server_pid)
    runtime = Path(environ_of(server_pid)["JUPYTER_RUNTIME_DIR"])
    problems = []
    for directory in hop_dirs(env):
        problems += mode_problems(directory)
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
    for directory in [*hop_dirs(env), runtime.parent, user.home]:
        audit.tree(directory)
    for pid in [launcher.process.pid, *descendants(launcher.process.pid)]:
        audit.process(pid)
    assert {launcher.process.pid, server_pid, kernel} <= audit.processes
    audit.all_cmdlines()
    cli_outputs(user, env, audit, f"{record['host']}-{record['pid']}", str(record["profile"]))
    return runtime


def stop_and_scan(user: TestUser, env: dict[str, str], launcher: Launcher, runtime: Path, audit: Audit) -> None:
    launcher.signal(signal.SIGTERM)
    assert launcher.wait() == 0
    assert not runtime.exists()
    audit.allowed = {}  # the record and the runtime dir are gone: the token may be nowhere now
    for directory in [*hop_dirs(env), runtime.parent, user.home]:
        audit.tree(directory)
    audit.text("the launcher's stdout (not a terminal)", launcher.out)
    audit.text("the launcher's stderr (the server log)", launcher.err)
    audit.check()


def test_workstation_password_run(test_user: TestUser, user_home: dict[str, str]) -> None:
    password = fresh_password()
    init_profile(test_user, user_home, "audit", "--app", "lab", password=password)
    audit = Audit({"password": password})
    launcher = start_launcher(test_user, user_home, "audit")
    try:
        launcher.wait_ready(timeout=120)
        _, record = only_record(user_home)
        base = f"http://127.0.0.1:{record['port']}{record['base_url']}"
        assert login(base, password) == 200
        session = Session(base)
        assert session.post_login(password) == 302
        xsrf = session.cookies["_xsrf"]
        status, _, _ = session.request("POST", "api/kernels", '{"name": "python3"}',
                                       {"X-XSRFToken": xsrf, "Content-Type": "application/json"})
        assert status == 201
        runtime = scan_running(test_user, user_home, launcher, audit)
        stop_and_scan(test_user, user_home, launcher, runtime, audit)
    finally:
        launcher.stop()
    print(f"\npassword run audited: {audit.summary()}")


def test_workstation_token_run(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "audit", "--app", "lab", password=None)
    launcher = start_launcher(test_user, user_home, "audit")
    try:
        launcher.wait_ready(timeout=120)
        record_path, record = only_record(user_home)
        token = str(record["token"])
        assert len(token) >= 32
        audit = Audit({"token": token})
        request = urllib.request.Request(
            f"http://127.0.0.1:{record['port']}{record['base_url']}api/kernels", data=b'{"name": "python3"}',
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
        runtime = scan_running(test_user, user_home, launcher, audit)
        # The scanner does find the token where it is allowed: the record and the 0600 token file.
        assert {str(record_path), str(runtime / "token")} <= audit.seen["token"]
        stop_and_scan(test_user, user_home, launcher, runtime, audit)
    finally:
        launcher.stop()
    print(f"\ntoken run audited: {audit.summary()}; token seen in: {sorted(audit.seen['token'])}")


def test_audit_finds_a_planted_secret(tmp_path: Path) -> None:
    """The scanner itself: a secret in an unexpected file, argv or environment is reported."""
    secret = fresh_password()
    (tmp_path / "leak.txt").write_text(f"x {secret} y")
    audit = Audit({"password": secret})
    audit.tree(tmp_path)
    proc = subprocess.Popen(["sh", "-c", "sleep 30; :", "sh", secret], env={"LEAK": secret})
    try:
        wait_for(lambda: secret.encode() in Path(f"/proc/{proc.pid}/cmdline").read_bytes(), 10, "sh runs")
        audit.process(proc.pid)
        audit.all_cmdlines()
    finally:
        proc.kill()
        proc.wait()
    assert len(audit.findings) == 4, audit.findings  # file, argv, environ, and argv again in the machine scan
