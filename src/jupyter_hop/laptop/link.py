"""What `connect` needs from ssh, whichever way ssh gets there (portable: no POSIX-only import).

Two kinds: session.SshSession (POSIX: one private master carries everything) and direct.DirectSession (an
OpenSSH without ControlMaster, as on Windows: every remote command its own login, the tunnel one more ssh).
connect talks to either through this base class; the remote's jupyter-hop is started the same way by both.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from jupyter_hop.errors import HopError
from jupyter_hop.laptop import hosts, remote, sshconfig
from jupyter_hop.paths import Paths

# What ssh says when the server refused the user's credentials (not the network, not the host key): a
# supervisor must stop retrying then, instead of asking again in a loop.
AUTH_FAILURES = ("Permission denied", "Too many authentication failures", "Authentication failed")


class LoginFailed(HopError):
    """ssh could not log in; `auth` says whether the credentials were refused."""

    def __init__(self, message: str, *, detail: str, auth: bool) -> None:
        super().__init__(message, detail=detail)
        self.auth = auth


def is_auth_failure(said: str) -> bool:
    return any(marker in said for marker in AUTH_FAILURES)


def last_line(text: str) -> str:
    """The line of ssh's output that says why (its last non-empty one), or a plain fallback."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "ssh said nothing (see above)"


class Link:
    """The remote commands, the tunnel's forward and whether the connection still stands, for one HOST."""

    notice = ""  # said once before the first ssh runs (how many times ssh may ask)
    parallel = True  # two remote commands may run at once without two logins asking on the terminal together

    def __init__(self, host: str, *, paths: Paths | None = None, ssh: str = "ssh",
                 env: Mapping[str, str] | None = None, err: IO[str] | None = None) -> None:
        self.host = sshconfig.check_host(host)
        self.ssh = ssh
        self.env = env
        self._paths = paths or Paths.from_env(env)
        self._err = err or sys.stderr

    def run(self, line: str, *, timeout: float | None, what: str) -> subprocess.CompletedProcess[str]:
        """Run one remote command line on HOST; 255 (ssh's own failure) is a HopError."""
        raise NotImplementedError

    def popen(self, line: str) -> subprocess.Popen[str]:
        """Start one remote command line on HOST, stdout and stderr piped (read as the lines come)."""
        raise NotImplementedError

    def forward(self, obj: Mapping[str, Any], spec: str) -> None:
        """Open (or re-open) the -L forward `spec` (argv.forward_spec) to the server of the remote's object,
        from wherever its far end is reachable; one that is open already stays as it is."""
        raise NotImplementedError

    def connected(self) -> bool:
        """The connection under the forward stands (False: re-opening it may ask the user again)."""
        raise NotImplementedError

    def close(self) -> None:
        """End every ssh this link started and remove what it created."""
        raise NotImplementedError

    def jupyter_hop(
        self, words: Sequence[str], *, timeout: float | None, what: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the remote jupyter-hop with `words` on HOST, through its login shell and the host's remote_command
        from hosts.toml; exit 127 (not found) is a HopError saying what to install or set."""
        result = self.run(self.hop_line(words), timeout=timeout, what=what)
        if result.returncode == remote.NOT_FOUND:
            raise self.not_found(result.stderr)
        return result

    def hop_line(self, words: Sequence[str]) -> str:
        """The remote line that runs jupyter-hop with `words` (see jupyter_hop())."""
        return remote.remote_line(words, hosts.for_host(self._paths, self.host).remote_command)

    def not_found(self, stderr: str) -> HopError:
        return remote.not_found(self.host, hosts.hosts_file(self._paths), stderr)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
