"""The readiness ownership check in-process: is the socket listening on the port one of the child's? (The issue
allows it a few milliseconds; `jupyter-hop run` includes it once, after the server's first 200.)"""

from __future__ import annotations

import atexit
import subprocess
import sys
import time

from run import Bench, Case

from jupyter_hop.server import ownership

LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True); sys.stdin.read()\n"
)
CALLS = 50  # per round: one call is too short for the timer's resolution to matter, but report per call


def cases(bench: Bench) -> list[Case]:
    child = subprocess.Popen([sys.executable, "-c", LISTEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    atexit.register(child.kill)  # the bench has no teardown for plugins; the listener must not outlive it
    assert child.stdout is not None
    port = int(child.stdout.readline())

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            ownership.check_listener(child.pid, "127.0.0.1", port)
        return (time.perf_counter() - start) / CALLS

    return [Case("ownership check (one call, in process)", measure, against=None)]
