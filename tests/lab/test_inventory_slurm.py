"""`list` and `stop` with real Slurm jobs of the test user: a killed job launcher's record, an unreachable
controller, and `stop` of a job by its id."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from labkit.launch import hop, init_profile
from labkit.slurmlab import CLUSTER, SlurmLab
from labkit.user import TestUser

pytestmark = pytest.mark.lab


@pytest.fixture
def env(user_home: dict[str, str], slurm_lab: SlurmLab) -> dict[str, str]:
    return {**user_home, **slurm_lab.env()}


def records_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"


def submit(user: TestUser, env: dict[str, str], name: str, slurm_lab: SlurmLab) -> str:
    result = hop(user, env, "slurm", "submit", name, timeout=120)
    match = re.search(r"Submitted Slurm job (\d+)", result.stderr)
    assert result.returncode == 0 and match, result.stderr
    return match.group(1)


def wait_gone(lab: SlurmLab, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while job_id in lab.queue():
        assert time.monotonic() < deadline, f"job {job_id} still queued after {timeout} s"
        time.sleep(0.1)


def test_killed_job_launcher_leaves_a_stale_record_that_list_cleans(
    test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab
) -> None:
    init_profile(test_user, env, "nb", "--app", "server")
    job_id = submit(test_user, env, "nb", slurm_lab)
    try:
        path = records_dir(env) / f"job-{job_id}@{CLUSTER}.json"
        record = json.loads(path.read_text())
        # The launcher is the batch shell (exec): SIGKILL ends the job and nothing removes the record.
        os.kill(int(record["pid"]), signal.SIGKILL)
        wait_gone(slurm_lab, job_id)
        assert path.exists()
        result = hop(test_user, env, "list", "--json")
        assert result.returncode == 0, result.stderr
        [row] = json.loads(result.stdout)["servers"]
        assert (row["key"], row["kind"], row["state"], row["cleaned"]) == (job_id, "job", "stale", True)
        assert row["note"] == f"job {job_id} is no longer in the queue; record removed"
        assert not path.exists()
        assert json.loads(hop(test_user, env, "list", "--json").stdout)["servers"] == []
        # Its submission note went with it: `stop` no longer knows the job.
        stopped = hop(test_user, env, "stop", job_id)
        assert stopped.returncode == 1 and f"no server '{job_id}' is known" in stopped.stderr
    finally:
        slurm_lab.run("scancel", job_id)


def test_stop_a_job_by_id(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab) -> None:
    init_profile(test_user, env, "nb", "--app", "server")
    job_id = submit(test_user, env, "nb", slurm_lab)
    try:
        started = time.monotonic()
        result = hop(test_user, env, "stop", job_id)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Stopped Slurm job {job_id} (profile nb) in ")
        assert f"scancel {job_id}; the job ended (CANCELLED)" in result.stdout
        assert job_id not in slurm_lab.queue()
        assert not (records_dir(env) / f"job-{job_id}@{CLUSTER}.json").exists()
        print(f"\nstop of a ready Slurm job: {elapsed:.2f} s")
    finally:
        slurm_lab.run("scancel", job_id)


def test_unreachable_controller_is_a_warning_not_a_failure(
    test_user: TestUser, user_home: dict[str, str], slurm_lab: SlurmLab, tmp_path: Path
) -> None:
    # A configuration whose controller port nothing listens on.
    conf = tmp_path / "slurm.conf"
    conf.write_text(re.sub(r"SlurmctldPort=\d+", "SlurmctldPort=16999", slurm_lab.conf.read_text()))
    tmp_path.chmod(0o755)
    conf.chmod(0o644)
    env = {**user_home, "SLURM_CONF": str(conf)}
    init_profile(test_user, env, "nb", "--app", "server")
    record = {"kind": "job", "profile": "nb", "host": "othernode", "bind": "localhost", "address": "127.0.0.1",
              "port": 40001, "sock": "", "base_url": "/", "app": "server", "pid": 0, "server_pid": 0,
              "started": time.time() - 60, "local_port": 8888, "job_id": "4711"}
    records = records_dir(env)
    records.mkdir(mode=0o700, parents=True)
    (records / "job-4711.json").write_text(json.dumps(record))
    for path in (records.parent, records, records / "job-4711.json"):
        os.chown(path, test_user.uid, test_user.gid)
    result = hop(test_user, env, "list")
    assert result.returncode == 0
    assert result.stderr.startswith("jupyter-hop: warning: slurm: ")
    assert "Unable to contact slurm controller" in result.stderr
    [line] = result.stdout.splitlines()[1:]
    assert line.split()[:4] == ["4711", "nb", "job", "ready"]
    assert line.endswith("Slurm not reachable: not checked")
    # Not checkable is not stale: the record stays.
    assert (records / "job-4711.json").exists()
