"""The laptop end of the tunnel: the port the user wants on 127.0.0.1, else the next free one."""

from __future__ import annotations

import errno
import socket

from jupyter_hop.errors import HopError
from jupyter_hop.laptop.argv import LOCAL_ADDRESS

SPAN = 20  # how many ports from the wanted one are tried


def is_free(port: int) -> bool:
    """Whether ssh could bind 127.0.0.1:port now. SO_REUSEADDR as ssh sets it: a port whose last connection is
    in TIME_WAIT is free to ssh, one with a listener (anyone's, also on 0.0.0.0) is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCAL_ADDRESS, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise HopError(f"cannot test laptop port {port} on {LOCAL_ADDRESS}: {exc.strerror}") from exc
    return True


def pick(wanted: int, *, span: int = SPAN, skip: frozenset[int] = frozenset()) -> int:
    """`wanted` when it is free, else the next free port above it (within `span` ports); `skip`: ports that a
    forward already failed to bind (taken between our test and ssh's bind)."""
    if not 1024 <= wanted <= 65535:
        raise HopError(f"bad laptop port {wanted}: expected 1024 to 65535")
    last = min(wanted + span - 1, 65535)
    for port in range(wanted, last + 1):
        if port not in skip and is_free(port):
            return port
    raise HopError(f"no free laptop port on {LOCAL_ADDRESS} from {wanted} to {last}: other programs hold them all; "
                   "ask for another port")
