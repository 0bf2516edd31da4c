"""Timing helpers for the benchmarks: wall time of a command, and of a server until its first HTTP 200."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds from spawn to exit
    cpu: float  # user + system seconds of the process and its children: steadier than wall on a busy machine


def time_command(argv: Sequence[str], env: Mapping[str, str], cwd: Path, stdin: str | None = None) -> Timing | None:
    """Wall and CPU time of one run, or None when the command failed (the caller reports it, never asserts)."""
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a chatty command cannot block on it
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        if stdin is not None and proc.stdin:
            proc.stdin.write(stdin)
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            print(f"  ! {' '.join(argv[:4])}... exited {proc.returncode}: {err.read().strip()[-300:]}")
            return None
    return Timing(elapsed, usage.ru_utime + usage.ru_stime)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status of GET url, or None when nothing answers yet."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def poll_until_ok(url: str, deadline: float, interval: float = 0.005) -> float | None:
    """Poll GET url until it answers 200 or time.monotonic() passes `deadline`; the perf_counter time of the 200."""
    while time.monotonic() < deadline:
        if http_status(url) == 200:
            return time.perf_counter()
        time.sleep(interval)
    return None


def time_until_ready(
    argv: Sequence[str],
    url: str,
    env: Mapping[str, str],
    cwd: Path,
    *,
    timeout: float = 120,
    stop: signal.Signals = signal.SIGTERM,
    stdout: int | None = subprocess.DEVNULL,
) -> float | None:
    """Start a process, poll `url` until it answers 200, stop the process; seconds from spawn to that 200.

    For launch-to-ready figures (`jupyter-hop run` against a bare `jupyter server`). The process is started in
    its own session and the whole group is signalled, so a launcher's child server stops too. None when the
    process exits first or nothing answers before the deadline.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ready: float | None = None
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            ready = poll_until_ok(url, min(deadline, time.monotonic() + 0.5))
            if ready is not None:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, stop)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return None if ready is None else ready - start


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
