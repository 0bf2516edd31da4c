"""The launcher against a real Jupyter server run by the test user: readiness, records, signals, failures."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from labkit.launch import hop, init_profile, pid_alive, port_open, start_launcher
from labkit.user import TestUser

pytestmark = pytest.mark.lab


def records_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"


def only_record(env: dict[str, str]) -> dict[str, object]:
    files = list(records_dir(env).glob("*.json"))
    assert len(files) == 1, files
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(records_dir(env).stat().st_mode) == 0o700
    return json.loads(files[0].read_text())


def wait_until(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_sigterm_stops_cleanly(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        text = launcher.wait_ready()
        record = only_record(user_home)
        port = int(record["port"])  # type: ignore[call-overload]
        assert f" -L 127.0.0.1:8888:127.0.0.1:{port} " in text
        assert port_open("127.0.0.1", port)
        environ = Path(f"/proc/{record['server_pid']}/environ").read_bytes().split(b"\0")
        runtime_env = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"JUPYTER_RUNTIME_DIR=")]
        runtime = [Path(runtime_env[0].decode())]
        assert runtime[0].name.startswith("launch-"), "a per-launch runtime dir"
        assert stat.S_IMODE(runtime[0].stat().st_mode) == 0o700
        assert (runtime[0] / f"jpserver-{record['server_pid']}.json").exists()
        launcher.signal(signal.SIGTERM)
        assert launcher.wait() == 0
        assert not port_open("127.0.0.1", port)
        assert not pid_alive(int(record["server_pid"]))  # type: ignore[call-overload]
        assert list(records_dir(user_home).glob("*.json")) == []
        assert not any(d.exists() for d in runtime)
    finally:
        launcher.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_other_stop_signals_are_clean(test_user: TestUser, user_home: dict[str, str], sig: int) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        port = int(only_record(user_home)["port"])  # type: ignore[call-overload]
        launcher.signal(sig)
        assert launcher.wait() == 0
        assert not port_open("127.0.0.1", port)
        assert "Shutting down" in launcher.err
    finally:
        launcher.stop()


def test_server_killed_makes_launcher_fail_with_log_tail(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        os.kill(int(only_record(user_home)["server_pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        assert launcher.wait() != 0
        err = launcher.err
        assert "jupyter-hop: error: the Jupyter server on" in err
        assert "Last lines of the server log:" in err
        assert "Traceback" not in err
        assert list(records_dir(user_home).glob("*.json")) == []
    finally:
        launcher.stop()


def test_token_mode_keeps_token_out_of_output(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server", password=None)
    launcher = start_launcher(test_user, user_home, "p")
    try:
        text = launcher.wait_ready()
        record = only_record(user_home)
        token = str(record["token"])
        assert len(token) >= 32
        # Not a terminal: the token is only in the 0600 record, not in the output or the server log.
        assert token not in text
        assert token not in launcher.err
        assert "jupyter hop instructions" in text
        import urllib.request

        url = f"http://127.0.0.1:{record['port']}/api/status"
        req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=5) as response:
            assert response.status == 200
        shown = hop(test_user, user_home, "instructions", f"{record['host']}-{record['pid']}")
        assert shown.returncode == 0 and "ssh -N -L" in shown.stdout
    finally:
        launcher.stop()


def test_socket_mode(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server", "--bind", "socket")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        text = launcher.wait_ready()
        record = only_record(user_home)
        sock = Path(str(record["sock"]))
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        assert f" -L 127.0.0.1:8888:{sock} " in text
        launcher.signal(signal.SIGTERM)
        assert launcher.wait() == 0
        assert not sock.exists()
    finally:
        launcher.stop()


def test_ten_launches_at_once(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launchers = [start_launcher(test_user, user_home, "p") for _ in range(10)]
    try:
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda launcher: launcher.wait_ready(timeout=120), launchers))
        recs = [json.loads(p.read_text()) for p in records_dir(user_home).glob("*.json")]
        ports = {r["port"] for r in recs}
        assert len(recs) == 10 and len(ports) == 10
        # Each tunnel gets its own laptop port too.
        assert len({r["local_port"] for r in recs}) == 10
        from labkit.http_login import login

        for record in recs:
            assert login(f"http://127.0.0.1:{record['port']}", "pw-s3cret") == 200
    finally:
        for launcher in launchers:
            launcher.stop()
    codes = [launcher.process.returncode for launcher in launchers]
    assert codes == [0] * 10, [(code, launcher.err[-2000:]) for code, launcher in zip(codes, launchers) if code]


def test_fixed_port_taken_is_a_clear_error(test_user: TestUser, user_home: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        init_profile(test_user, user_home, "p", "--app", "server", "--port", str(port))
        result = hop(test_user, user_home, "run", "p")
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"jupyter-hop: error: server.port = {port} is already in use on 127.0.0.1; choose another or 0 (automatic)"
    )


def test_socket_path_too_long(test_user: TestUser, user_home: dict[str, str], tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * 90)
    long_dir.mkdir()
    os.chown(long_dir, test_user.uid, test_user.gid)
    long_dir.chmod(0o700)
    for parent in long_dir.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    init_profile(test_user, user_home, "p", "--app", "server", "--bind", "socket")
    result = hop(test_user, {**user_home, "XDG_RUNTIME_DIR": str(long_dir)}, "run", "p")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "longer than 107 bytes" in lines[0], result.stderr


def test_app_not_installed(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "notebook")
    result = hop(test_user, user_home, "run", "p")
    assert result.returncode != 0
    assert result.stderr.startswith("jupyter-hop: error: server.app = 'notebook' but notebook is not installed")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_profile(test_user: TestUser, user_home: dict[str, str]) -> None:
    result = hop(test_user, user_home, "run", "nope")
    assert result.returncode != 0
    assert "no profile named 'nope'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ready_timeout_stops_the_child(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "lab")
    profile = Path(user_home["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / "p.toml"
    text = profile.read_text().replace("ready_timeout = 120", "ready_timeout = 1")
    profile.write_text(text)
    started = time.monotonic()
    result = hop(test_user, user_home, "run", "p")
    assert result.returncode != 0
    assert "did not answer within server.ready_timeout = 1 s" in result.stderr
    evidence = result.stderr.splitlines()[1]
    assert evidence in ("Last lines of the server log:", "(the server printed nothing)")
    assert time.monotonic() - started < 20


def test_stale_record_is_cleaned_by_next_launch(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    launcher.wait_ready()
    record = only_record(user_home)
    os.kill(launcher.process.pid, signal.SIGKILL)  # the launcher dies; its record stays behind
    launcher.wait()
    with contextlib.suppress(ProcessLookupError):  # it may be gone already: it dies with its launcher
        os.kill(int(record["server_pid"]), signal.SIGTERM)  # type: ignore[call-overload]
    wait_until(lambda: not pid_alive(int(record["server_pid"])))  # type: ignore[call-overload]
    assert len(list(records_dir(user_home).glob("*.json"))) == 1
    second = start_launcher(test_user, user_home, "p")
    try:
        second.wait_ready()
        recs = [json.loads(p.read_text()) for p in records_dir(user_home).glob("*.json")]
        assert [r["pid"] for r in recs] == [second.process.pid]
    finally:
        second.stop()


def test_root_is_refused_in_one_line(tmp_path: Path) -> None:
    """As root, Jupyter would refuse after a slow start; the launcher says so at once, and why."""
    import subprocess
    import sys

    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_STATE_HOME": str(tmp_path / "s")}
    hop_bin = str(Path(sys.executable).parent / "jupyter-hop")
    made = subprocess.run([hop_bin, "init", "r", "--no-password", "--root-dir", str(tmp_path), "--app", "server"],
                          env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    result = subprocess.run([hop_bin, "run", "r"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == (
        "jupyter-hop: error: Jupyter does not run as root: run jupyter-hop as the user who will use the notebooks\n"
    )
