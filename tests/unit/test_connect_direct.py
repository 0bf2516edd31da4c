"""connect without ControlMaster (Windows' OpenSSH; forced on Linux by the test hook): the detection, the ssh
command lines, the tunnel's ssh against a stand-in ssh (the real one is proven in tests/lab/test_connect_lab.py),
and the reading of a waiting remote command."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_hop import protocol
from jupyter_hop.errors import HopError
from jupyter_hop.laptop import argv, direct, follow
from jupyter_hop.laptop.link import LoginFailed
from jupyter_hop.paths import Paths
from jupyter_hop.slurm.tools import JobState

OBJ = {"bind": "localhost", "tunnel": {"jump": "login", "target": "alice@c0412", "remote": "127.0.0.1:41237"}}


def test_detection_is_the_platform_or_the_test_hook() -> None:
    assert not direct.has_control_master("win32")
    assert direct.has_control_master("linux") and direct.has_control_master("darwin")
    assert direct.wanted("win32", {}) and not direct.wanted("linux", {})
    assert direct.wanted("linux", {direct.TEST_HOOK: "1"}) and not direct.wanted("linux", {direct.TEST_HOOK: "0"})


def test_direct_argv_shapes() -> None:
    no_mux = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    assert argv.direct_command_argv("hpc", "echo hi") == [
        "ssh", *no_mux, "-o", "ClearAllForwardings=yes", "-T", "-n", "hpc", "--", "echo hi"]
    spec = argv.forward_spec(8888, "127.0.0.1:41237")
    assert argv.direct_tunnel_argv(spec, "alice@c0412", jump="hpc") == [
        "ssh", "-N", *no_mux, "-o", "ExitOnForwardFailure=yes", "-J", "hpc", "-L", spec, "alice@c0412"]
    assert argv.direct_tunnel_argv(spec, "hpc") == [
        "ssh", "-N", *no_mux, "-o", "ExitOnForwardFailure=yes", "-L", spec, "hpc"]
    words = " ".join([*argv.direct_command_argv("hpc", "true"), *argv.direct_tunnel_argv(spec, "c1", jump="hpc")])
    for weaker in ("StrictHostKeyChecking", "UserKnownHostsFile", "GatewayPorts", "BatchMode", "0.0.0.0"):
        assert weaker not in words


def stand_in(tmp_path: Path, body: str) -> str:
    """An `ssh` that logs its argv and then does `body` (python)."""
    path = tmp_path / "ssh"
    path.write_text(f"#!{sys.executable}\nimport sys, socket, time\n"
                    f"open({str(tmp_path / 'argv')!r}, 'a').write(repr(sys.argv[1:]) + '\\n')\n{body}\n")
    path.chmod(0o755)
    return str(path)


def session(tmp_path: Path, ssh: str) -> direct.DirectSession:
    return direct.DirectSession("hpc", ssh=ssh, paths=Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_tunnel_ssh_is_waited_for_kept_and_ended(tmp_path: Path) -> None:
    listen = ("port = int(sys.argv[sys.argv.index('-L') + 1].split(':')[1])\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "time.sleep(0.3); s.bind(('127.0.0.1', port)); s.listen(); time.sleep(600)")
    link = session(tmp_path, stand_in(tmp_path, listen))
    spec = argv.forward_spec(free_port(), "127.0.0.1:41237")
    try:
        assert not link.connected()
        link.forward(OBJ, spec)
        assert link.connected() and link.tunnel is not None
        process = link.tunnel.process
        link.forward(OBJ, spec)  # alive: kept, no second login
        assert link.tunnel.process is process
        calls = (tmp_path / "argv").read_text().splitlines()
        assert len(calls) == 1 and "'-J', 'hpc', '-L'" in calls[0] and calls[0].endswith("'alice@c0412']")
    finally:
        link.close()
    assert process.poll() is not None and not link.connected()


def test_a_tunnel_ssh_refused_or_failing_says_why(tmp_path: Path) -> None:
    refused = session(tmp_path, stand_in(tmp_path, "sys.stderr.write('alice@login: Permission denied "
                                                   "(publickey,password).\\n'); sys.exit(255)"))
    spec = argv.forward_spec(free_port(), "127.0.0.1:41237")
    with pytest.raises(LoginFailed) as err:
        refused.forward({**OBJ, "bind": "node"}, spec)
    assert err.value.auth and "Permission denied" in err.value.message and f"tunnel {spec} to hpc" in err.value.message
    assert not refused.connected()
    with pytest.raises(LoginFailed) as err:
        refused.run("true", timeout=10, what="looking for sbatch")
    assert err.value.message == ("cannot connect to hpc (looking for sbatch): alice@login: Permission denied "
                                 "(publickey,password).") and err.value.auth
    busy = session(tmp_path, stand_in(tmp_path, "sys.stderr.write('bind [127.0.0.1]:1: Address already in use\\n"
                                                "Could not request local forwarding.\\n'); sys.exit(255)"))
    with pytest.raises(LoginFailed) as err:
        busy.forward(OBJ, spec)
    assert not err.value.auth and "Could not request local forwarding" in err.value.message
    with pytest.raises(HopError, match="cannot run /nonexistent/ssh"):
        session(tmp_path, "/nonexistent/ssh").forward(OBJ, spec)


def test_a_waiting_command_is_one_line_per_change_and_its_object() -> None:
    events = [protocol.submit_event("7", "/log"),
              protocol.progress_event(JobState("7", "PENDING", "BeginTime"), 0.5),
              protocol.progress_event(JobState("7", "PENDING", "BeginTime"), 0.5),
              protocol.progress_event(JobState("7", "RUNNING", node="c1"), 3.0)]
    script = ("import sys\n"
              f"for line in {[protocol.dumps(e) for e in events]!r}: sys.stderr.write(line); sys.stderr.flush()\n"
              "sys.stderr.write('a warning for people\\n'); print('{\"schema\": 1}')")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    err = io.StringIO()
    seen: list[str] = []
    done = follow.read(process, err, on_event=lambda found: seen.append(found["event"]))
    assert done.code == 0 and json.loads(done.stdout) == {"schema": 1}
    assert done.kept == ["a warning for people"]
    assert seen == ["submitted", "progress", "progress", "progress"]
    assert err.getvalue().splitlines() == [
        "Slurm job 7 submitted; waiting for it to start",
        "Slurm job 7: PENDING: waiting for its earliest start time (--begin) (BeginTime) (0:00)",
        "Slurm job 7: RUNNING on c1, starting Jupyter (0:03)",
    ]
