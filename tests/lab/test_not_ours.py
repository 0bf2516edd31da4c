"""Issue 10 item 3: stale-record cleanup never signals a process that is not the one the record's launch started.

Decoys are real processes of the test user (and of the other user) named like Jupyter servers and kernels; they
log every signal they catch, so "not signalled" is observed, not assumed.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from labkit.decoy import KERNEL_ARGS, SERVER_ARGS, Decoy, dead_pid, decoy_dir, run_record, start_decoy, write_record
from labkit.launch import hop, init_profile, pid_alive, start_launcher
from labkit.user import TestUser

pytestmark = pytest.mark.lab

HOST = socket.gethostname()


def records_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"


def rows(user: TestUser, env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = hop(user, env, "list", "--json")
    assert result.returncode == 0, result.stderr
    return {str(row["key"]): row for row in json.loads(result.stdout)["servers"]}


def wait_until(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def server_identity(decoy: Decoy) -> dict[str, Any]:
    found = decoy.identity()
    return {"server_start": found["pid_start"], "server_argv": found["argv"]}  # boot_id: the launcher's


def test_a_real_record_whose_pids_were_reused_is_cleaned_by_list_stop_and_run_without_a_signal(
    test_user: TestUser, user_home: dict[str, str]
) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    init_profile(test_user, user_home, "q", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        [path] = records_dir(user_home).glob("*.json")
        real = json.loads(path.read_text())
    finally:
        launcher.stop()
    assert real["pid_start"] and real["server_start"] and real["boot_id"]  # the launcher recorded both identities
    assert any(arg.startswith("--config=") for arg in real["server_argv"])  # type: ignore[attr-defined]
    wait_until(lambda: not pid_alive(int(real["server_pid"])))
    decoys = decoy_dir(test_user, Path(user_home["WORK_DIR"]).parent)
    fake_launcher = start_decoy(test_user, decoys, "launcher")
    fake_server = start_decoy(test_user, decoys, "kernel", KERNEL_ARGS)
    # The launch's record, but its pids now belong to a jupyter-named process and a kernel of the same user.
    reused = dict(real, pid=fake_launcher.pid, server_pid=fake_server.pid)
    key, name = f"{HOST}-{fake_launcher.pid}", f"run-{HOST}-{fake_launcher.pid}.json"
    try:
        file = write_record(test_user, records_dir(user_home), name, reused)
        row = rows(test_user, user_home)[key]
        assert (row["state"], row["cleaned"]) == ("stale", True), row
        assert row["note"] == f"launcher pid {fake_launcher.pid} is gone; record removed"
        assert not file.exists()

        write_record(test_user, records_dir(user_home), name, reused)
        stopped = hop(test_user, user_home, "stop", key)
        assert stopped.returncode == 0, stopped.stderr
        assert "it was already gone" in stopped.stdout and "SIGTERM" not in stopped.stdout
        assert not file.exists()

        write_record(test_user, records_dir(user_home), name, reused)
        other = start_launcher(test_user, user_home, "q")  # a launch prunes this host's stale records first
        try:
            other.wait_ready()
        finally:
            other.stop()
        assert f"{key} was stale (launcher pid {fake_launcher.pid} is gone): record removed\n" in other.err
        assert not file.exists()
        assert fake_launcher.untouched() and fake_server.untouched(), (fake_launcher.caught(), fake_server.caught())
    finally:
        fake_launcher.stop()
        fake_server.stop()


def test_only_an_exact_pid_start_boot_and_argv_match_is_ours(
    test_user: TestUser, other_user: TestUser, user_home: dict[str, str]
) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    decoys = decoy_dir(test_user, Path(user_home["WORK_DIR"]).parent)
    made: list[Decoy] = []

    def decoy(name: str, user: TestUser = test_user) -> Decoy:
        made.append(start_decoy(user, decoys, name, KERNEL_ARGS if name.endswith("server") else SERVER_ARGS))
        return made[-1]

    try:
        cases: dict[str, tuple[dict[str, Any], list[Decoy], list[Decoy]]] = {}  # record, untouched, got SIGTERM

        def case(name: str, record: dict[str, Any], untouched: list[Decoy], got_term: list[Decoy]) -> None:
            cases[name] = (record, untouched, got_term)
            write_record(test_user, records_dir(user_home), f"run-{HOST}-{record['pid']}.json", record)

        launcher, server = decoy("exact-launcher"), decoy("exact-server")
        case("exact", run_record(HOST, launcher.pid, server.pid, **launcher.identity(), **server_identity(server)),
             [launcher, server], [])
        server = decoy("orphan-server")  # the recorded server outlived its launcher: the one process to stop
        gone = dead_pid()
        case("orphan", run_record(HOST, gone, server.pid, **dict(launcher.identity(), argv=["x"]),
                                  server_start=server.identity()["pid_start"], server_argv=server.identity()["argv"]),
             [], [server])
        launcher, server = decoy("boot-launcher"), decoy("boot-server")
        other_boot = dict(launcher.identity(), boot_id="00000000-0000-4000-8000-000000000000")
        case("boot", run_record(HOST, launcher.pid, server.pid, **other_boot, **server_identity(server)),
             [launcher, server], [])
        launcher, server = decoy("start-launcher"), decoy("start-server")
        ident, sident = launcher.identity(), server_identity(server)
        case("start", run_record(HOST, launcher.pid, server.pid, **dict(ident, pid_start=ident["pid_start"] - 1),
                                 **dict(sident, server_start=sident["server_start"] + 1)), [launcher, server], [])
        launcher, server = decoy("argv-launcher"), decoy("argv-server")
        ident, sident = launcher.identity(), server_identity(server)
        case("argv", run_record(HOST, launcher.pid, server.pid, **dict(ident, argv=[*ident["argv"], "x"]),
                                **dict(sident, server_argv=[*sident["server_argv"][:-1], "--config=/other.py"])),
             [launcher, server], [])
        theirs, their_server = decoy("other-launcher", other_user), decoy("other-server", other_user)
        case("other user", run_record(HOST, theirs.pid, their_server.pid, **theirs.identity(),
                                      **server_identity(their_server)), [theirs, their_server], [])
        launcher = decoy("legacy-launcher")  # an older version's record: no identity, started after the process
        case("legacy alive", run_record(HOST, launcher.pid, dead_pid(), started=time.time()), [launcher], [])
        server = decoy("legacy-server")
        case("legacy gone", run_record(HOST, dead_pid(), server.pid), [server], [])

        found = rows(test_user, user_home)
        for name, (record, untouched, got_term) in cases.items():
            row = found[f"{HOST}-{record['pid']}"]
            alive = name in ("exact", "legacy alive")
            assert row["state"] == ("ready" if alive else "stale"), (name, row)
            assert row["cleaned"] is (not alive), (name, row)
            assert ("sent SIGTERM" in str(row["note"])) is bool(got_term), (name, row)
        for record, untouched, got_term in cases.values():
            for process in got_term:
                wait_until(lambda p=process: p.caught() == [signal.SIGTERM.value])
        # A legacy record is never signalled, even by `stop`: one line says what to check instead.
        legacy = cases["legacy alive"][0]
        stopped = hop(test_user, user_home, "stop", f"{HOST}-{legacy['pid']}")
        assert stopped.returncode == 1 and len(stopped.stderr.splitlines()) == 1, stopped.stderr
        assert "written by an older jupyter-hop" in stopped.stderr and "not signalled" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        left = {p.name for p in records_dir(user_home).glob("*.json")}
        assert left == {f"run-{HOST}-{cases[n][0]['pid']}.json" for n in ("exact", "legacy alive")}
        for name, (_, untouched, _) in cases.items():
            for process in untouched:
                assert process.untouched(), (name, process.caught(), process.alive())
        spared = sum(len(untouched) for _, untouched, _ in cases.values())
        print(f"\nrecords judged: {len(cases)}; decoys signalled: 1 (the exact orphan server, SIGTERM); "
              f"decoys that got no signal: {spared} of {spared} (2 of them the other user's)")
    finally:
        for process in made:
            process.stop()
