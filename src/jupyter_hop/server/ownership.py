"""Whether the socket a server answers on is our child's: /proc/net/tcp listeners matched to the child's fds."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import struct
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


# sock_diag (netlink): the kernel lists only the listening sockets on one port, in about 0.1 ms; reading
# /proc/net/tcp walks the whole established-connection hash table on every read, 5-10 ms a file.
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLMSG_ERROR, NLMSG_DONE = 4, 20, 2, 3
NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBxI")  # inet_diag_req_v2: family, protocol, ext, pad, states
_SOCKID = struct.Struct(">HH16s16s")  # inet_diag_sockid, network order: sport, dport, src, dst (+ if, cookie)
_MSG_TAIL = struct.Struct("=IIIII")  # after family/state/timer/retrans + sockid: expires, rqueue, wqueue, uid, inode
_SOCKID_SIZE = 48
TCP_LISTEN_BIT = 1 << 10  # 1 << TCP_LISTEN


def diag_request(family: int, port: int) -> bytes:
    """A sock_diag dump request for the TCP sockets listening on `port` (the kernel filters by source port)."""
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, TCP_LISTEN_BIT)
    body += _SOCKID.pack(port, 0, b"", b"") + b"\0" * 8 + b"\xff" * 8  # interface 0, no cookie
    return _NLMSG.pack(_NLMSG.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 1, 0) + body


def parse_diag(data: bytes) -> tuple[list[Listener], bool]:
    """Listeners in a chunk of sock_diag replies, and whether the dump is done."""
    found: list[Listener] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        body = offset + _NLMSG.size
        if kind == NLMSG_DONE:
            return found, True
        if kind == NLMSG_ERROR:
            raise OSError(-struct.unpack_from("=i", data, body)[0], "sock_diag refused the request")
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSG.size + 4 + _SOCKID_SIZE + _MSG_TAIL.size:
            family, state = data[body], data[body + 1]
            sport, _, src, _ = _SOCKID.unpack_from(data, body + 4)
            *_, uid, inode = _MSG_TAIL.unpack_from(data, body + 4 + _SOCKID_SIZE)
            address = ipaddress.ip_address(src[:4] if family == socket.AF_INET else src)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if state == int(LISTEN, 16):
                found.append(Listener(str(address), sport, uid, inode))
        offset += max((length + 3) & ~3, _NLMSG.size)
    return found, False


def diag_listeners(port: int) -> list[Listener] | None:
    """The TCP listeners on `port` from sock_diag; None where netlink is not available (then /proc)."""
    found: list[Listener] = []
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
            for family in (socket.AF_INET, socket.AF_INET6):
                sock.sendall(diag_request(family, port))
                done = False
                while not done:
                    chunk, done = parse_diag(sock.recv(1 << 16))
                    found.extend(chunk)
    except (OSError, AttributeError):  # AttributeError: no AF_NETLINK on this platform
        return None
    return found


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
    listeners = diag_listeners(port)
    candidates = reaching(read_listeners() if listeners is None else listeners, address, port)
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

