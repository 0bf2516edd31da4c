"""Whether the processes a record names still run on this host, robust against recycled pids."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from jupyter_hop.tracking.records import Record

# /proc start times are whole seconds of boot time plus clock ticks; NTP steps since boot shift them a little.
START_SLACK = 5.0


def this_host() -> str:
    return socket.gethostname()


def is_this_host(host: str) -> bool:
    """Records of runs and units carry the full host name, job records Slurm's short node name."""
    here = this_host()
    return host in (here, here.split(".")[0])


def _boot_time() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return None


def process_start(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), from /proc; None when it does not run or is not ours."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return None
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    boot = _boot_time()
    if boot is None:
        return None
    # The command name may contain spaces and parentheses: the fields start after the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # exited, only waiting for its parent to collect the exit status
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def launcher_alive(record: Record) -> bool:
    """Whether the record's launcher still runs: its pid exists, is ours, and started before the record did.

    The start-time check keeps a recycled pid (a new, unrelated process) from passing for the launcher.
    """
    if not Path("/proc").is_dir():  # no procfs: the pid is all there is to go on
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        return True
    start = process_start(record.pid)
    return start is not None and start <= record.started + START_SLACK


def orphan_server(record: Record) -> int:
    """The pid of the record's Jupyter server if it outlived its launcher, else 0."""
    start = process_start(record.server_pid) if record.server_pid else None
    if start is None or start < record.started - START_SLACK:
        return 0
    try:
        cmdline = Path(f"/proc/{record.server_pid}/cmdline").read_bytes()
    except OSError:
        return 0
    return record.server_pid if b"jupyter" in cmdline else 0
