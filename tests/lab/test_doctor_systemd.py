"""`doctor` inside a real systemd user manager's view of the machine: lingering, and a fully good setup."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit.launch import init_profile
from labkit.slurmlab import SlurmLab
from labkit.systemdlab import UserManager
from labkit.user import TestUser

pytestmark = pytest.mark.lab

LINGER_DIR = Path("/var/lib/systemd/linger")


def doctor(manager: UserManager, env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    result: subprocess.CompletedProcess[str] = manager.run(["jupyter-hop", "doctor", *args, "--json"], env,
                                                           timeout=120)
    assert result.stdout, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] == (result.returncode == 0)
    return result.returncode, {c["name"]: c for c in data["checks"]}


@pytest.fixture
def lingering(test_user: TestUser) -> Iterator[None]:
    """Lingering as logind records it (no logind runs here); only what this fixture created is removed."""
    made_dir = not LINGER_DIR.exists()
    LINGER_DIR.mkdir(parents=True, exist_ok=True)
    flag = LINGER_DIR / test_user.name
    made_flag = not flag.exists()
    flag.touch()
    try:
        yield
    finally:
        if made_flag:
            flag.unlink(missing_ok=True)
        if made_dir:
            LINGER_DIR.rmdir()


def test_no_linger_fails_with_the_command_to_fix_it(test_user: TestUser, user_manager: UserManager,
                                                   unit_env: dict[str, str]) -> None:
    if (LINGER_DIR / test_user.name).exists():
        pytest.fail(f"{LINGER_DIR / test_user.name} exists before the test: a leftover of another run")
    init_profile(test_user, unit_env, "p", "--app", "server")
    code, checks = doctor(user_manager, unit_env, "p", "--no-slurm")
    assert code == 1
    assert checks["systemd"]["status"] == "ok"
    assert checks["linger"]["status"] == "fail"
    assert checks["linger"]["message"].startswith("hoptest ")
    assert "units stop when you log out" in checks["linger"]["message"]
    assert checks["linger"]["fix"] == "loginctl enable-linger hoptest"


def test_good_setup_passes(test_user: TestUser, user_manager: UserManager, unit_env: dict[str, str],
                           slurm_lab: SlurmLab, lingering: None) -> None:
    env = {**unit_env, **slurm_lab.env()}
    init_profile(test_user, env, "p", "--app", "server", "--login-host", "login1")
    code, checks = doctor(user_manager, env, "p")
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items() if name != "local-port"} == {
        "profile": "ok", "jupyter": "ok", "files": "ok", "password": "ok", "login-host": "ok", "port": "ok",
        "systemd": "ok", "linger": "ok", "slurm": "ok", "records": "ok",
    }
