"""`list` and `stop` across all three kinds at once: a foreground run, a real systemd user unit and real Slurm
jobs of the test user, reconciled in one view, then each stopped the right way."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from labkit.launch import init_profile, port_open, start_launcher
from labkit.slurmlab import SlurmLab
from labkit.systemdlab import UserManager, hop, ok
from labkit.user import TestUser

pytestmark = pytest.mark.lab




def listing(manager: UserManager, env: dict[str, str]) -> dict[str, object]:
    return json.loads(ok(hop(manager, env, "list", "--json")))


def rows_by_kind(data: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = data["servers"]
    assert isinstance(rows, list)
    by_kind = {row["kind"]: row for row in rows}
    assert len(by_kind) == len(rows), rows
    return by_kind


def set_extra_directives(env: dict[str, str], name: str, directives: list[str]) -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"
    text = path.read_text()
    assert "extra_directives = []" in text
    path.write_text(text.replace("extra_directives = []", f"extra_directives = {json.dumps(directives)}", 1))


@pytest.fixture
def env(unit_env: dict[str, str], slurm_lab: SlurmLab) -> dict[str, str]:
    return {**unit_env, **slurm_lab.env()}


def test_one_of_each_listed_then_stopped(test_user: TestUser, user_manager: UserManager, slurm_lab: SlurmLab,
                                         env: dict[str, str]) -> None:
    for name in ("fg", "svc", "nb", "later"):
        init_profile(test_user, env, name, "--app", "server")
    # A job that stays pending (it may not start for an hour) shows the pending state and its reason.
    set_extra_directives(env, "later", ["--begin=now+3600"])
    launcher = start_launcher(test_user, env, "fg")
    job_ids: list[str] = []
    try:
        launcher.wait_ready()
        ok(hop(user_manager, env, "systemd", "install", "svc"))
        ok(hop(user_manager, env, "systemd", "start", "svc"))
        submitted = ok(hop(user_manager, env, "slurm", "submit", "nb"))
        job_ids.append(re.search(r"Slurm job (\d+)", submitted).group(1))  # type: ignore[union-attr]
        pending = ok(hop(user_manager, env, "slurm", "submit", "later", "--no-wait"))
        job_ids.append(re.search(r"Slurm job (\d+)", pending).group(1))  # type: ignore[union-attr]
        job, later = job_ids

        started = time.monotonic()
        data = listing(user_manager, env)
        print(f"\nlist --json with a run, a unit and two jobs: {time.monotonic() - started:.2f} s")
        assert data["sources"] == {"records": "ok", "systemd": "ok", "slurm": "ok"}
        rows = {row["key"]: row for row in data["servers"]}  # type: ignore[union-attr, index]
        key = f"{socket.gethostname()}-{launcher.process.pid}"
        assert set(rows) == {key, "svc", job, later}
        host = socket.gethostname()
        run, unit, ready_job, pending_job = rows[key], rows["svc"], rows[job], rows[later]
        assert (run["kind"], run["state"], run["host"], run["profile"]) == ("run", "ready", host, "fg")
        assert (unit["kind"], unit["state"], unit["host"], unit["unit"]) == ("unit", "ready", host,
                                                                          "jupyter-hop-svc.service")
        assert (ready_job["kind"], ready_job["state"], ready_job["host"], ready_job["profile"]) == (
            "job", "ready", slurm_lab.host, "nb")
        assert (pending_job["kind"], pending_job["state"], pending_job["profile"]) == ("job", "pending", "later")
        assert pending_job["note"] == "BeginTime" and pending_job["endpoint"] == ""
        for row in (run, unit, ready_job):
            assert re.fullmatch(r"127\.0\.0\.1:\d+", str(row["endpoint"])), row
            assert port_open("127.0.0.1", int(row["port"])), row  # type: ignore[call-overload]
            assert 0 <= float(row["age"]) < 600  # type: ignore[arg-type]
        # Jobs have a time limit (the profile's 04:00:00); runs and units do not.
        assert 3 * 3600 < float(ready_job["time_left"]) <= 4 * 3600  # type: ignore[arg-type]
        assert run["time_left"] is None and unit["time_left"] is None

        text = ok(hop(user_manager, env, "list"))
        lines = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
        assert lines[key][1:4] == ["fg", "run", "ready"]
        assert lines["svc"][1:4] == ["svc", "unit", "ready"]
        assert lines[job][1:4] == ["nb", "job", "ready"] and re.fullmatch(r"3h\d\dm", lines[job][7])
        # the pending job's note: its reason, and the start Slurm expects (its --begin time, in the hour)
        assert lines[later][1:4] == ["later", "job", "pending"]
        [later_line] = [line for line in text.splitlines() if line.split()[0] == later]
        note = r"  BeginTime, expected start (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC \(in 59 min\)$"
        assert re.search(note, later_line), text
        assert 3500 < float(pending_job["expected_start"]) - time.time() <= 3600  # type: ignore[arg-type]

        ports = {k: int(rows[k]["port"]) for k in (key, "svc", job)}  # type: ignore[call-overload]
        started = time.monotonic()
        said = ok(hop(user_manager, env, "stop", "svc"))
        print(f"stop unit: {time.monotonic() - started:.2f} s")
        assert said.startswith("Stopped systemd user unit svc (profile svc) in ")
        assert "systemctl --user stop jupyter-hop-svc.service" in said
        assert user_manager.systemctl("is-active", "jupyter-hop-svc.service").stdout.strip() == "inactive"
        started = time.monotonic()
        said = ok(hop(user_manager, env, "stop", job))
        print(f"stop job: {time.monotonic() - started:.2f} s")
        assert said.startswith(f"Stopped Slurm job {job} (profile nb) in ") and f"scancel {job}" in said
        assert job not in slurm_lab.queue()
        said = ok(hop(user_manager, env, "stop", later))
        assert later not in slurm_lab.queue()
        started = time.monotonic()
        said = ok(hop(user_manager, env, "stop", key))
        print(f"stop run: {time.monotonic() - started:.2f} s")
        assert said.startswith(f"Stopped foreground run {key} (profile fg) in ")
        assert launcher.process.poll() == 0
        for port in ports.values():
            assert not port_open("127.0.0.1", port)
        assert listing(user_manager, env)["servers"] == []
        assert ok(hop(user_manager, env, "list")) == "No servers.\n"
        # The installed unit is still there, stopped: `--all` shows it.
        everything = json.loads(ok(hop(user_manager, env, "list", "--json", "--all")))
        assert [(r["key"], r["state"]) for r in everything["servers"]] == [("svc", "stopped")]  # type: ignore[index, union-attr]
        records = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"
        assert list(records.glob("*.json")) == []
    finally:
        launcher.stop()
        if job_ids:
            slurm_lab.run("scancel", *job_ids)


def test_stale_job_and_unit_records_are_cleaned(test_user: TestUser, user_manager: UserManager,
                                                slurm_lab: SlurmLab, env: dict[str, str]) -> None:
    records = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"
    init_profile(test_user, env, "p", "--app", "server")
    ok(hop(user_manager, env, "config", "p"))
    base = {"profile": "p", "bind": "localhost", "address": "127.0.0.1", "port": 40001, "sock": "",
            "base_url": "/", "app": "server", "server_pid": 0, "started": time.time() - 60, "local_port": 8888}
    stale = {
        "job-999999.json": {**base, "kind": "job", "host": "somenode", "pid": 0, "job_id": "999999"},
        "unit-p.json": {**base, "kind": "unit", "host": socket.gethostname(), "pid": 999999,
                        "unit": "jupyter-hop-p.service"},
    }
    records.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, data in stale.items():
        (records / name).write_text(json.dumps(data))
    subprocess.run(["chown", "-R", f"{test_user.uid}:{test_user.gid}", str(records.parent)], check=True)
    data = listing(user_manager, env)
    states = {(r["kind"], r["key"]): (r["state"], r["cleaned"]) for r in data["servers"]}  # type: ignore[index, union-attr]
    assert states == {("job", "999999"): ("stale", True), ("unit", "p"): ("stale", True)}
    notes = {r["kind"]: r["note"] for r in data["servers"]}  # type: ignore[index, union-attr]
    assert notes["job"].startswith("job 999999 is no longer in the queue")
    assert notes["unit"].startswith("launcher pid 999999 is gone")
    assert list(records.glob("*.json")) == []
    assert listing(user_manager, env)["servers"] == []


def test_killed_unit_launcher_is_stale_while_systemd_restarts_it(
    test_user: TestUser, user_manager: UserManager, unit_env: dict[str, str]
) -> None:
    env = unit_env
    init_profile(test_user, env, "svc", "--app", "server")
    ok(hop(user_manager, env, "systemd", "install", "svc"))
    ok(hop(user_manager, env, "systemd", "start", "svc"))
    record_path = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records" / f"unit-svc@{socket.gethostname()}.json"
    old = json.loads(record_path.read_text())
    subprocess.run(["kill", "-KILL", str(old["pid"])], check=True)
    # Restart=on-failure with RestartSec=2: for two seconds the unit waits to restart and the record is stale.
    stale, unit = listing(user_manager, env)["servers"]  # type: ignore[misc]
    assert [stale["key"], stale["kind"], stale["state"], stale["cleaned"]] == ["svc", "unit", "stale", True]
    assert stale["note"] == f"launcher pid {old['pid']} is gone; record removed"
    assert [unit["key"], unit["state"], unit["note"]] == ["svc", "starting", "restarting after a failure"]
    rows = listing(user_manager, env)["servers"]
    assert [(r["kind"], r["state"]) for r in rows] == [("unit", "starting")], rows  # type: ignore[index, union-attr]
    deadline = time.monotonic() + 60
    while True:
        [row] = listing(user_manager, env)["servers"]  # type: ignore[misc]
        if row["state"] == "ready" and row["port"]:
            break
        # `list` reads the records before it asks systemd: a launcher that wrote its record and sent READY=1 in
        # between shows as ready without a port for that one listing
        assert row["state"] in ("starting", "ready") and time.monotonic() < deadline, row
        time.sleep(0.2)
    assert row["pid"] != old["pid"] and port_open("127.0.0.1", int(row["port"]))
    # Killed again and stopped at once: `stop` finds the restarting unit (not the dead launcher's record).
    subprocess.run(["kill", "-KILL", str(row["pid"])], check=True)
    said = ok(hop(user_manager, env, "stop", "svc"))
    assert said.startswith("Stopped systemd user unit svc (profile svc) in "), said
    assert user_manager.systemctl("is-active", "jupyter-hop-svc.service").stdout.strip() == "inactive"
    assert not record_path.exists()
    assert listing(user_manager, env)["servers"] == []
