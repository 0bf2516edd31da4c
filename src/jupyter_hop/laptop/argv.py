"""The ssh command lines of `connect`, as pure functions: the private master, its clients, forwards, jumps.

Our master reads the user's config in full (host, user, keys, proxies, host-key checking): that is where the
user's OpenSSH does everything that matters. Its clients only talk to the master's socket, so they read no
config (`-F none`): a RemoteCommand, RequestTTY or LocalForward meant for interactive logins must not ride on
every command we run, and a client that cannot reach the socket must fail instead of logging in again on its
own (ProxyCommand=false turns that fallback into an immediate error: no second password prompt).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from jupyter_hop.errors import HopError

MuxOp = Literal["check", "exit", "forward", "cancel"]
LOCAL_ADDRESS = "127.0.0.1"  # the laptop end, always: never a wildcard, never [::1] that another user may hold

# The far end of a forward: ADDR:PORT (an IPv4 address, a name, or [IPv6]) or an absolute socket path.
_REMOTE_TCP = re.compile(r"(\[[0-9A-Fa-f:.%A-Za-z]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*):([0-9]{1,5})")
_REMOTE_SOCKET = re.compile(r"/[^\s:]*")


def escape_tokens(text: str) -> str:
    """ssh expands %-tokens in ControlPath and ProxyCommand: a literal % in our own paths must be %%."""
    return text.replace("%", "%%")


def control_template(control_dir: Path) -> str:
    """ControlPath=DIR/%C: ssh names the socket by a hash of host, port and user (40 characters, any host
    name length); DIR's own % characters, if any, are escaped so only %C is a token."""
    return f"{escape_tokens(str(control_dir))}/%C"


def master_argv(host: str, control_dir: Path, *, ssh: str = "ssh", options: Sequence[str] = ()) -> list[str]:
    """Our private master to `host`, in the foreground (connect owns the process and waits for its socket).

    ControlMaster=yes only with our own ControlPath; ControlPersist=no and ForkAfterAuthentication=no override a
    user's `ControlPersist yes` or `-f`-style config, which would detach the master from us; -N: no remote
    shell; ClearAllForwardings: the user's configured forwards stay with their own sessions. Host-key
    checking, GatewayPorts and authentication are left exactly as the user's config has them.
    """
    return [
        ssh, "-M", "-N",
        "-o", f"ControlPath={control_template(control_dir)}",
        "-o", "ControlMaster=yes",
        "-o", "ControlPersist=no",
        "-o", "ForkAfterAuthentication=no",
        "-o", "ClearAllForwardings=yes",
        *options,
        host,
    ]


def _client(control_path: Path, *, ssh: str) -> list[str]:
    return [ssh, "-F", "none", "-S", str(control_path), "-o", "ControlMaster=no", "-o", "ProxyCommand=false"]


def mux_argv(host: str, control_path: Path, op: MuxOp, forward: str = "", *, ssh: str = "ssh") -> list[str]:
    """`ssh -O OP` to our master: check, exit, or forward/cancel one `-L` spec (see forward_spec)."""
    if (op in ("forward", "cancel")) != bool(forward):
        raise ValueError(f"-O {op} {'needs' if op in ('forward', 'cancel') else 'takes no'} forward spec")
    return [*_client(control_path, ssh=ssh), "-O", op, *(["-L", forward] if forward else []), host]


def command_argv(host: str, control_path: Path, remote_line: str, *, ssh: str = "ssh") -> list[str]:
    """Run one remote command line over the master: no tty (clean output), stdin from /dev/null (-n)."""
    return [*_client(control_path, ssh=ssh), "-T", "-n", host, "--", remote_line]


def jump_options(login: str, login_control_path: Path, *, ssh: str = "ssh") -> list[str]:
    """Options for a master to a node behind `login`, tunnelled through the login master (`-W %h:%p` as its
    client): no second connection to the login node, so no second authentication there.

    On the command line, ProxyCommand wins over a ProxyJump in the user's config (the first value obtained is
    used), which would open a new connection to the login node.
    """
    proxy = [*_client(login_control_path, ssh=ssh), "-W", "%h:%p", login]
    # ssh runs ProxyCommand through /bin/sh after expanding %-tokens: quote for sh, then escape our own %
    words = [escape_tokens(shlex.quote(word)) if word != "%h:%p" else word for word in proxy]
    return ["-o", "ProxyCommand=" + " ".join(words)]


def check_remote(remote: str) -> str:
    """The far end of a forward as the remote protocol gives it: ADDR:PORT, [IPv6]:PORT or /socket/path."""
    tcp = _REMOTE_TCP.fullmatch(remote)
    if tcp and 1 <= int(tcp.group(2)) <= 65535:
        return remote
    if _REMOTE_SOCKET.fullmatch(remote) and remote != "/":
        return remote
    raise HopError(
        f"bad forward target {remote!r}: expected ADDRESS:PORT (127.0.0.1:8888, [::1]:8888) or an absolute "
        "Unix socket path"
    )


def forward_spec(local_port: int, remote: str) -> str:
    """The -L spec: always bound on the laptop's 127.0.0.1."""
    if not 1 <= local_port <= 65535:
        raise HopError(f"bad laptop port {local_port}: expected 1 to 65535")
    return f"{LOCAL_ADDRESS}:{local_port}:{check_remote(remote)}"


# Without ControlMaster (Windows' OpenSSH, see direct.py) every ssh is a login of its own: none may use or start
# a master the user's config asks for (on Windows it cannot work; elsewhere it would not be ours to end).
NO_MUX = ("-o", "ControlMaster=no", "-o", "ControlPath=none")


def direct_command_argv(host: str, remote_line: str, *, ssh: str = "ssh") -> list[str]:
    """One remote command line as a login of its own: the user's config in full (keys, proxies, host-key
    checking), no tty, stdin from /dev/null; the user's configured forwards stay with their own sessions."""
    return [ssh, *NO_MUX, "-o", "ClearAllForwardings=yes", "-T", "-n", host, "--", remote_line]


def direct_tunnel_argv(spec: str, target: str, *, jump: str = "", ssh: str = "ssh") -> list[str]:
    """The tunnel as an ssh of its own, as the printed instructions have it (`ssh -N -J LOGIN -L SPEC NODE`):
    ExitOnForwardFailure, so a laptop port it cannot bind ends it instead of leaving a tunnel-less login."""
    return [ssh, "-N", *NO_MUX, "-o", "ExitOnForwardFailure=yes", *(["-J", jump] if jump else []), "-L", spec,
            target]
