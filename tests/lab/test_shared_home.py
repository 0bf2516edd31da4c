"""Issue 10 item 5: hosts and clusters that share one home keep their own records, and never judge, remove,
signal or cancel each other's (real launchers, real Slurm; the other host or cluster is a record it wrote)."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from labkit.decoy import run_record, write_record
from labkit.launch import hop, init_profile, start_launcher
from labkit.slurmlab import CLUSTER, SlurmLab
from labkit.user import TestUser

pytestmark = pytest.mark.lab

HOST = socket.gethostname()
OTHER_HOST = "ws2.example.org"
OTHER_CLUSTER = "othercl"


def records_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"


def servers(user: TestUser, env: dict[str, str]) -> list[dict[str, Any]]:
    result = hop(user, env, "list", "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["servers"])


def wait_until(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def other_host_unit(profile: str) -> dict[str, Any]:
    """What a launcher of the same profile's unit on another workstation writes to the shared home."""
    return run_record(OTHER_HOST, 4242, 4243, kind="unit", profile=profile, unit=f"jupyter-hop-{profile}.service",
                      launch_id="b" * 16, boot_id="11111111-2222-4333-8444-555555555555", pid_start=1234,
                      argv=["/usr/bin/python3", "-m", "jupyter_hop", "run", profile], server_start=1240,
                      server_argv=["/usr/bin/python3", "-m", "jupyter_server", "--config=/x.py"])


def test_unit_records_of_two_hosts_both_survive_each_others_exit(
    test_user: TestUser, user_home: dict[str, str]
) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    theirs = write_record(test_user, records_dir(user_home), f"unit-p@{OTHER_HOST}.json", other_host_unit("p"))
    their_bytes = theirs.read_bytes()
    # A real launcher as a unit runs it (the unit sets JUPYTER_HOP_UNIT); no user manager is needed for that.
    launcher = start_launcher(test_user, {**user_home, "JUPYTER_HOP_UNIT": "jupyter-hop-p.service"}, "p")
    try:
        launcher.wait_ready()
        ours = records_dir(user_home) / f"unit-p@{HOST}.json"
        assert json.loads(ours.read_text())["kind"] == "unit" and theirs.read_bytes() == their_bytes
        rows = {row["host"]: row for row in servers(test_user, user_home)}
        assert set(rows) == {HOST, OTHER_HOST}
        assert rows[OTHER_HOST]["key"] == "p" and rows[OTHER_HOST]["state"] == "ready"
        assert rows[OTHER_HOST]["note"] == f"on {OTHER_HOST}: not checked" and not rows[OTHER_HOST]["cleaned"]
        assert rows[HOST]["state"] == "ready" and rows[HOST]["note"] == ""
        # A restarted unit's launcher replaced the record meanwhile: the exiting one must not remove it.
        replaced = dict(json.loads(ours.read_text()), launch_id="c" * 16)
        write_record(test_user, records_dir(user_home), ours.name, replaced)
        launcher.signal(signal.SIGTERM)
        assert launcher.wait() == 0
        assert json.loads(ours.read_text()) == replaced, "the exiting launcher removed a record it did not write"
        assert theirs.read_bytes() == their_bytes
        # That record's launcher is gone on this host: list cleans it, and only it.
        rows = {row["host"]: row for row in servers(test_user, user_home)}
        assert rows[HOST]["state"] == "stale" and rows[HOST]["cleaned"] is True
        assert not ours.exists() and theirs.read_bytes() == their_bytes
        [left] = servers(test_user, user_home)
        assert (left["host"], left["key"], left["cleaned"]) == (OTHER_HOST, "p", False)
    finally:
        launcher.stop()


def test_stop_by_profile_prefers_this_hosts_server_and_says_so(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    theirs = write_record(test_user, records_dir(user_home), f"unit-p@{OTHER_HOST}.json", other_host_unit("p"))
    their_bytes = theirs.read_bytes()
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        stopped = hop(test_user, user_home, "stop", "p")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith(f"Stopped foreground run {HOST}-{launcher.process.pid} (profile p)")
        assert f"the one on this host (another 'p' runs on {OTHER_HOST}, left alone)" in stopped.stdout
        assert launcher.wait() == 0
        assert theirs.read_bytes() == their_bytes
        # Only the other host's is left: this host cannot stop it, and says where it runs.
        refused = hop(test_user, user_home, "stop", "p")
        assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert f"runs on {OTHER_HOST}, not on this host" in refused.stderr
        assert theirs.read_bytes() == their_bytes
    finally:
        launcher.stop()


@pytest.fixture
def env(user_home: dict[str, str], slurm_lab: SlurmLab) -> dict[str, str]:
    return {**user_home, **slurm_lab.env()}


def plain_job(user: TestUser, env: dict[str, str]) -> str:
    """A job of the test user that jupyter-hop did not submit (on this cluster)."""
    result = user.run(["sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 300"], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def test_job_records_of_another_cluster_are_never_judged_cancelled_or_stopped_here(
    test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab
) -> None:
    init_profile(test_user, env, "nb", "--app", "server")
    submitted = hop(test_user, env, "slurm", "submit", "nb", timeout=120)
    match = re.search(r"Submitted Slurm job (\d+)", submitted.stderr)
    assert submitted.returncode == 0 and match, submitted.stderr
    job_id = match.group(1)
    other_job = plain_job(test_user, env)
    try:
        ours = records_dir(env) / f"job-{job_id}@{CLUSTER}.json"
        record = json.loads(ours.read_text())
        assert record["cluster"] == CLUSTER
        # The other cluster has jobs of the same ids, on a node of the same name, by the same launcher pid.
        same_id = write_record(test_user, records_dir(env), f"job-{job_id}@{OTHER_CLUSTER}.json",
                               dict(record, cluster=OTHER_CLUSTER, launch_id="d" * 16, port=40999))
        queued_here = write_record(test_user, records_dir(env), f"job-{other_job}@{OTHER_CLUSTER}.json",
                                   dict(record, cluster=OTHER_CLUSTER, launch_id="e" * 16, job_id=other_job))
        before = {path: path.read_bytes() for path in (same_id, queued_here)}
        rows = servers(test_user, env)
        theirs = [row for row in rows if row["cluster"] == OTHER_CLUSTER]
        assert sorted(row["key"] for row in theirs) == sorted([job_id, other_job])
        assert all(row["note"] == f"on cluster {OTHER_CLUSTER}: not checked" and not row["cleaned"] for row in theirs)
        assert [row["state"] for row in rows if row["cluster"] != OTHER_CLUSTER] == ["ready"]

        for command in (["slurm", "cancel", other_job], ["stop", other_job]):
            refused = hop(test_user, env, *command)
            assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
            assert "Traceback" not in refused.stderr
            assert f"Slurm job {other_job} belongs to cluster {OTHER_CLUSTER}, not to this one ({CLUSTER})" \
                in refused.stderr
            assert other_job in slurm_lab.queue(), f"{command} cancelled job {other_job} of this cluster"

        stopped = hop(test_user, env, "stop", job_id, timeout=180)
        assert stopped.returncode == 0, stopped.stderr
        assert f"the one on this host (another '{job_id}' runs on cluster {OTHER_CLUSTER}, left alone)" \
            in stopped.stdout
        assert f"scancel {job_id}" in stopped.stdout and not ours.exists()
        refused = hop(test_user, env, "slurm", "cancel", job_id)
        assert refused.returncode == 1 and f"belongs to cluster {OTHER_CLUSTER}" in refused.stderr, refused.stderr
        assert {path: path.read_bytes() for path in before} == before
        assert other_job in slurm_lab.queue()
        print(f"\nanother cluster's records: 2 listed unchecked, 0 cleaned; refused cancels/stops: 3, "
              f"jobs cancelled by them: 0; this cluster's job {job_id} stopped by `stop {job_id}`")
    finally:
        slurm_lab.run("scancel", job_id, other_job)
