"""`list` and `stop` against real foreground launcher runs of the test user: rows, JSON, stale records, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from labkit.launch import hop, init_profile, pid_alive, port_open, start_launcher
from labkit.user import TestUser

pytestmark = pytest.mark.lab


def records_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"


def listing(user: TestUser, env: dict[str, str], *args: str) -> dict[str, object]:
    result = hop(user, env, "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_until(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def only_record(env: dict[str, str]) -> dict[str, object]:
    files = list(records_dir(env).glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_list_and_stop_a_foreground_run(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        record = only_record(user_home)
        key = f"{record['host']}-{launcher.process.pid}"
        data = listing(test_user, user_home)
        # Without a user manager or a Slurm configuration those parts are absent, not errors.
        assert data["sources"]["systemd"].startswith("absent: ")  # type: ignore[index]
        assert data["sources"]["slurm"].startswith("absent: ")  # type: ignore[index]
        [row] = data["servers"]  # type: ignore[misc]
        assert row["key"] == key and row["kind"] == "run" and row["state"] == "ready"
        assert row["profile"] == "p" and row["host"] == socket.gethostname()
        assert row["endpoint"] == f"127.0.0.1:{record['port']}" and row["port"] == record["port"]
        assert row["pid"] == launcher.process.pid
        assert 0 <= row["age"] < 120 and row["time_left"] is None

        text = hop(test_user, user_home, "list")
        assert text.returncode == 0 and text.stderr == ""
        header, line = text.stdout.splitlines()
        assert header.split() == ["ID", "PROFILE", "KIND", "STATE", "HOST", "ENDPOINT", "AGE", "LEFT", "NOTE"]
        assert line.split()[:6] == [key, "p", "run", "ready", socket.gethostname(), f"127.0.0.1:{record['port']}"]

        started = time.monotonic()
        stopped = hop(test_user, user_home, "stop", key)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith(f"Stopped foreground run {key} (profile p) in ")
        assert f"sent SIGTERM to launcher pid {launcher.process.pid}" in stopped.stdout
        assert time.monotonic() - started < 15
        # `stop` returns only once it is really gone: launcher, server, port and record.
        assert launcher.process.poll() == 0
        assert not pid_alive(int(record["server_pid"]))  # type: ignore[call-overload]
        assert not port_open("127.0.0.1", int(record["port"]))  # type: ignore[call-overload]
        assert listing(test_user, user_home)["servers"] == []
        assert hop(test_user, user_home, "list").stdout == "No servers.\n"
    finally:
        launcher.stop()


def test_socket_run_shows_its_socket_and_stops_by_profile_name(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "sock", "--app", "server", "--bind", "socket")
    launcher = start_launcher(test_user, user_home, "sock")
    try:
        launcher.wait_ready()
        record = only_record(user_home)
        [row] = listing(test_user, user_home)["servers"]  # type: ignore[misc]
        assert row["endpoint"] == record["sock"] and row["port"] == 0
        stopped = hop(test_user, user_home, "stop", "sock")
        assert stopped.returncode == 0, stopped.stderr
        assert launcher.process.poll() == 0
        assert not Path(str(record["sock"])).exists()
    finally:
        launcher.stop()


def test_killed_launcher_leaves_a_stale_record_that_list_cleans(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        record = only_record(user_home)
        server_pid = int(record["server_pid"])  # type: ignore[call-overload]
        # A server dies with its launcher (PR_SET_PDEATHSIG, tests/test_faults.py); one that cannot act on that
        # signal yet (stopped here) outlives it, and `list` must find and stop that orphan.
        os.kill(server_pid, signal.SIGSTOP)
        os.kill(launcher.process.pid, signal.SIGKILL)
        launcher.wait()
        assert pid_alive(server_pid), "the server outlives its SIGKILLed launcher"
        result = hop(test_user, user_home, "list")
        assert result.returncode == 0, result.stderr
        [line] = result.stdout.splitlines()[1:]
        assert line.split()[2:4] == ["run", "stale"]
        assert f"launcher pid {launcher.process.pid} is gone" in line and "record removed" in line
        assert f"orphaned server (pid {server_pid}) sent SIGTERM" in line
        assert list(records_dir(user_home).glob("*.json")) == []
        os.kill(server_pid, signal.SIGCONT)
        wait_until(lambda: not pid_alive(server_pid))
        assert not port_open("127.0.0.1", int(record["port"]))  # type: ignore[call-overload]
        # Shown once, then gone.
        assert listing(test_user, user_home)["servers"] == []
    finally:
        launcher.stop()


def test_stale_record_in_json_and_stop_of_a_stale_record(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        record = only_record(user_home)
        os.kill(launcher.process.pid, signal.SIGKILL)
        launcher.wait()
        key = f"{record['host']}-{launcher.process.pid}"
        stopped = hop(test_user, user_home, "stop", key)
        assert stopped.returncode == 0, stopped.stderr
        assert "it was already gone (launcher pid" in stopped.stdout and "record removed" in stopped.stdout
        wait_until(lambda: not pid_alive(int(record["server_pid"])))  # type: ignore[call-overload]
        assert list(records_dir(user_home).glob("*.json")) == []
    finally:
        launcher.stop()
    # A record whose pid now belongs to an unrelated, younger process is stale too (pid reuse).
    fake = dict(record, pid=os.getpid(), started=time.time() - 3600)
    fake_path = records_dir(user_home) / f"run-{record['host']}-{os.getpid()}.json"
    write_as_user(test_user, fake_path, json.dumps(fake))
    [row] = listing(test_user, user_home)["servers"]  # type: ignore[misc]
    assert row["state"] == "stale" and row["cleaned"] is True
    assert not fake_path.exists()


def write_as_user(user: TestUser, path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    os.chown(path, user.uid, user.gid)


def test_record_of_another_host_is_listed_unchecked_and_not_stopped_here(
    test_user: TestUser, user_home: dict[str, str]
) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    record = {
        "kind": "run", "profile": "p", "host": "elsewhere", "bind": "localhost", "address": "127.0.0.1",
        "port": 41234, "sock": "", "base_url": "/", "app": "server", "pid": 4242, "server_pid": 4243,
        "started": time.time() - 90, "local_port": 8888,
    }
    records_dir(user_home).mkdir(parents=True, exist_ok=True)
    os.chown(records_dir(user_home).parent, test_user.uid, test_user.gid)
    os.chown(records_dir(user_home), test_user.uid, test_user.gid)
    records_dir(user_home).chmod(0o700)
    write_as_user(test_user, records_dir(user_home) / "run-elsewhere-4242.json", json.dumps(record))
    [row] = listing(test_user, user_home)["servers"]  # type: ignore[misc]
    assert row["key"] == "elsewhere-4242" and row["state"] == "ready" and row["note"] == "on elsewhere: not checked"
    result = hop(test_user, user_home, "stop", "elsewhere-4242")
    assert result.returncode == 1
    assert result.stderr.startswith("jupyter-hop: error: elsewhere-4242 runs on elsewhere, not on this host")
    assert len(result.stderr.splitlines()) == 1
    assert (records_dir(user_home) / "run-elsewhere-4242.json").exists()


def test_unknown_and_ambiguous_targets(test_user: TestUser, user_home: dict[str, str]) -> None:
    result = hop(test_user, user_home, "stop", "nothing-here")
    assert result.returncode == 1
    assert result.stderr == (
        "jupyter-hop: error: no server 'nothing-here' is known: give a Slurm job id, the profile of a unit, "
        "or HOST-PID of a foreground run, as `jupyter hop list` shows them\n"
    )
    init_profile(test_user, user_home, "p", "--app", "server")
    launchers = [start_launcher(test_user, user_home, "p") for _ in range(2)]
    try:
        for launcher in launchers:
            launcher.wait_ready()
        result = hop(test_user, user_home, "stop", "p")
        assert result.returncode == 1
        assert result.stderr.startswith("jupyter-hop: error: 'p' names 2 servers (")
        assert len(result.stderr.splitlines()) == 1
        assert all(launcher.process.poll() is None for launcher in launchers)
        rows = listing(test_user, user_home)["servers"]
        assert [r["state"] for r in rows] == ["ready", "ready"]  # type: ignore[index]
        for row in rows:  # type: ignore[attr-defined]
            assert hop(test_user, user_home, "stop", row["key"]).returncode == 0
        assert all(launcher.process.poll() == 0 for launcher in launchers)
    finally:
        for launcher in launchers:
            launcher.stop()
