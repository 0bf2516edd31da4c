"""Asking a Jupyter server whether it answers: GET {base_url}api over TCP or a Unix socket, no auth needed."""

from __future__ import annotations

import http.client
import socket


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def api_status(*, address: str, port: int, sock: str, base_url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET {base_url}api, or None when nothing answers."""
    conn: http.client.HTTPConnection
    if sock:
        conn = _UnixConnection(sock, timeout)
    else:
        host = address if address not in ("", "0.0.0.0") else "127.0.0.1"
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    return get_status(conn, base_url.rstrip("/") + "/api")


def get_status(conn: http.client.HTTPConnection, path: str) -> int | None:
    """The status of GET path on `conn` (closed after), or None when no HTTP server answered."""
    try:
        # Jupyter checks the Host header on loopback binds: "localhost" is what a tunnel and a browser present
        conn.request("GET", path, headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def answers(*, address: str, port: int, sock: str, base_url: str, timeout: float = 2.0) -> bool:
    return api_status(address=address, port=port, sock=sock, base_url=base_url, timeout=timeout) == 200
