"""Stopping any server the right way for its kind, and waiting until it is really gone."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.tracking import inventory, liveness, place, records

# The launcher gives Jupyter 10 s after SIGTERM before it kills it; units have TimeoutStopSec=30; Slurm kills
# after KillWait. A stop that takes longer than this has gone wrong.
DEFAULT_TIMEOUT = 60.0
POLL_INTERVAL = 0.05


@dataclass
class Stopped:
    """What `stop` did, for the user to read."""

    key: str
    kind: str
    profile: str
    actions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        what = {"run": "foreground run", "unit": "systemd user unit", "job": "Slurm job"}[self.kind]
        return f"Stopped {what} {self.key} (profile {self.profile}) in {self.seconds:.1f} s: " + "; ".join(
            self.actions
        ) + "."


def resolve(paths: Paths, target: str) -> tuple[inventory.Row, str]:
    """The one row `target` names, and a note when others of that name were passed over; unknown or ambiguous
    targets are one-line errors.

    Stale records are cleaned on the way (as `list` does), so a unit that systemd is restarting is found once,
    not also as its dead launcher's record; a target that names only stale records gets a stale row back.
    When hosts or clusters sharing a home each have one (a profile's unit on two workstations, job 81234 on
    two clusters), the one of this host and cluster is meant.
    """
    listed = inventory.gather(paths, clean=True)
    found = inventory.find(listed, target)
    if found and not any(_local(row) and row.state != "stale" for row in found):
        # The name is only another host's key (its unit of that profile): a server of that profile here is meant.
        found += [row for row in listed.rows if row.profile == target and row not in found and _local(row)]
    if not found:
        raise HopError(
            f"no server {target!r} is known: give a Slurm job id, the profile of a unit, or HOST-PID of a "
            "foreground run, as `jupyter hop list` shows them"
        )
    live = [row for row in found if row.state != "stale"] or found[:1]
    local = [row for row in live if _local(row)]
    note = ""
    if len(live) > 1 and len(local) == 1:
        others = ", ".join(sorted({_where(row) for row in live if row is not local[0]}))
        note = f"the one on this host (another {target!r} runs {others}, left alone)"
        live = local
    if len(live) > 1:
        raise HopError(f"{target!r} names {len(live)} servers ({inventory.keys(live)}); give one of those ids")
    return live[0], note


def _local(row: inventory.Row) -> bool:
    if row.kind == "job":
        return place.is_this_cluster(row.cluster)
    return place.is_this_host(row.host)


def _where(row: inventory.Row) -> str:
    return f"on cluster {row.cluster}" if row.kind == "job" else f"on {row.host}"


def stop(paths: Paths, target: str, *, timeout: float = DEFAULT_TIMEOUT) -> Stopped:
    row, note = resolve(paths, target)
    result = Stopped(row.key, row.kind, row.profile)
    if note:
        result.actions.append(note)
    began = time.monotonic()
    deadline = began + timeout
    if row.state == "stale":
        result.actions.append(f"it was already gone ({row.note})")
    elif row.kind == "run":
        _stop_run(row, result, deadline)
    elif row.kind == "unit":
        _stop_unit(paths, row, result, deadline)
    else:
        _stop_job(paths, row, result, deadline)
    if row.record and row.state != "stale":
        _wait(lambda: not Path(row.record).exists(), deadline, f"the record {row.record} of {row.key} to go away")
        result.actions.append("its record is gone")
    result.seconds = time.monotonic() - began
    return result


def _wait(done: Callable[[], bool], deadline: float, what: str) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise HopError(f"gave up waiting for {what}; `jupyter hop list` shows its state now")
        time.sleep(POLL_INTERVAL)


def _stop_run(row: inventory.Row, result: Stopped, deadline: float) -> None:
    if not place.is_this_host(row.host):
        raise HopError(
            f"{row.key} runs on {row.host}, not on this host ({place.this_host()}): "
            f"log in to {row.host} and run `jupyter hop stop {row.key}` there"
        )
    record = records.read(Path(row.record))
    if record is None or not liveness.launcher_alive(record):
        raise HopError(f"{row.key} stopped meanwhile; `jupyter hop list` shows what runs")
    launcher = record.launcher_id
    if launcher is None:
        raise HopError(
            f"the record of {row.key} was written by an older jupyter-hop and does not say which process its "
            f"launcher is, so pid {record.pid} is not signalled: check `ps -o args= -p {record.pid}` and kill it "
            "yourself if it is that launcher"
        )
    # The launcher turns SIGTERM into a clean stop of Jupyter and removes its record.
    if not launcher.send(signal.SIGTERM):
        raise HopError(f"{row.key} stopped meanwhile; `jupyter hop list` shows what runs")
    result.actions.append(f"sent SIGTERM to launcher pid {record.pid}")
    _wait(lambda: not liveness.launcher_alive(record), deadline, f"launcher pid {record.pid} to exit")
    result.actions.append("the launcher exited")


def _stop_unit(paths: Paths, row: inventory.Row, result: Stopped, deadline: float) -> None:
    from jupyter_hop.systemd import ops, systemctl

    if not place.is_this_host(row.host):
        raise HopError(
            f"the unit of {row.key} runs on {row.host}, not on this host: "
            f"log in to {row.host} and run `jupyter hop stop {row.key}` there"
        )
    if row.state == "failed":
        # Nothing runs; forgetting the failure is what makes it leave `list`.
        systemctl.check(["reset-failed", row.unit], timeout=20)
        result.actions.append(f"{row.unit} was not running ({row.note}); its failed state was reset")
        return
    # systemctl stop returns once the unit is inactive (or after TimeoutStopSec, when it is killed).
    unit = ops.stop(paths, row.profile)
    result.actions.append(f"systemctl --user stop {unit}")

    def inactive() -> bool:
        return systemctl.show(unit).get("ActiveState") in ("inactive", "failed")

    _wait(inactive, deadline, f"{unit} to become inactive")
    state = systemctl.show(unit)
    if state.get("ActiveState") == "failed":
        systemctl.run(["reset-failed", unit], timeout=20)
        result.actions.append(f"it ended as failed ({state.get('Result', '')}); its failed state was reset")
    else:
        result.actions.append(f"{unit} is inactive")


def _stop_job(paths: Paths, row: inventory.Row, result: Stopped, deadline: float) -> None:
    from jupyter_hop.slurm import jobs, submissions

    if not place.is_this_cluster(row.cluster):
        raise HopError(submissions.other_cluster(row.job_id, row.cluster))
    # scancel, then wait until Slurm no longer runs it (not while COMPLETING), then forget the job's files.
    final = jobs.cancel(paths, row.job_id, timeout=max(deadline - time.monotonic(), 1.0))
    result.actions.append(f"scancel {row.job_id}; the job ended ({final})")
