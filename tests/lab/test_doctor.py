"""`doctor` as the test user: each broken condition a test sets up is reported with its fix; a good setup passes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from labkit.launch import hop, init_profile, start_launcher
from labkit.slurmlab import SlurmLab
from labkit.user import TestUser

pytestmark = pytest.mark.lab


def doctor(user: TestUser, env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    """Exit code and the checks by name, from --json; the text form must say the same, one line per check."""
    result = hop(user, env, "doctor", *args, "--json")
    assert result.stdout, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] == (result.returncode == 0), result.stderr
    checks = {c["name"]: c for c in data["checks"]}
    text = hop(user, env, "doctor", *args)
    assert text.returncode == result.returncode
    lines = text.stdout.splitlines()
    assert len(lines) == len(data["checks"]) + 1
    for line, check in zip(lines, data["checks"], strict=False):
        assert line.startswith(f"{check['status'].upper():<4}  {check['name']}: {check['message']}")
    return result.returncode, checks


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}


def server_dir(env: dict[str, str], name: str) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "servers" / name


def run_fix(user: TestUser, env: dict[str, str], fix: str) -> None:
    result = user.run(["bash", "-c", fix], env)
    assert result.returncode == 0, result.stderr


def test_good_setup_without_systemd_or_slurm_passes(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    code, checks = doctor(test_user, user_home, "p")
    assert code == 0
    assert statuses(checks) == {
        "profile": "ok", "jupyter": "ok", "files": "ok", "password": "ok", "login-host": "info", "port": "ok",
        "local-port": checks["local-port"]["status"], "systemd": "skip", "slurm": "skip", "records": "ok",
    }
    # Outside the lab's namespace this machine does not run systemd; without SLURM_CONF Slurm is not configured.
    assert "does not run systemd" in checks["systemd"]["message"]
    assert "not configured" in checks["slurm"]["message"]
    # With a login host set, that line is OK too.
    assert hop(test_user, user_home, "init", "p", "--login-host", "login1").returncode == 0
    assert doctor(test_user, user_home, "p")[1]["login-host"]["status"] == "ok"


def test_bad_file_and_dir_modes_fail_with_a_fix_that_works(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    config = server_dir(user_home, "p") / "jupyter_server_config.py"
    config.chmod(0o644)
    code, checks = doctor(test_user, user_home, "p")
    assert code == 1 and checks["files"]["status"] == "fail"
    assert checks["files"]["message"] == f"{config} is 0644, should be 0600"
    assert checks["files"]["fix"] == f"chmod 600 {config}"
    run_fix(test_user, user_home, checks["files"]["fix"])
    assert doctor(test_user, user_home, "p")[0] == 0

    server_dir(user_home, "p").chmod(0o755)
    (server_dir(user_home, "p") / "password").chmod(0o640)
    code, checks = doctor(test_user, user_home, "p")
    assert code == 1
    assert checks["files"]["message"] == f"{server_dir(user_home, 'p')} is 0755, should be 0700 (and 1 more)"
    run_fix(test_user, user_home, checks["files"]["fix"])
    assert doctor(test_user, user_home, "p")[0] == 0


def test_missing_password(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "tok", "--app", "server", password=None)
    code, checks = doctor(test_user, user_home, "tok")
    # Token mode is a choice: noted, not a failure.
    assert code == 0 and checks["password"]["status"] == "warn"
    assert "token mode" in checks["password"]["message"] and checks["password"]["fix"] == "jupyter hop password tok"

    init_profile(test_user, user_home, "wide", "--app", "server", "--bind", "node")
    (server_dir(user_home, "wide") / "password").unlink()
    code, checks = doctor(test_user, user_home, "wide")
    assert code == 1 and checks["password"]["status"] == "fail"
    assert "server.bind = 'node' needs one" in checks["password"]["message"]

    (server_dir(user_home, "wide") / "password").write_text("not-a-hash\n")
    code, checks = doctor(test_user, user_home, "wide")
    assert code == 1 and "does not hold an argon2 hash" in checks["password"]["message"]


def test_app_not_installed_and_unknown_profile(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "nb", "--app", "notebook")
    code, checks = doctor(test_user, user_home, "nb")
    assert code == 1 and checks["jupyter"]["status"] == "fail"
    assert checks["jupyter"]["message"].startswith("notebook not importable by ")
    assert checks["jupyter"]["fix"].endswith(" -m pip install notebook")

    code, checks = doctor(test_user, user_home, "nope")
    assert code == 1 and checks["profile"]["status"] == "fail"
    assert checks["profile"]["fix"] == "jupyter hop init nope"


def test_fixed_port_in_use_and_stale_record(test_user: TestUser, user_home: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        init_profile(test_user, user_home, "p", "--app", "server", "--port", str(port))
        code, checks = doctor(test_user, user_home, "p")
    assert code == 1 and checks["port"]["status"] == "fail"
    assert checks["port"]["message"] == f"server.port = {port} is in use on this host"

    init_profile(test_user, user_home, "q", "--app", "server")
    launcher = start_launcher(test_user, user_home, "q")
    try:
        launcher.wait_ready()
        os.kill(launcher.process.pid, signal.SIGKILL)
        launcher.wait()
        code, checks = doctor(test_user, user_home, "q")
        assert code == 0 and checks["records"]["status"] == "warn"
        assert f"-{launcher.process.pid}" in checks["records"]["message"]
        assert checks["records"]["fix"] == "jupyter hop list (shows and removes them)"
        assert hop(test_user, user_home, "list").returncode == 0
        assert doctor(test_user, user_home, "q")[1]["records"]["status"] == "ok"
    finally:
        launcher.stop()


def path_without(tmp: Path, *missing: str) -> str:
    """A PATH with everything of /usr/bin and /usr/sbin except `missing` (/bin is /usr/bin on Debian)."""
    for source in (Path("/usr/bin"), Path("/usr/sbin")):
        for entry in source.iterdir():
            if entry.name not in missing and not (tmp / entry.name).exists():
                (tmp / entry.name).symlink_to(entry)
    return str(tmp)


def test_slurm_checks(test_user: TestUser, user_home: dict[str, str], slurm_lab: SlurmLab, tmp_path: Path) -> None:
    env = {**user_home, **slurm_lab.env()}
    init_profile(test_user, env, "p", "--app", "server")
    code, checks = doctor(test_user, env, "p")
    assert code == 0 and checks["slurm"]["status"] == "ok"

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tmp_path.chmod(0o755)
    no_sbatch = {**env, "PATH": f"{test_user.venv_bin}:{path_without(bin_dir, 'sbatch')}"}
    code, checks = doctor(test_user, no_sbatch, "p")
    assert code == 1 and checks["slurm"]["status"] == "fail"
    assert checks["slurm"]["message"].startswith("sbatch not on PATH")
    # --no-slurm: a machine where jobs are not wanted.
    code, checks = doctor(test_user, no_sbatch, "p", "--no-slurm")
    assert code == 0 and checks["slurm"]["status"] == "skip"


def test_forced_systemd_without_a_manager_fails(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    code, checks = doctor(test_user, user_home, "p", "--systemd")
    assert code == 1 and checks["systemd"]["status"] == "fail"
    assert checks["linger"]["status"] == "fail"


def test_doctor_does_not_import_jupyter_server(user_home: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from jupyter_hop import doctor, paths\n"
        "doctor.diagnose(paths.Paths.from_env(), 'x')\n"
        "assert 'jupyter_server' not in sys.modules and 'jupyterlab' not in sys.modules\n"
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_STATE_HOME": str(tmp_path / "s")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
