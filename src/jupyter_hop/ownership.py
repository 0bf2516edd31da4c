"""Whether the socket a server answers on is our child's: /proc/net/tcp listeners matched to the child's fds."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from jupyter_hop.errors import HopError

LISTEN = "0A"  # TCP_LISTEN in the `st` column of /proc/net/tcp
TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")


class NotOurs(HopError):
    """What answered on the server's address is not the server we started."""


@dataclass(frozen=True)
class Listener:
    address: str  # normalised: an IPv4-mapped IPv6 address is shown as IPv4
    port: int
    uid: int
    inode: int


def decode_address(hex_address: str, byteorder: str = sys.byteorder) -> str:
    """/proc/net/tcp{,6} print the address as 32-bit words, each in the kernel's (host) byte order."""
    raw = bytes.fromhex(hex_address)
    words = [raw[i:i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(w[::-1] if byteorder == "little" else w for w in words)
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def parse_listeners(text: str, byteorder: str = sys.byteorder) -> list[Listener]:
    """The listening sockets in the text of /proc/net/tcp or /proc/net/tcp6 (the header line is skipped)."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        address, _, port = fields[1].partition(":")
        found.append(Listener(decode_address(address, byteorder), int(port, 16), int(fields[7]), int(fields[9])))
    return found


def reaching(listeners: list[Listener], address: str, port: int) -> list[Listener]:
    """The listeners a connection to (address, port) could land on: that address or the IPv4 wildcard.

    `[::]` is left out on purpose: a dual-stack `[::]:PORT` would have made our bind on an IPv4 address fail,
    so one that coexists with our server is IPv6-only and never receives the IPv4 connections we make.
    """
    wildcard = "0.0.0.0" if ipaddress.ip_address(address).version == 4 else "::"
    return [item for item in listeners if item.port == port and item.address in (address, wildcard)]


def socket_inodes(pid: int) -> set[int] | None:
    """Inodes of the sockets process `pid` holds, from /proc/PID/fd; None when its fds cannot be read."""
    base = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(base)
    except OSError:
        return None
    inodes = set()
    for name in names:
        try:
            match = _SOCKET_LINK.match(os.readlink(base / name))
        except OSError:  # that fd was closed meanwhile
            continue
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def read_listeners(tables: tuple[str, ...] = TCP_TABLES) -> list[Listener]:
    found = []
    for table in tables:
        try:
            text = Path(table).read_text(encoding="ascii", errors="replace")
        except OSError:  # no tcp6 where IPv6 is off
            continue
        found.extend(parse_listeners(text))
    return found


def foreign(candidates: list[Listener], inodes: set[int] | None, uid: int) -> list[Listener]:
    """The candidates that are not the child's sockets (or, when its fds are unreadable, not of our uid)."""
    if inodes is None:
        return [item for item in candidates if item.uid != uid]
    return [item for item in candidates if item.inode not in inodes]


def check(pid: int, runtime_dir: Path, address: str, port: int, sock: str) -> None:
    """Raise NotOurs unless what answers on the server's address is the socket of process `pid`.

    Otherwise the instructions would send the user's browser, and its password, to another user's process."""
    if sock:
        check_socket_file(Path(sock), runtime_dir)
    else:
        check_listener(pid, address, port)


def check_listener(pid: int, address: str, port: int) -> None:
    """Raise NotOurs unless every socket listening on (address, port) is one that process `pid` holds."""
    if not Path("/proc/net/tcp").exists():  # no procfs (not Linux): nothing to compare with
        return
    candidates = reaching(read_listeners(), address, port)
    inodes = socket_inodes(pid)
    others = foreign(candidates, inodes, os.geteuid())
    if others or not candidates:
        uid = others[0].uid if others else None
        raise NotOurs(_squatter_message(address, port, uid))


def _squatter_message(address: str, port: int, uid: int | None) -> str:
    if uid is None:
        who = "another process"
    elif uid == os.geteuid():
        who = f"another process of yours (uid {uid})"
    else:
        who = f"another process (uid {uid})"
    return (
        f"port {port} on {address} is held by {who}, not by the Jupyter server just started, which was stopped; "
        "choose another server.port, or 0 (automatic)"
    )


def check_socket_file(sock: Path, runtime_dir: Path) -> None:
    """A Unix socket is ours if it lies in our private (0700) runtime dir and we own it: nobody else can
    create a file in that directory."""
    try:
        folder, entry = runtime_dir.lstat(), sock.lstat()
    except OSError as exc:
        raise NotOurs(f"the server's socket {sock} cannot be checked ({exc.strerror}); the server was stopped") from exc
    private = stat.S_ISDIR(folder.st_mode) and folder.st_uid == os.geteuid() and not folder.st_mode & 0o077
    if sock.parent != runtime_dir or not private:
        raise NotOurs(f"the server's socket {sock} is not in this launch's private runtime dir; the server was stopped")
    if not stat.S_ISSOCK(entry.st_mode) or entry.st_uid != os.geteuid():
        raise NotOurs(
            f"{sock} is not a socket of yours (uid {entry.st_uid}); another process holds it, the server was stopped"
        )

