"""`connect` without ControlMaster (portable: no POSIX-only import): for Windows, whose OpenSSH has no
ControlMaster (its ssh -G works; -M and ControlPath sockets do not).

Every remote command is an ssh login of its own and the tunnel is one more (`ssh -N -J HOST -L ... NODE`, as the
printed instructions have it), re-started when it dies: ssh may ask for the password at each of them. A fresh
`connect hpc gpu` makes three logins (the sbatch lookup, `slurm submit --json --reattach`, the tunnel), two with
--slurm given, one more for a token profile's token and one per re-opened tunnel.

The detection is a pure function of the platform. TEST HOOK: JUPYTER_HOP_TEST_NO_CONTROL_MASTER=1 forces this
mode on any platform, so that the lab proves it on Linux (tests/lab/test_connect_lab.py); it is not for users.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from jupyter_hop import proc
from jupyter_hop.errors import HopError
from jupyter_hop.laptop import argv as ssh_argv
from jupyter_hop.laptop.link import Link, LoginFailed, is_auth_failure, last_line

TEST_HOOK = "JUPYTER_HOP_TEST_NO_CONTROL_MASTER"  # the test hook (see above): "1" forces this mode; not for users
POLL = 0.05
LOGIN_TIMEOUT = 300.0  # how long the user may take to answer the tunnel's prompts
NOTICE = ("This ssh has no ControlMaster: each step on {host} and the tunnel is an ssh login of its own, so ssh "
          "may ask you to authenticate several times.")


def has_control_master(platform: str) -> bool:
    """Whether the laptop's OpenSSH can run a master: everywhere but native Windows (Win32-OpenSSH)."""
    return platform != "win32"


def wanted(platform: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """This mode: no ControlMaster on this platform, or the test hook set."""
    env = os.environ if env is None else env
    return not has_control_master(sys.platform if platform is None else platform) or env.get(TEST_HOOK) == "1"


@dataclass
class _Tunnel:
    spec: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]  # ssh's stderr, anonymous: the evidence when it fails, nothing left on disk


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((ssh_argv.LOCAL_ADDRESS, port)) == 0


class DirectSession(Link):
    """Remote commands and one tunnel, each its own ssh; `close()` ends the tunnel."""

    parallel = False  # every command is a login of its own, which may ask on the terminal

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self.notice = NOTICE.format(host=self.host)
        self.tunnel: _Tunnel | None = None

    def run(self, line: str, *, timeout: float | None, what: str) -> subprocess.CompletedProcess[str]:
        argv = ssh_argv.direct_command_argv(self.host, line, ssh=self.ssh)
        result = proc.run(argv, timeout=timeout, what=what, env=self.env)
        if result.returncode == 255:
            said = last_line(result.stderr)
            raise LoginFailed(f"cannot connect to {self.host} ({what}): {said}", detail=result.stderr,
                              auth=is_auth_failure(said))
        return result

    def popen(self, line: str) -> subprocess.Popen[str]:
        argv = ssh_argv.direct_command_argv(self.host, line, ssh=self.ssh)
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=None if self.env is None else dict(self.env))
        except OSError as exc:
            raise HopError(f"cannot run {self.ssh} (a command on {self.host}): {exc.strerror}") from exc

    def forward(self, obj: Mapping[str, Any], spec: str) -> None:
        """Start the tunnel ssh and wait until its laptop end listens (after the user authenticated), or it
        exited: its reason, and whether the credentials were refused. A live tunnel of `spec` is kept."""
        current = self.tunnel
        if current is not None and current.spec == spec and current.process.poll() is None:
            return
        self._end()
        tunnel = obj["tunnel"]
        # as session.SshSession.master_for: a node's own 127.0.0.1 through the login node, else from HOST
        jumped = bool(tunnel.get("jump")) and obj.get("bind") != "node"
        target = str(tunnel["target"]) if jumped else self.host
        argv = ssh_argv.direct_tunnel_argv(spec, target, jump=self.host if jumped else "", ssh=self.ssh)
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open as long as the tunnel runs; closed in _end)
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                       env=None if self.env is None else dict(self.env))
        except OSError as exc:
            log.close()
            raise HopError(f"cannot run {self.ssh} (the tunnel to {target}): {exc.strerror}") from exc
        self.tunnel = _Tunnel(spec, process, log)
        port = int(spec.split(":")[1])
        deadline = time.monotonic() + LOGIN_TIMEOUT
        while process.poll() is None:
            if _listening(port):
                return
            if time.monotonic() > deadline:
                self._end()
                raise HopError(f"ssh to {target} did not finish logging in within {LOGIN_TIMEOUT:g} s; "
                               "it may be waiting for an answer nobody gave")
            time.sleep(POLL)
        log.seek(0)
        text = log.read().decode(errors="replace")
        self._end()
        said = last_line(text)
        raise LoginFailed(f"ssh could not open the tunnel {spec} to {target}: {said}", detail=text,
                          auth=is_auth_failure(said))

    def connected(self) -> bool:
        return self.tunnel is not None and self.tunnel.process.poll() is None

    def _end(self) -> None:
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is None:
            return
        if tunnel.process.poll() is None:
            tunnel.process.terminate()
            try:
                tunnel.process.wait(10)
            except subprocess.TimeoutExpired:
                tunnel.process.kill()
        tunnel.process.wait()
        with contextlib.suppress(OSError):
            tunnel.log.close()

    def close(self) -> None:
        self._end()
