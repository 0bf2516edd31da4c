"""Log in to Jupyter with a password as a browser does (xsrf cookie, form POST), over TCP or a Unix socket."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the server's `sock` bind mode)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.socket_path)
        self.sock = s


@dataclass
class Session:
    """A cookie jar for one server: `base_url` like http://localhost:8888/, or a socket path (+ base path)."""

    base_url: str = ""
    socket_path: str = ""
    timeout: float = 10.0
    cookies: dict[str, str] = field(default_factory=dict)

    def _connection(self) -> http.client.HTTPConnection:
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path, self.timeout)
        parts = urllib.parse.urlsplit(self.base_url)
        host = parts.hostname or "localhost"
        return http.client.HTTPConnection(host, parts.port or 80, timeout=self.timeout)

    def _path(self, path: str) -> str:
        base = urllib.parse.urlsplit(self.base_url).path if self.base_url else "/"
        if not base.endswith("/"):
            base += "/"
        return base + path.lstrip("/")

    def request(
        self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with the jar's cookies; Set-Cookie goes into the jar; redirects are not followed."""
        conn = self._connection()
        try:
            hdrs = dict(headers or {})
            if self.cookies:
                hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, self._path(path), body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            for value in resp.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for name, morsel in jar.items():
                    self.cookies[name] = morsel.value
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post_login(self, password: str) -> int:
        """GET /login for the _xsrf cookie, then POST the password form; returns the POST's status."""
        status, _, _ = self.request("GET", "login")
        if status != 200:
            raise AssertionError(f"GET login answered {status}")
        xsrf = self.cookies.get("_xsrf")
        if not xsrf:
            raise AssertionError(f"GET login set no _xsrf cookie (cookies: {sorted(self.cookies)})")
        form = urllib.parse.urlencode({"password": password, "_xsrf": xsrf})
        status, _, _ = self.request(
            "POST", "login", form, {"Content-Type": "application/x-www-form-urlencoded", "X-XSRFToken": xsrf}
        )
        return status


def login(base_url: str = "", password: str = "", *, socket_path: str = "", timeout: float = 10.0) -> int:
    """Log in with `password` and return the status of GET api/status with the session cookie (200 when in).

    Raises AssertionError when the login POST is not a redirect or sets no session cookie."""
    session = Session(base_url, socket_path, timeout)
    status = session.post_login(password)
    if status != 302:
        raise AssertionError(f"POST login answered {status}, not 302")
    if not any(name.startswith("username-") for name in session.cookies):
        raise AssertionError(f"POST login set no session cookie (cookies: {sorted(session.cookies)})")
    return session.request("GET", "api/status")[0]


def wrong_password_status(base_url: str = "", password: str = "", *, socket_path: str = "") -> int:
    """Status of the login POST with a wrong password (Jupyter answers 401), and api/status stays 403."""
    session = Session(base_url, socket_path)
    status = session.post_login(password)
    api = session.request("GET", "api/status")[0]
    if api not in (401, 403):
        raise AssertionError(f"after a wrong password api/status answered {api}")
    return status


def wait_http(base_url: str = "", *, socket_path: str = "", path: str = "api", timeout: float = 20.0) -> int:
    """Poll GET path until it answers at all (any status), with a deadline; returns the status."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return Session(base_url, socket_path, timeout=2.0).request("GET", path)[0]
        except (OSError, http.client.HTTPException) as exc:
            last = exc
            time.sleep(0.05)
    raise AssertionError(f"{base_url or socket_path}{path} did not answer within {timeout} s: {last}")
