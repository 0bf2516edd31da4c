"""Proof that a forward reaches a live web server: an HTTP GET through it, polled until a deadline.

ssh accepts the laptop end of a forward even when nothing listens at the far end (it then closes the
connection), so only an HTTP answer proves the tunnel.
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

from jupyter_hop.errors import HopError
from jupyter_hop.server.probe import get_status

POLL = 0.1


def status(url: str, *, timeout: float = 3.0) -> int | None:
    """The HTTP status of GET url (redirects not followed), or None when no HTTP server answered."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"not an http://HOST:PORT/ URL: {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    return get_status(conn, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))


def wait_answers(url: str, *, timeout: float, what: str = "the server") -> int:
    """Poll GET url until any HTTP status comes back (a 302 to a login page counts: the far end answers)."""
    deadline = time.monotonic() + timeout
    while True:
        code = status(url, timeout=min(3.0, max(0.1, deadline - time.monotonic())))
        if code is not None:
            return code
        if time.monotonic() > deadline:
            raise HopError(f"{what} did not answer at {url} within {timeout:g} s through the tunnel")
        time.sleep(POLL)
