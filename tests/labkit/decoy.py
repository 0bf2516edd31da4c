"""Decoy processes named like Jupyter that log every signal they catch, and records that point at them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.user import TestUser

# Catches every signal a cleanup could send (SIGKILL cannot be caught: then it is no longer alive).
DECOY = r"""
import signal, sys, time
log = sys.argv[1]
def caught(number, frame):
    with open(log, "a") as handle:
        handle.write(f"{number}\n")
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(sig, caught)
open(log + ".ready", "w").close()
while True:
    time.sleep(1)
"""
MARKER = signal.SIGUSR2
# What the decoys look like in `ps`: a notebook server of another launch, and a kernel.
SERVER_ARGS = ("jupyter-lab", "--config=/home/x/.config/jupyter-hop/servers/p/jupyter_server_config.py")
KERNEL_ARGS = ("-m", "ipykernel_launcher", "-f", "/home/x/.local/share/jupyter/runtime/kernel-1.json")


@dataclass
class Decoy:
    process: subprocess.Popen[str]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def caught(self) -> list[int]:
        text = self.log.read_text() if self.log.exists() else ""
        return [int(line) for line in text.split()]

    def alive(self) -> bool:
        return self.process.poll() is None

    def untouched(self) -> bool:
        """Still running, and it caught no signal but our marker.

        Signals are asynchronous: a marker sent now is handled only after any signal delivered before it, so once
        the marker is logged, nothing sent earlier can still be on its way.
        """
        if not self.alive():
            return False
        before = self.caught().count(MARKER)
        os.kill(self.pid, MARKER)
        deadline = time.monotonic() + 10
        while self.caught().count(MARKER) == before:
            assert self.alive() and time.monotonic() < deadline, "decoy did not log the marker signal"
            time.sleep(0.01)
        return self.alive() and set(self.caught()) == {MARKER}

    def identity(self) -> dict[str, Any]:
        """The identity fields a record would hold for this process (read as root from /proc)."""
        return identity(self.pid)

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=10)


def identity(pid: int) -> dict[str, Any]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    argv = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return {"pid_start": ticks, "argv": argv, "boot_id": boot}


def start_decoy(user: TestUser, directory: Path, name: str, args: tuple[str, ...] = SERVER_ARGS) -> Decoy:
    """A process of `user` whose argv contains "jupyter"; ready once it has installed its signal handlers."""
    log = directory / f"{name}.signals"
    process = user.popen([sys.executable, "-c", DECOY, str(log), *args], {}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    ready = Path(f"{log}.ready")
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"decoy {name} did not start"
        time.sleep(0.02)
    return Decoy(process, log)


def decoy_dir(user: TestUser, base: Path) -> Path:
    """A directory both users can write their signal logs to."""
    directory = base / "decoys"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o1777)
    return directory


def run_record(host: str, pid: int, server_pid: int, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "run", "profile": "p", "host": host, "bind": "localhost", "address": "127.0.0.1",
        "port": 41234, "sock": "", "base_url": "/", "app": "server", "pid": pid, "server_pid": server_pid,
        "started": time.time() - 90, "local_port": 8888,
    }
    record.update(extra)
    return record


def write_record(user: TestUser, records_dir: Path, name: str, record: dict[str, object]) -> Path:
    """A record file owned by `user` as its launcher would leave it (0600 in a 0700 dir)."""
    for directory in (records_dir.parent, records_dir):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(directory, user.uid, user.gid)
    path = records_dir / name
    path.write_text(json.dumps(record))
    path.chmod(0o600)
    os.chown(path, user.uid, user.gid)
    return path


def dead_pid() -> int:
    """A pid that no process has now (a child that was reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, 0)
        raise AssertionError("pid reused at once")
    return process.pid

