"""A real `systemd --user` manager for the test user, on a machine whose PID 1 is not systemd."""

# Recipe (shared notes): cgroup dirs for user@UID.service owned by the user, a private mount namespace with a
# tmpfs on /run/systemd holding /run/systemd/system (systemd's "booted with systemd" marker), then
# `systemd --user` as the user. Commands run inside that mount namespace (nsenter): outside it systemctl sees
# no /run/systemd/system, believes it is offline and edits unit files itself (`enable` then fails).

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labkit.sshslurm import daemon_prefix
from labkit.user import LabError, TestUser, lab_lock

SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOT = Path("/sys/fs/cgroup")
START_TIMEOUT = 15.0
MANAGER_LOCK = Path("/run/jupyter-hop-lab-systemd.lock")


def cgroup_hierarchies() -> list[Path]:
    """Where a user manager's cgroup must exist on this machine: unified (v2), hybrid (v2 + name=systemd v1)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    found = [CGROUP_ROOT / sub for sub in ("unified", "systemd") if (CGROUP_ROOT / sub / "cgroup.procs").exists()]
    if not found:
        raise LabError(f"no cgroup hierarchy systemd can use under {CGROUP_ROOT}")
    return found


@dataclass
class UserManager:
    user: TestUser
    process: subprocess.Popen[bytes]
    runtime_dir: Path
    log: Path
    created_dirs: list[Path] = field(default_factory=list)
    netns: str | None = None  # the ssh lab node it runs in (its network and hostname too), None: the root's

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def unit_dir(self) -> Path:
        return self.user.home / ".config" / "systemd" / "user"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime_dir}/bus",
        }
        env.update(extra or {})
        return env

    def argv(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        node = ["--uts", "--net"] if self.netns else []
        return ["nsenter", f"--target={self.pid}", "--mount", *node, *self.user.argv(args, self.env(env))]

    def run(self, args: Sequence[str], env: Mapping[str, str] | None = None,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 180)
        kwargs.setdefault("cwd", str(self.user.home))
        return subprocess.run(self.argv(args, env), **kwargs)  # type: ignore[call-overload]

    def systemctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", *args], timeout=timeout)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            return False
        try:
            return self.systemctl("show-environment", timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def _user_systemctl(user: TestUser, runtime_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """systemctl --user from the root mount namespace: enough to talk to (or stop) a leftover manager."""
    return user.run(["systemctl", "--user", *args], {"XDG_RUNTIME_DIR": str(runtime_dir)}, timeout=20)


def _stop_leftover(user: TestUser, runtime_dir: Path) -> None:
    """A manager left by an earlier, killed run: ask it to exit, as `systemctl --user exit` does at logout."""
    if not (runtime_dir / "systemd" / "private").exists():
        return
    if _user_systemctl(user, runtime_dir, "show-environment").returncode != 0:
        return
    _user_systemctl(user, runtime_dir, "exit")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _user_systemctl(user, runtime_dir, "show-environment").returncode != 0:
            return
        time.sleep(0.05)
    raise LabError(f"a leftover user manager for {user.name} did not exit")


def _make_cgroups(user: TestUser, created: list[Path]) -> list[Path]:
    """user.slice/user-UID.slice/user@UID.service in each hierarchy, owned by the user; returns cgroup.procs files."""
    procs = []
    for hierarchy in cgroup_hierarchies():
        path = hierarchy
        for part in ("user.slice", f"user-{user.uid}.slice", f"user@{user.uid}.service"):
            path = path / part
            if not path.exists():
                path.mkdir()
                created.append(path)
        service = path
        # The manager creates its own sub-cgroups (app.slice, one per unit) in here.
        for entry in [service, *service.iterdir()]:
            os.chown(entry, user.uid, user.gid)
        procs.append(service / "cgroup.procs")
    return procs


def _remove_cgroups(created: list[Path]) -> None:
    """Remove the cgroup dirs this session made, with whatever empty children the manager left in them."""
    for top in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if not top.exists():
            continue
        for root, dirs, _ in sorted(os.walk(top, topdown=False), key=lambda t: -len(Path(t[0]).parts)):
            del dirs
            with contextlib.suppress(OSError):
                os.rmdir(root)


def start_manager(user: TestUser, netns: str | None = None) -> UserManager:
    """The manager, in the root namespaces or (netns) inside one of the ssh lab's nodes: that node's network,
    hostname and /etc/hosts, as `ip netns exec` gives its sshd, so its units serve where its ssh sessions are."""
    if not Path(SYSTEMD).exists():
        raise LabError(f"{SYSTEMD} is missing: apt-get install systemd")
    runtime_dir = Path(f"/run/user/{user.uid}")
    created: list[Path] = []
    if not runtime_dir.exists():
        runtime_dir.parent.mkdir(mode=0o755, exist_ok=True)
        runtime_dir.mkdir(mode=0o700)
        os.chown(runtime_dir, user.uid, user.gid)
        created.append(runtime_dir)
    _stop_leftover(user, runtime_dir)
    cgroup_dirs: list[Path] = []
    procs = _make_cgroups(user, cgroup_dirs)

    def enter_cgroups() -> None:
        for path in procs:
            path.write_text(str(os.getpid()))

    # As on a booted machine: /run/systemd is root's 0755, and PID 1 has made unit-root (0700), the mount
    # point systemd uses to build a unit's namespace (PrivateTmp=); the user manager cannot create it itself.
    inner = ("mount -t tmpfs -o mode=0755 tmpfs /run/systemd && mkdir /run/systemd/system "
             "&& mkdir -m 0700 /run/systemd/unit-root && exec \"$@\"")
    # in a node: as slurmd is started there (not `ip netns exec`, which hides the cgroup tree the manager needs)
    enter = ["unshare", "--mount", "--propagation", "private"] if netns is None else daemon_prefix(netns)
    manager_env = [f"XDG_RUNTIME_DIR={runtime_dir}", f"DBUS_SESSION_BUS_ADDRESS=unix:path={runtime_dir}/bus"]
    argv = [
        *enter, "sh", "-c", inner, "sh",
        "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--reset-env",
        "env", *manager_env, SYSTEMD, "--user",
    ]
    log = Path(tempfile.mkdtemp(prefix="systemd-user-")) / "manager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   preexec_fn=enter_cgroups, start_new_session=True, cwd="/")
    manager = UserManager(user, process, runtime_dir, log, created + cgroup_dirs, netns)
    deadline = time.monotonic() + START_TIMEOUT
    while not manager.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_manager(manager)
            raise LabError(f"systemd --user did not come up: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    return manager


def stop_manager(manager: UserManager) -> None:
    if manager.process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            manager.systemctl("exit", timeout=20)
        try:
            manager.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            manager.process.kill()
            manager.process.wait()
    cgroups = [p for p in manager.created_dirs if p.is_relative_to(CGROUP_ROOT)]
    deadline = time.monotonic() + 10
    while any(p.exists() for p in cgroups) and time.monotonic() < deadline:
        _remove_cgroups(cgroups)  # a cgroup stays busy for a moment after its last process exits
        if any(p.exists() for p in cgroups):
            time.sleep(0.05)
    for path in manager.created_dirs:
        if not path.is_relative_to(CGROUP_ROOT):
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(manager.log.parent, ignore_errors=True)


@contextlib.contextmanager
def exclusive(timeout: float = 900) -> Iterator[None]:
    """One user manager for the test user at a time, across test runs: a second run waits for the first."""
    fd = os.open(MANAGER_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"another test run has held {MANAGER_LOCK} for {timeout:.0f} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


# Module scope: the manager (and the lock that keeps other test runs from replacing it) is held only while
# the tests that use it run.
@pytest.fixture(scope="module")
def user_manager(test_user: TestUser) -> Iterator[UserManager]:
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive())
            with lab_lock():
                manager = start_manager(test_user)
        except (LabError, OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"cannot start systemd --user for {test_user.name}: {exc}")
        try:
            yield manager
        finally:
            stop_manager(manager)


@pytest.fixture
def unit_env(test_user: TestUser, user_manager: UserManager) -> Iterator[dict[str, str]]:
    """XDG dirs for one test inside the test user's real home (a unit has its own /tmp, so pytest's tmp
    dirs are invisible to it), plus the manager's XDG_RUNTIME_DIR; the test's units are removed afterwards."""
    base = test_user.home / f".hop-systemd-test-{uuid.uuid4().hex[:8]}"
    base.mkdir(mode=0o755)
    os.chown(base, test_user.uid, test_user.gid)
    for sub in ("config", "state", "work"):
        (base / sub).mkdir()
        os.chown(base / sub, test_user.uid, test_user.gid)
    before = set(user_manager.unit_dir.glob("jupyter-hop-*.service")) if user_manager.unit_dir.exists() else set()
    env = user_manager.env({
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_STATE_HOME": str(base / "state"),
        "WORK_DIR": str(base / "work"),
    })
    try:
        yield env
    finally:
        after = set(user_manager.unit_dir.glob("jupyter-hop-*.service")) if user_manager.unit_dir.exists() else set()
        for path in after - before:
            user_manager.systemctl("disable", "--now", path.name, timeout=90)
            path.unlink(missing_ok=True)
            user_manager.systemctl("reset-failed", path.name)
        user_manager.systemctl("daemon-reload")
        shutil.rmtree(base, ignore_errors=True)


def hop(manager: UserManager, env: dict[str, str], *args: str, stdin: str | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """jupyter-hop as the test user inside the user manager's mount namespace (where systemctl --user works)."""
    return manager.run(["jupyter-hop", *args], env, input=stdin, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout
