"""Whether the processes a record names still run on this host: only the very processes it recorded count."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jupyter_hop.tracking.place import is_this_cluster, is_this_host
from jupyter_hop.tracking.procid import ProcessId, boot_id
from jupyter_hop.tracking.records import Record

# Only for records without an identity (older versions): /proc start times are whole seconds of boot time plus
# clock ticks, and NTP steps since boot shift them a little.
LEGACY_START_SLACK = 5.0


def is_here(record: Record) -> bool:
    """Whether the record's processes would run on this machine: its host, and for a job also its cluster
    (node names such as c001 repeat between clusters that share a home)."""
    return is_this_host(record.host) and (record.kind != "job" or is_this_cluster(record.cluster))


def launcher_alive(record: Record) -> bool:
    """Whether the record's launcher still runs here (callers check `is_here` first).

    With an identity: exactly the recorded process (pid, start ticks, boot, argv). Without one (an older
    version's record): alive unless its pid is clearly gone, i.e. no process of ours has it or it started after
    the record was written; such a record is kept rather than trusted, and never signalled.
    """
    launcher = record.launcher_id
    if launcher is not None:
        return launcher.matches()
    if record.boot_id and record.boot_id != boot_id():
        return False  # written before this machine rebooted
    return _legacy_alive(record.pid, record.started)


def _legacy_alive(pid: int, started: float) -> bool:
    if pid <= 0:
        return False
    if not Path("/proc").is_dir():  # no procfs: the pid is all there is to go on
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # another user's process is not our launcher
        return True
    found = ProcessId.of(pid)
    if found is None:
        return False
    uptime = _uptime()
    if uptime is None:
        return True
    start = time.time() - uptime + found.start_ticks / os.sysconf("SC_CLK_TCK")
    return start <= started + LEGACY_START_SLACK


def _uptime() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def orphan_server(record: Record) -> ProcessId | None:
    """The record's Jupyter server if it still runs (it outlived its launcher), else None.

    Only the exact process the launcher recorded qualifies: a kernel, a `sleep` named jupyter, a server of
    another launch or another user's process that now has the pid is never returned, so never signalled.
    """
    server = record.server_id
    return server if server is not None and server.matches() else None
