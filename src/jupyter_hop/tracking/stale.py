"""Judging records whose server is gone and removing them, never touching another host's or user's processes."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_hop.paths import Paths
from jupyter_hop.tracking import records
from jupyter_hop.tracking.liveness import is_here, launcher_alive, orphan_server
from jupyter_hop.tracking.place import is_this_cluster, is_this_host
from jupyter_hop.tracking.records import Record

if TYPE_CHECKING:
    from jupyter_hop.tracking.sources import QueuedJob, UnitState


def remove_stale(paths: Paths, path: Path, record: Record) -> str:
    """Remove a stale record (unless a new launcher replaced it meanwhile); what was done, in words."""
    done = []
    with records.locked(paths):
        current = records.read(path)
        if current is not None and current.same_launch(record):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            done.append("record removed")
    if record.kind == "run" and is_here(record):
        # Its launcher was killed (not stopped), so nothing else will ever stop the server it started,
        # and without the record nobody would find it. Only the very process recorded is signalled.
        orphan = orphan_server(record)
        if orphan is not None and orphan.send(signal.SIGTERM):
            done.append(f"its orphaned server (pid {orphan.pid}) sent SIGTERM")
    return "; ".join(done)


def stale_reason(record: Record, units: dict[str, UnitState] | None, jobs: dict[str, QueuedJob] | None) -> str:
    """Why a record no longer describes a live server, or "" while it does (or cannot be checked here).

    Records of another host or cluster are never judged here: their processes cannot be seen, and job ids of
    another cluster name other jobs in this cluster's queue.
    """
    here = is_here(record)
    if record.kind == "job" and not is_this_cluster(record.cluster):
        return ""
    if here and record.kind != "job" and not launcher_alive(record):
        return f"launcher pid {record.pid} is gone"
    if record.kind == "unit" and units is not None and here:
        unit = units.get(record.unit)
        # activating/deactivating: systemd has not yet seen READY=1 or is stopping it; the launcher is alive
        if unit is None or unit.active not in ("active", "activating", "deactivating", "reloading"):
            return f"unit {record.unit} is {unit.active if unit else 'not loaded'}"
    if record.kind == "job" and jobs is not None:
        queued = jobs.get(record.job_id)
        if queued is None:
            return f"job {record.job_id} is no longer in the queue"
        if queued.job.state not in ("RUNNING", "CONFIGURING", "COMPLETING"):
            return f"job {record.job_id} is {queued.job.state}"
    if record.kind == "job" and here and record.pid and not launcher_alive(record):
        return f"launcher pid {record.pid} is gone"
    return ""


def elsewhere(record: Record) -> str:
    """The note of a record this host cannot check, or "" for one of this host (and cluster)."""
    if record.kind == "job" and not is_this_cluster(record.cluster):
        return f"on cluster {record.cluster}: not checked"
    if record.kind != "job" and not is_this_host(record.host):
        return f"on {record.host}: not checked"
    return ""
