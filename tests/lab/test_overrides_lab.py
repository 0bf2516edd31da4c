"""One-off overrides on the real things: a Slurm job gets exactly the limits typed, a server listens on the port
typed, a unit installed with them runs them; the profile file changes only with --save, and then only there."""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path

import pytest
from labkit.http_login import login
from labkit.launch import hop, init_profile, port_open, start_launcher
from labkit.slurmlab import CLUSTER, SlurmLab
from labkit.slurmlab import slurm_jobs as jobs  # noqa: F401 (fixtures, under the names these tests use)
from labkit.slurmlab import slurm_user_env as env  # noqa: F401
from labkit.systemdlab import UserManager, ok
from labkit.systemdlab import hop as unit_hop
from labkit.user import TestUser

from jupyter_hop.slurm import tools

pytestmark = pytest.mark.lab
PASSWORD = "pw-s3cret over"




def profile_file(env: dict[str, str], name: str) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"


def submitted_id(stderr: str) -> str:
    assert "Submitted Slurm job" in stderr, stderr
    return stderr.split("Submitted Slurm job", 1)[1].split(";")[0].split(".")[0].strip()


def limits(lab: SlurmLab, job_id: str) -> dict[str, str]:
    fields = tools.parse_scontrol(lab.run("scontrol", "show", "job", "-o", job_id).stdout)
    return {k: fields.get(k, "") for k in ("TimeLimit", "NumCPUs", "MinCPUsNode", "MinMemoryNode")}


def test_submit_runs_with_exactly_the_overrides(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab,
                                                jobs: list[str]) -> None:
    init_profile(test_user, env, "ov", "--app", "server", password=PASSWORD)
    before = profile_file(env, "ov").read_bytes()
    result = hop(test_user, env, "slurm", "submit", "ov", "--time", "00:05:00", "--cpus", "1", "--mem", "100M",
                 timeout=120)
    job_id = submitted_id(result.stderr)
    jobs.append(job_id)
    assert result.returncode == 0, result.stderr
    assert f"(Slurm job {job_id}, ends " in result.stdout
    assert limits(slurm_lab, job_id) == {"TimeLimit": "00:05:00", "NumCPUs": "1", "MinCPUsNode": "1",
                                         "MinMemoryNode": "100M"}
    # the job really runs the server, and the profile file is byte for byte what it was
    port = int(result.stdout.split("127.0.0.1:8888:127.0.0.1:", 1)[1].split()[0])
    assert login(f"http://127.0.0.1:{port}/", PASSWORD) == 200
    assert profile_file(env, "ov").read_bytes() == before
    script = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "jobs" / "ov.sbatch"
    assert "#SBATCH --time=00:05:00\n" in script.read_text() and "#SBATCH --mem=100M\n" in script.read_text()
    cancelled = hop(test_user, env, "slurm", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert not (Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records" / f"job-{job_id}@{CLUSTER}.json").exists()


def test_submit_save_changes_only_those_keys(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab,
                                             jobs: list[str]) -> None:
    init_profile(test_user, env, "kept", "--app", "server", password=PASSWORD)
    path = profile_file(env, "kept")
    before = path.read_text()
    result = hop(test_user, env, "slurm", "submit", "kept", "--no-wait", "--time", "00:05:00", "--mem", "100M",
                 "--save")
    job_id = submitted_id(result.stdout + result.stderr)
    jobs.append(job_id)
    assert result.returncode == 0, result.stderr
    assert limits(slurm_lab, job_id)["TimeLimit"] == "00:05:00"
    after = path.read_text()
    diff = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]
    assert diff == [
        '- time = "04:00:00" # MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS',
        '+ time = "00:05:00" # MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS',
        '- mem = "" # such as 16G; empty: the cluster\'s default',
        '+ mem = "100M" # such as 16G; empty: the cluster\'s default',
    ], "\n".join(diff)
    # the next plain submit gets the saved values from the file
    rendered = hop(test_user, env, "slurm", "render", "kept")
    assert "#SBATCH --time=00:05:00\n" in rendered.stdout and "#SBATCH --mem=100M\n" in rendered.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_listens_on_the_port_typed(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server", "--port", str(free_port()), password=PASSWORD)
    path = profile_file(user_home, "p")
    config = Path(user_home["XDG_CONFIG_HOME"]) / "jupyter-hop" / "servers" / "p" / "jupyter_server_config.py"
    before = path.read_bytes(), config.read_bytes()
    port = free_port()
    launcher = start_launcher(test_user, user_home, "p", args=("--port", str(port), "--idle-timeout", "3600"))
    try:
        text = launcher.wait_ready()
        assert f"127.0.0.1:8888:127.0.0.1:{port} " in text
        assert port_open("127.0.0.1", port)
        assert login(f"http://127.0.0.1:{port}/", PASSWORD) == 200
        # the profile and its own server config stay as they were: the override's config is the launch's own
        assert (path.read_bytes(), config.read_bytes()) == before
    finally:
        launcher.stop()
    assert not port_open("127.0.0.1", port)


def test_run_port_taken_names_the_option(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "q", "--app", "server", password=PASSWORD)
    with socket.socket() as squat:
        squat.bind(("127.0.0.1", 0))
        squat.listen()
        port = squat.getsockname()[1]
        result = hop(test_user, user_home, "run", "q", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"jupyter-hop: error: --port = {port} is already in use on 127.0.0.1; "
                                     "choose another or 0 (automatic)")


def test_unit_installed_with_a_port(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    env, name = unit_env, "ovunit"
    root = Path(env["WORK_DIR"])
    ok(unit_hop(user_manager, env, "init", name, "--root-dir", str(root), "--app", "server", "--password-stdin",
                stdin=PASSWORD + "\n"))
    before = profile_file(env, name).read_bytes()
    port = free_port()
    started = ok(unit_hop(user_manager, env, "systemd", "install", name, "--port", str(port), "--now"))
    assert f"127.0.0.1:8888:127.0.0.1:{port} " in started
    assert port_open("127.0.0.1", port) and login(f"http://127.0.0.1:{port}/", PASSWORD) == 200
    unit = user_manager.unit_dir / f"jupyter-hop-{name}.service"
    assert f'run "{name}" "--port" "{port}"\n' in unit.read_text()
    verify = user_manager.run(["systemd-analyze", "--user", "verify", str(unit)])
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    assert profile_file(env, name).read_bytes() == before

    # start and restart run the unit as installed: no warning that it is stale, and the same port
    restarted = unit_hop(user_manager, env, "systemd", "restart", name)
    assert ok(restarted) and restarted.stderr == "", restarted.stderr
    assert f"127.0.0.1:8888:127.0.0.1:{port} " in restarted.stdout
    again = unit_hop(user_manager, env, "systemd", "install", name, "--port", str(port))
    assert "Already installed" in ok(again)

    # installing without the override would drop it: asked for --force, unit unchanged
    text = unit.read_text()
    plain = unit_hop(user_manager, env, "systemd", "install", name)
    assert plain.returncode == 1 and "--force" in plain.stderr, plain.stderr
    assert unit.read_text() == text

    # a changed profile makes it stale, and the advice reinstalls with the same override
    other = root / "other"
    other.mkdir()
    os.chown(other, user_manager.user.uid, user_manager.user.gid)
    ok(unit_hop(user_manager, env, "init", name, "--root-dir", str(other)))
    stale = unit_hop(user_manager, env, "systemd", "restart", name)
    assert f"`jupyter hop systemd install {name} --port {port} --force` updates it" in stale.stderr, stale.stderr
    ok(unit_hop(user_manager, env, "systemd", "uninstall", name))
