"""The ssh lab itself: the laptop reaches compute only through login, and the tunnel shapes carry HTTP."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from labkit.sshlab import SshLab, free_port, stop_process

pytestmark = pytest.mark.lab

# A Unix-socket HTTP server for the socket shapes (python -m http.server speaks TCP only).
UNIX_SERVER = """
import http.server, os, socketserver, sys
class S(socketserver.UnixStreamServer):
    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("local", 0)
path = sys.argv[1]
srv = S(path, http.server.SimpleHTTPRequestHandler)
os.chmod(path, 0o600)
print("listening", flush=True)
srv.serve_forever()
"""


@contextmanager
def http_server(lab: SshLab, ns: str, bind: str, cwd: Path) -> Iterator[int]:
    """python -m http.server on a free port in `ns`, as the test user; yields the port it bound."""
    proc = lab.popen_in(ns, ["python3", "-u", "-m", "http.server", "0", "--bind", bind],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(cwd))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server prints where it listens, or exits
        match = re.search(r"port (\d+)", line)
        assert match, f"http.server said {line!r}"
        yield int(match.group(1))
    finally:
        stop_process(proc)


@contextmanager
def unix_server(lab: SshLab, ns: str, path: Path, cwd: Path) -> Iterator[Path]:
    proc = lab.popen_in(ns, ["python3", "-u", "-c", UNIX_SERVER, str(path)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(cwd))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "listening", line
        yield path
    finally:
        stop_process(proc)


@pytest.fixture
def served(ssh_lab: SshLab, tmp_path: Path) -> Path:
    """A directory the test user can serve, holding a file with a known body."""
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    (tmp_path / "hello.txt").write_text("hello from the lab\n")
    (tmp_path / "hello.txt").chmod(0o644)
    return tmp_path


@pytest.fixture
def sock_dir(ssh_lab: SshLab, served: Path) -> Path:
    d = served / "sockets"
    d.mkdir(mode=0o700)
    import os

    os.chown(d, ssh_lab.user.uid, ssh_lab.user.gid)
    return d


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://localhost:{port}/hello.txt", timeout=10) as resp:
        return resp.read().decode()


def test_hostnames_through_the_hops(ssh_lab: SshLab) -> None:
    t0 = time.monotonic()
    login = ssh_lab.run_laptop(["ssh", "login", "hostname"])
    assert (login.returncode, login.stdout) == (0, "login\n"), login.stderr
    compute = ssh_lab.run_laptop(["ssh", "-J", "login", "compute", "hostname"])
    assert (compute.returncode, compute.stdout) == (0, "compute\n"), compute.stderr
    whoami = ssh_lab.run_laptop(["ssh", "-J", "hoptest@login", "hoptest@compute", "id", "-un"])
    assert whoami.stdout == "hoptest\n", whoami.stderr
    assert time.monotonic() - t0 < 20


def test_laptop_cannot_reach_compute(ssh_lab: SshLab) -> None:
    with socket.socket() as s:
        s.settimeout(3)
        assert s.connect_ex((ssh_lab.addresses["compute"], 22)) != 0
    direct = ssh_lab.run_laptop(["ssh", "compute", "true"])
    assert direct.returncode == 255
    # login does not route for others either
    fwd = subprocess.run(["ip", "netns", "exec", "login", "sysctl", "-n", "net.ipv4.ip_forward"],
                         capture_output=True, text=True, check=True)
    assert fwd.stdout.strip() == "0"


def test_node_address_shape(ssh_lab: SshLab, served: Path) -> None:
    """ssh -N -L L:compute:P user@login, with the server bound on compute's address."""
    with http_server(ssh_lab, "compute", ssh_lab.addresses["compute"], served) as port:
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -L {local}:compute:{port} hoptest@login", local):
            assert get(local) == "hello from the lab\n"


def test_jump_localhost_shape(ssh_lab: SshLab, served: Path) -> None:
    """ssh -N -J user@login -L L:localhost:P user@compute, with the server bound on 127.0.0.1."""
    with http_server(ssh_lab, "compute", "127.0.0.1", served) as port:
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -J hoptest@login -L {local}:localhost:{port} hoptest@compute", local):
            assert get(local) == "hello from the lab\n"
        # the node-address shape cannot reach a server bound on 127.0.0.1: the lab is faithful
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -L {local}:compute:{port} hoptest@login", local), pytest.raises(OSError):
            get(local)


def test_jump_socket_shape(ssh_lab: SshLab, served: Path, sock_dir: Path) -> None:
    """ssh -N -J user@login -L L:/path.sock user@compute."""
    with unix_server(ssh_lab, "compute", sock_dir / "s.sock", served) as path:
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -J hoptest@login -L {local}:{path} hoptest@compute", local):
            assert get(local) == "hello from the lab\n"


def test_single_hop_shapes(ssh_lab: SshLab, served: Path, sock_dir: Path) -> None:
    """A workstation: ssh -N -L L:localhost:P user@host and ssh -N -L L:/path.sock user@host."""
    with http_server(ssh_lab, "login", "127.0.0.1", served) as port:
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -L {local}:localhost:{port} hoptest@login", local):
            assert get(local) == "hello from the lab\n"
    with unix_server(ssh_lab, "login", sock_dir / "w.sock", served) as path:
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -L {local}:{path} login", local):
            assert get(local) == "hello from the lab\n"


def test_tunnel_is_closed_after_the_block(ssh_lab: SshLab, served: Path) -> None:
    with http_server(ssh_lab, "compute", "127.0.0.1", served) as port:
        local = free_port()
        with ssh_lab.tunnel(f"ssh -N -J login -L {local}:localhost:{port} compute", local) as proc:
            pass
        assert proc.poll() is not None
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", local)) != 0
