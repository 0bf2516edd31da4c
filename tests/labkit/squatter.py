"""Another user on a shared node: listens on the port of our server on every address it can get, counts who comes."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from labkit.sshlab import stop_process
from labkit.user import TestUser

# Runs as the other user. IPv6 sockets are v6-only, so "::" takes every IPv6 address of the node (::1, link-local,
# global) and leaves the IPv4 ones to their own sockets. Whoever connects gets a fake login page, as an attacker
# who wants the password would serve.
SCRIPT = r"""
import selectors, socket, sys
port, addresses = int(sys.argv[1]), sys.argv[2:]
sel = selectors.DefaultSelector()
for address in addresses:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    # as an attacker would: a connection of an earlier test in TIME_WAIT on the port must not keep it free
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        s.bind((address, port))
        s.listen(16)
    except OSError as exc:
        print("cannot", address, exc.errno, flush=True)
        s.close()
        continue
    sel.register(s, selectors.EVENT_READ)
    print("holds", address, flush=True)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        print("conn", conn.getsockname()[0], flush=True)
        conn.settimeout(2)
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<form>a fake login page</form>")
        except OSError:
            pass
        conn.close()
"""


@dataclass
class Squatter:
    """What the other user got: the addresses it holds, and the local address of every connection it received."""

    log: IO[str]

    def _lines(self) -> list[list[str]]:
        self.log.seek(0)
        return [line.split() for line in self.log.read().splitlines()]

    @property
    def holds(self) -> list[str]:
        return [words[1] for words in self._lines() if words[0] == "holds"]

    @property
    def refused(self) -> list[str]:
        """The addresses it could not listen on, with the errno."""
        return [" ".join(words[1:]) for words in self._lines() if words[0] == "cannot"]

    @property
    def connections(self) -> list[str]:
        return [words[1] for words in self._lines() if words[0] == "conn"]

    def wait_ready(self, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while ["ready"] not in self._lines():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the squatter did not start ({proc.returncode}): {self._lines()}")
            time.sleep(0.02)


@contextmanager
def squatting(
    user: TestUser, port: int, addresses: Sequence[str], prefix: Sequence[str] = ()
) -> Iterator[Squatter]:
    """Listen as `user` on `port` at each of `addresses` that is free (`prefix` puts it into a lab namespace)."""
    with tempfile.TemporaryFile(mode="w+") as log:
        argv = [*prefix, *user.argv(["/usr/bin/python3", "-c", SCRIPT, str(port), *addresses])]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True)
        squatter = Squatter(log)
        try:
            squatter.wait_ready(proc)
            yield squatter
        finally:
            stop_process(proc)
