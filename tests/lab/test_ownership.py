"""Ready means our server answers: the listening socket is matched to the child's fds, not just any HTTP 200."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit.launch import hop, init_profile, start_launcher
from labkit.squat import Window, squatter
from labkit.user import TestUser

from jupyter_hop.server import ownership

# Literal /proc/net/tcp text from a little-endian machine: 127.0.0.1:8888 and 0.0.0.0:2024 listen (0A), one
# established connection (01) does not count.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 40123 1 0000 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1683 1 0000 100 0 0 10 0
   2: 0100007F:22B8 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1001        0 40999 1 0000 20 4 30 10 -1
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when
   0: 00000000000000000000000001000000:22B8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1002        0 50001
   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1003        0 50002
"""  # noqa: E501 (real /proc/net/tcp6 lines are this long)


def test_parse_listeners_ipv4_and_ipv6() -> None:
    assert ownership.parse_listeners(TCP, "little") == [
        ownership.Listener("127.0.0.1", 8888, 1001, 40123),
        ownership.Listener("0.0.0.0", 2024, 0, 1683),
    ]
    assert ownership.parse_listeners(TCP6, "little") == [
        ownership.Listener("::1", 8888, 1002, 50001),
        ownership.Listener("127.0.0.1", 8080, 1003, 50002),  # IPv4-mapped: reaches 127.0.0.1
    ]
    assert ownership.decode_address("7F000001", "big") == "127.0.0.1"
    assert ownership.parse_listeners("header only\n") == []


# A real sock_diag reply (the kernel's answer to diag_request(AF_INET, 8888) for a root socket on 127.0.0.1:8888,
# inode 92216, with its trailing attributes), then the end of the dump.
DIAG_REPLY = (
    "7c0000001400020001000000140a0000020a000022b800007f000001000000000000000000000000000000000000000000000000"
    "000000000000000001100000000000000000000000000000800000000000000038680100050008000000000008000f0000000000"
    "0c00150001000000000000000600160052000000"
)
DIAG_DONE = "14000000030002000100000000000000" + "00000000"


def test_parse_sock_diag_reply() -> None:
    assert ownership.parse_diag(bytes.fromhex(DIAG_REPLY + DIAG_DONE)) == (
        [ownership.Listener("127.0.0.1", 8888, 0, 92216)], True
    )
    assert ownership.parse_diag(bytes.fromhex(DIAG_REPLY)) == ([ownership.Listener("127.0.0.1", 8888, 0, 92216)], False)
    error = "24000000020000000100000000000000" + "eaffffff" + "0" * 32  # NLMSG_ERROR, -EINVAL
    with pytest.raises(OSError, match="sock_diag"):
        ownership.parse_diag(bytes.fromhex(error))


def test_reaching_and_foreign() -> None:
    ours = ownership.Listener("127.0.0.1", 8888, 1001, 1)
    wildcard = ownership.Listener("0.0.0.0", 8888, 1002, 2)
    v6only = ownership.Listener("::", 8888, 1002, 3)  # coexists with an IPv4 bind only as v6-only
    elsewhere = [ownership.Listener("10.0.0.5", 8888, 1002, 4), ownership.Listener("127.0.0.1", 8889, 1002, 5)]
    listeners = [ours, wildcard, v6only, *elsewhere]
    assert ownership.reaching(listeners, "127.0.0.1", 8888) == [ours, wildcard]
    assert ownership.foreign([ours, wildcard], {1}, 1001) == [wildcard]
    assert ownership.foreign([ours, wildcard], None, 1001) == [wildcard]  # fds unreadable: the uid decides
    assert ownership.foreign([ours], {1}, 0) == []


def test_socket_file_must_be_ours_in_a_private_dir(tmp_path: Path) -> None:
    runtime = tmp_path / "launch"
    runtime.mkdir(mode=0o700)
    path = runtime / "jupyter.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        ownership.check_socket_file(path, runtime)
        with pytest.raises(ownership.NotOurs, match="not in this launch's private runtime dir"):
            ownership.check_socket_file(path, tmp_path)
        runtime.chmod(0o755)
        with pytest.raises(ownership.NotOurs, match="not in this launch's private runtime dir"):
            ownership.check_socket_file(path, runtime)
        runtime.chmod(0o700)
        if os.geteuid() == 0:
            os.chown(path, 4242, 4242)
            with pytest.raises(ownership.NotOurs, match=r"not a socket of yours \(uid 4242\)"):
                ownership.check_socket_file(path, runtime)
    path.unlink()
    with pytest.raises(ownership.NotOurs, match="cannot be checked"):
        ownership.check_socket_file(path, runtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LISTEN = "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',int(sys.argv[1])))\ns.listen()\n" \
    "print('listening',flush=True)\ntime.sleep(600)\n"


@contextlib.contextmanager
def own_listener(port: int) -> Iterator[subprocess.Popen[str]]:
    """A child of this test process listening on 127.0.0.1:port, like the launcher's Jupyter child."""
    proc = subprocess.Popen([sys.executable, "-c", LISTEN, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.lab
def test_check_listener_against_real_listeners(other_user: TestUser, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Our child's listener passes; another user's, or another process of ours, on the port is refused."""
    base = tmp_path_factory.mktemp("squat")
    base.chmod(0o755)
    ours, theirs, mine_too = free_port(), free_port(), free_port()
    with own_listener(ours) as child, own_listener(mine_too), squatter(other_user, "127.0.0.1", theirs, base):
        ownership.check_listener(child.pid, "127.0.0.1", ours)
        for port in (ours, theirs):  # sock_diag and /proc/net/tcp (the fallback) see the same sockets
            from_proc = [item for item in ownership.read_listeners() if item.port == port]
            assert ownership.diag_listeners(port) == from_proc and len(from_proc) == 1
        assert from_proc[0].uid == other_user.uid
        with pytest.raises(ownership.NotOurs) as caught:
            ownership.check_listener(child.pid, "127.0.0.1", theirs)
        assert str(caught.value) == (
            f"port {theirs} on 127.0.0.1 is held by another process (uid {other_user.uid}), not by the Jupyter "
            "server just started, which was stopped; choose another server.port, or 0 (automatic)"
        )
        with pytest.raises(ownership.NotOurs, match=rf"another process of yours \(uid {os.geteuid()}\)"):
            ownership.check_listener(child.pid, "127.0.0.1", mine_too)
        with pytest.raises(ownership.NotOurs, match=r"held by another process, not"):  # nothing listens
            ownership.check_listener(child.pid, "127.0.0.1", free_port())
        rounds = []
        for _ in range(200):
            began = time.perf_counter()
            ownership.check_listener(child.pid, "127.0.0.1", ours)
            rounds.append(time.perf_counter() - began)
    print(f"\nownership check (sock_diag + /proc/PID/fd): median {statistics.median(rounds) * 1000:.3f} ms, "
          f"max {max(rounds) * 1000:.3f} ms over {len(rounds)}")


def user_processes(user: TestUser, needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid == user.uid and needle.encode() in (
                entry / "cmdline"
            ).read_bytes():
                found.append(int(entry.name))
    return found


@pytest.mark.lab
def test_squatter_between_port_check_and_bind_gets_one_line(
    test_user: TestUser, other_user: TestUser, user_home: dict[str, str]
) -> None:
    """The real race, made deterministic. Jupyter checks that its port is free, writes its runtime json, and
    binds only later, in an io-loop callback. A test extension (lab/squat.py) holds the real server exactly
    there; `hopother` then listens on the fixed port and answers 200 on /api, as an attacker who won the race
    would. The launcher's check_port_free passed long before, and its json poll sees the server's own file:
    only the ownership check stands between the fake and the printed instructions.
    """
    port = free_port()
    init_profile(test_user, user_home, "p", "--app", "server", "--port", str(port))
    base = Path(user_home["WORK_DIR"]).parent
    window = Window(base / "window")
    config = str(Path(user_home["XDG_CONFIG_HOME"]) / "jupyter-hop" / "servers" / "p" / "jupyter_server_config.py")
    launcher = start_launcher(test_user, {**user_home, **window.env}, "p")
    try:
        window.wait_held(launcher.process)
        with squatter(other_user, "127.0.0.1", port, base / "squat") as fake:
            code = launcher.wait(timeout=60)
            gone = time.monotonic()
            while user_processes(test_user, config) and time.monotonic() < gone + 2:
                time.sleep(0.02)
            left = user_processes(test_user, config)
            assert fake.poll() is None, "the other user's process is not ours to stop"
            assert fake.stdout is not None and fake.stdout.readline() == "answered /api\n"
    finally:
        window.release()
        launcher.stop()
        for pid in user_processes(test_user, config):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert code == 1
    assert left == [], "the launcher left its server running"
    errors = [line for line in launcher.err.splitlines() if line.startswith("jupyter-hop: error:")]
    assert errors == [
        f"jupyter-hop: error: port {port} on 127.0.0.1 is held by another process (uid {other_user.uid}), not by "
        "the Jupyter server just started, which was stopped; choose another server.port, or 0 (automatic)"
    ], launcher.err
    assert "Traceback" not in launcher.err
    assert launcher.out == "", "instructions were printed for another user's process"
    records = Path(user_home["XDG_STATE_HOME"]) / "jupyter-hop" / "records"
    assert not (records.exists() and list(records.glob("*.json")))
    listed = hop(test_user, user_home, "list", "--json")
    assert listed.returncode == 0 and '"servers": []' in listed.stdout, listed.stdout


@pytest.mark.lab
def test_held_server_without_squatter_becomes_ready(test_user: TestUser, user_home: dict[str, str]) -> None:
    """The control for the test above: the same hold, released with nobody on the port, ends in instructions."""
    port = free_port()
    init_profile(test_user, user_home, "p", "--app", "server", "--port", str(port))
    window = Window(Path(user_home["WORK_DIR"]).parent / "window")
    launcher = start_launcher(test_user, {**user_home, **window.env}, "p")
    try:
        window.wait_held(launcher.process)
        window.release()
        assert f":{port}" in launcher.wait_ready()
    finally:
        launcher.stop()
    assert launcher.process.returncode == 0, launcher.err
