"""The server as a child process: its output passed on and kept, stop signals forwarded, a bounded stop."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from jupyter_hop.fsutil import LOG_TAIL_LINES
from jupyter_hop.server.serverlog import ServerOutput

STOP_GRACE = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class Launch:
    """One running child server and what the launcher knows about it."""

    process: subprocess.Popen[bytes]
    runtime_dir: Path
    output: ServerOutput
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LOG_TAIL_LINES))
    pump: threading.Thread | None = None

    def log_tail(self) -> str:
        if self.pump:
            self.pump.join(timeout=1.0)
        return "".join(self.tail)


def _pump(stream: IO[bytes], tail: collections.deque[str], output: ServerOutput) -> None:
    """Pass the server's output on (to the journal, job log, or log file and terminal) and keep the last lines."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        tail.append(line)
        output.write(line)
    stream.close()


class Stopper:
    """Turns SIGTERM, SIGINT and SIGHUP into one clean SIGTERM to the server."""

    def __init__(self) -> None:
        self.requested = False
        self.child: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.child and self.child.poll() is None:
            # SIGINT without a terminal makes Jupyter exit without cleanup; SIGTERM is its clean stop.
            self.child.send_signal(signal.SIGTERM)


def sd_notify(message: str, env: dict[str, str] | os._Environ[str]) -> None:
    """Tell systemd about readiness, only when this launcher is the unit's main process.

    JUPYTER_HOP_UNIT is set by our unit file alone; a NOTIFY_SOCKET inherited from elsewhere (a shell inside
    some other unit, a variable another user's tool set) is not ours to tell where the server is.
    """
    address = env.get("NOTIFY_SOCKET")
    if not address or not env.get("JUPYTER_HOP_UNIT"):
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.connect(address)
        sock.sendall(message.encode())


def die_with_parent() -> Callable[[], None] | None:
    """A preexec hook that makes the kernel send the child SIGTERM when the launcher dies, even by SIGKILL
    (nothing of ours could stop it then, and `list` would find only a stale record); None where that is not
    possible, which is then left to the stale-record cleanup.

    The kernel sends the signal when the *thread* that forked exits, not the process: fork from the main thread
    only, which lives as long as the launcher does.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes  # here: only the launcher pays for it

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the launcher died between fork and prctl: no signal will ever come
            os._exit(1)

    return hook


def start(argv: list[str], env: dict[str, str], runtime_dir: Path, output: ServerOutput) -> Launch:
    """Start the server with its output going to `output`."""
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        preexec_fn=die_with_parent(),
    )
    launch = Launch(process, runtime_dir, output)
    assert process.stdout is not None
    launch.pump = threading.Thread(target=_pump, args=(process.stdout, launch.tail, output), daemon=True)
    launch.pump.start()
    return launch


def wait_exit(launch: Launch, stopper: Stopper) -> int:
    """Wait for the server to exit; after a stop request, give it STOP_GRACE seconds before SIGKILL."""
    stop_deadline: float | None = None
    while True:
        try:
            return launch.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stopper.requested:
            if stop_deadline is None:
                sd_notify("STOPPING=1", os.environ)
                stop_deadline = time.monotonic() + STOP_GRACE
            elif time.monotonic() > stop_deadline:
                launch.process.kill()


def finish(launch: Launch) -> None:
    if launch.process.poll() is None:
        launch.process.terminate()
        try:
            launch.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            launch.process.kill()
            launch.process.wait()
    launch.log_tail()  # its last lines drained into the log file before the launcher closes that


def tail_text(launch: Launch) -> str:
    tail = launch.log_tail().rstrip("\n")
    text = "Last lines of the server log:\n" + tail if tail else "(the server printed nothing)"
    where = launch.output.log_path
    return f"{text}\nThe whole server log: {where}" if where else text
