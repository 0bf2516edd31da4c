"""The --json protocol against the real things: a launcher in the ssh lab, jobs on a real Slurm, a unit under a real
`systemd --user`, and the laptop's side (`jupyter hop connect` to come), which runs the command over ssh and opens
the tunnel and logs in from the object alone."""

from __future__ import annotations

import json
import select
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from labkit import http_login
from labkit.launch import hop, init_profile
from labkit.slurmlab import SlurmLab
from labkit.sshlab import LOGIN, SshLab, free_port, stop_process
from labkit.sshslurm import SshSlurm
from labkit.systemdlab import UserManager, ok
from labkit.systemdlab import hop as unit_hop
from labkit.user import TestUser

from jupyter_hop import protocol

pytestmark = pytest.mark.lab

PASSWORD = "pw-s3cret"  # what labkit.launch.init_profile sets
SCHEMA = protocol.schema()
OBJECT = jsonschema.Draft202012Validator(SCHEMA)
EVENT = jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/event"})


def the_object(stdout: str) -> dict[str, Any]:
    """stdout is exactly one line, one object, and it validates."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1, repr(stdout)
    obj: dict[str, Any] = json.loads(stdout)
    OBJECT.validate(obj)
    assert "token" not in obj  # never without --show-token
    return obj


def events(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line of a successful `submit --json` is a JSON event of the schema."""
    found = []
    for line in stderr.splitlines():
        event = json.loads(line)
        EVENT.validate(event)
        found.append(event)
    return found


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line the process prints, with a deadline (it keeps running after it)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, min(0.5, deadline - time.monotonic())))
        if ready:
            return process.stdout.readline()
        assert process.poll() is None, f"exited {process.returncode} before it printed"
        assert time.monotonic() < deadline, f"nothing printed within {timeout} s"


def tunnel_and_login(lab: SshLab, obj: dict[str, Any]) -> None:
    """The object's tunnel argv run on the laptop as given; the password logs in through the object's URL."""
    tunnel = obj["tunnel"]
    with lab.tunnel(shlex.join(tunnel["argv"]), tunnel["local_port"]):  # shlex.split gives the argv back
        assert http_login.login(obj["url"], PASSWORD) == 200
        assert http_login.wrong_password_status(obj["url"], "not-the-password") == 401


# --------------------------------------------------------------------------- run --json: a launcher on login


def test_run_json_with_a_real_server(ssh_lab: SshLab, user_home: dict[str, str]) -> None:
    """`run --json` prints its object once the server answers and keeps serving; tunnel and URL reach it."""
    init_profile(ssh_lab.user, user_home, "lj", "--app", "server", "--local-port", str(free_port()),
                 "--login-host", "login", password=PASSWORD)
    launcher = ssh_lab.popen_in(LOGIN, ["jupyter-hop", "run", "lj", "--json"], user_home,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = read_line(launcher, 60)
        obj = the_object(line)
        assert (obj["state"], obj["kind"], obj["host"], obj["auth"]) == ("ready", "run", "login", "password")
        assert obj["tunnel"]["target"] == "hoptest@login" and obj["tunnel"]["jump"] is None
        tunnel_and_login(ssh_lab, obj)
        assert launcher.poll() is None  # still serving
        # the stop argv, run on the host where `run` ran, stops it cleanly
        done = ssh_lab.run_in(LOGIN, obj["stop"], user_home)
        assert done.returncode == 0, done.stderr
        assert launcher.wait(timeout=30) == 0
        assert launcher.stdout is not None and launcher.stdout.read() == ""  # one object, nothing after it
    finally:
        stop_process(launcher)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- slurm submit --json on a real Slurm


@pytest.fixture
def slurm_env(user_home: dict[str, str], slurm_lab: SlurmLab) -> Iterator[dict[str, str]]:
    """The test user's environment for the loopback Slurm; every job noted in it is cancelled afterwards."""
    env = {**user_home, **slurm_lab.env()}
    yield env
    noted = Path(env["XDG_STATE_HOME"]).rglob("job-*.json")
    ids = sorted({p.name[4:].split("@")[0].removesuffix(".json") for p in noted})
    if ids:
        slurm_lab.run("scancel", *ids)
        deadline = time.monotonic() + 60
        while set(ids) & set(slurm_lab.queue()) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_submit_json_on_real_slurm(slurm_lab: SlurmLab, slurm_env: dict[str, str], test_user: TestUser) -> None:
    user = test_user
    init_profile(user, slurm_env, "sj", "--app", "server", password=PASSWORD)
    done = hop(user, slurm_env, "slurm", "submit", "sj", "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    obj = the_object(done.stdout)
    assert (obj["state"], obj["kind"], obj["profile"]) == ("ready", "job", "sj")
    assert obj["ends"] is not None and obj["ends_in"] > 0
    said = events(done.stderr)
    assert said[0] == {"schema": 1, "event": "submitted", "job_id": obj["job_id"], "log": obj["log"]}
    assert {e["event"] for e in said[1:]} <= {"progress"} and all(e["job_id"] == obj["job_id"] for e in said)
    assert len(said) >= 2, said  # at least the state it had when first asked
    # the job runs on this host: the tunnel's far end is where the server answers, and the password logs in
    assert http_login.login(f"http://{obj['tunnel']['remote']}/", PASSWORD) == 200
    stopped = user.run(obj["stop"], slurm_env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert obj["job_id"] not in slurm_lab.queue()


def test_submit_no_wait_json_then_its_instructions(slurm_env: dict[str, str], test_user: TestUser) -> None:
    """--no-wait gives state submitted; its `instructions` argv waits and gives the ready object."""
    user = test_user
    init_profile(user, slurm_env, "nw", "--app", "server", password=None)
    done = hop(user, slurm_env, "slurm", "submit", "nw", "--no-wait", "--json")
    assert done.returncode == 0, done.stderr
    obj = the_object(done.stdout)
    assert (obj["state"], obj["host"], obj["tunnel"], obj["auth"]) == ("submitted", None, None, None)
    assert done.stderr == ""
    again = user.run(obj["instructions"], slurm_env, timeout=180)
    assert again.returncode == 0, again.stderr
    ready = the_object(again.stdout)
    assert (ready["state"], ready["job_id"], ready["auth"]) == ("ready", obj["job_id"], "token")
    events(again.stderr)  # waiting reports JSON lines too
    record = json.loads(next((Path(slurm_env["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob(
        f"job-{obj['job_id']}@*.json")).read_text())
    assert record["token"] not in again.stdout
    shown = user.run([*ready["instructions"], "--show-token"], slurm_env)
    assert shown.returncode == 0, shown.stderr
    with_token = json.loads(shown.stdout)
    OBJECT.validate(with_token)
    assert with_token["token"] == record["token"] and with_token["url"].endswith(f"?token={record['token']}")
    stopped = user.run(obj["stop"], slurm_env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr


# --------------------------------------------------------------------------- systemd start --json


def test_systemd_start_json(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    env, name = unit_env, "uj"
    ok(unit_hop(user_manager, env, "init", name, "--root-dir", env["WORK_DIR"], "--app", "server",
                "--password-stdin", stdin=PASSWORD + "\n"))
    installed = unit_hop(user_manager, env, "systemd", "install", name, "--now", "--json")
    obj = the_object(ok(installed))
    assert "Installed and enabled" in installed.stderr  # for people, off stdout
    assert (obj["state"], obj["kind"], obj["unit"], obj["auth"]) == ("ready", "unit", f"jupyter-hop-{name}.service",
                                                                     "password")
    for verb in ("start", "restart"):
        again = the_object(ok(unit_hop(user_manager, env, "systemd", verb, name, "--json")))
        assert (again["kind"], again["unit"]) == ("unit", obj["unit"])
    assert http_login.login(f"http://{again['tunnel']['remote']}/", PASSWORD) == 200
    assert again["stop"] == ["jupyter", "hop", "stop", name]  # the manager's PATH leads to this jupyter-hop
    ok(user_manager.run(again["stop"], env))
    ok(unit_hop(user_manager, env, "systemd", "uninstall", name))


# --------------------------------------------------------------------------- the laptop's side, over ssh


def remote(env: dict[str, str], conf: Path, *argv: str) -> str:
    """The remote command as a laptop sends it over ssh: the lab's per-test dirs and Slurm config as variables
    (a real login shell has them already), and jupyter-hop by its path (the login shell's PATH has no venv)."""
    variables = [f"{k}={env[k]}" for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME")] + [f"SLURM_CONF={conf}"]
    return shlex.join(["env", *variables, *argv])


def test_consumer_submits_over_ssh_and_connects_from_the_object(
    ssh_lab: SshLab, ssh_slurm: SshSlurm, user_home: dict[str, str]
) -> None:
    """`ssh login jupyter-hop slurm submit PROFILE --json` from the laptop; then only the object: its tunnel argv
    run on the laptop, its URL logged in to, its stop argv run over ssh on login."""
    init_profile(ssh_lab.user, user_home, "cj", "--app", "server", "--local-port", str(free_port()),
                 password=PASSWORD)
    hop_path = str(ssh_lab.user.venv_bin / "jupyter-hop")
    done = ssh_lab.run_laptop(["ssh", "login", remote(user_home, ssh_slurm.conf, hop_path, "slurm", "submit", "cj",
                                                      "--json")], timeout=240)
    job_id = ""
    try:
        assert done.returncode == 0, done.stderr
        obj = the_object(done.stdout)
        job_id = obj["job_id"]
        events(done.stderr)
        assert (obj["kind"], obj["host"]) == ("job", "compute")
        assert obj["tunnel"]["jump"] == "hoptest@login" and obj["tunnel"]["target"] == "hoptest@compute"
        # the login shell's PATH does not lead to this jupyter-hop: the stop argv names it by its path
        assert obj["stop"] == [hop_path, "stop", job_id]
        tunnel_and_login(ssh_lab, obj)
        stopped = ssh_lab.run_laptop(["ssh", "login", remote(user_home, ssh_slurm.conf, *obj["stop"])], timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert ssh_slurm.job_state(job_id) not in ("PENDING", "RUNNING")
    finally:
        if job_id and ssh_slurm.job_state(job_id) in ("PENDING", "RUNNING"):
            ssh_slurm.cancel(job_id)
