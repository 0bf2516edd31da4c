"""The non-root test user that runs servers, units and jobs, as real users do."""

from __future__ import annotations

import fcntl
import os
import pwd
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "hoptest"
OTHER_USER = "hopother"  # the other user on the node, who plays the attacker
LOCK = Path("/run/jupyter-hop-lab.lock")


class LabError(RuntimeError):
    """The lab could not be set up: tests that need it fail (never skip)."""


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # a fixture's type, not a test class

    name: str
    uid: int
    gid: int
    home: Path
    venv_bin: Path  # the environment that has jupyter-hop and jupyter installed

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean login-like environment; tests add XDG_*/JUPYTER_HOP_* as they need."""
        env = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": f"{self.venv_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
        }
        env.update(extra or {})
        return env

    def argv(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        """argv that runs `args` as this user with exactly `env` (never root's environment)."""
        full = self.env(env)
        return [
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--reset-env",
            "env", "-i", *[f"{k}={v}" for k, v in full.items()], *args,
        ]

    def run(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 120)
        kwargs.setdefault("cwd", str(self.home))
        return subprocess.run(self.argv(args, env), **kwargs)  # type: ignore[call-overload]

    def popen(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[str]:
        kwargs.setdefault("text", True)
        kwargs.setdefault("cwd", str(self.home))
        return subprocess.Popen(self.argv(args, env), **kwargs)  # type: ignore[call-overload]


class lab_lock:
    """Serialises lab set-up across processes (two test runs at once must not race on useradd)."""

    def __enter__(self) -> None:
        self._fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def ensure_user(name: str = USER) -> TestUser:
    if os.getuid() != 0:
        raise LabError("the lab needs root (it creates users, namespaces and daemons); run the tests as root")
    with lab_lock():
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
            entry = pwd.getpwnam(name)
    venv_bin = Path(sys.executable).parent
    _check_readable(venv_bin, entry.pw_uid)
    return TestUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), venv_bin)


def _check_readable(venv_bin: Path, uid: int) -> None:
    """The test user must be able to run this environment, and so read every directory above it."""
    for directory in [venv_bin, *venv_bin.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o005 == 0o005 and directory.stat().st_uid != uid:
            raise LabError(
                f"{directory} is not readable by the test user: run the tests from a venv outside /root "
                "(tests/run.sh makes one in /opt/jupyter-hop-ci)"
            )


@pytest.fixture(scope="session")
def test_user() -> TestUser:
    try:
        return ensure_user()
    except LabError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def other_user() -> TestUser:
    """A second non-root user on the same machines: the other user of a shared node, who plays the attacker."""
    try:
        return ensure_user(OTHER_USER)
    except LabError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def user_home(test_user: TestUser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh XDG config/state area owned by the test user, so tests never share profiles or records."""
    base = Path(tmp_path_factory.mktemp("hop"))
    base.chmod(0o755)
    for sub in ("config", "state", "work"):
        (base / sub).mkdir()
        os.chown(base / sub, test_user.uid, test_user.gid)
    for parent in [base, *base.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    return {
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_STATE_HOME": str(base / "state"),
        "WORK_DIR": str(base / "work"),
    }
