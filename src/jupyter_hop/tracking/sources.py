"""What systemd and Slurm say runs: this user's jupyter-hop units and queued jobs, each source's health in words."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.systemd.unit import UNIT_PREFIX, UNIT_SUFFIX
from jupyter_hop.tracking.place import slurm_conf

if TYPE_CHECKING:
    from jupyter_hop.slurm.tools import JobState


@dataclass(frozen=True)
class UnitState:
    unit: str
    load: str  # LoadState
    active: str  # ActiveState: active, activating, deactivating, inactive, failed
    sub: str  # SubState: running, auto-restart, dead, ...
    result: str  # Result of the last run: success, exit-code, signal, timeout, ...
    main_pid: int
    since: float | None  # when it last became active

    @property
    def profile(self) -> str:
        return self.unit[len(UNIT_PREFIX):-len(UNIT_SUFFIX)]


def systemd_units(include_stopped: bool) -> tuple[list[UnitState], str]:
    """This user's jupyter-hop units and how the systemd source went ("ok" / "absent: ..." / "error: ...")."""
    if not shutil.which("systemctl"):
        return [], "absent: systemctl is not installed"
    from jupyter_hop.systemd import systemctl

    try:
        systemctl.require_manager()
    except HopError as exc:
        return [], f"absent: {_last_line(exc.message)}"
    pattern = f"{UNIT_PREFIX}*{UNIT_SUFFIX}"
    try:
        listed = systemctl.run(["list-units", "--all", "--plain", "--no-legend", "--no-pager", pattern], timeout=20)
        names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
        if include_stopped:  # installed but never loaded (or unloaded since) units count as stopped
            files = systemctl.run(["list-unit-files", "--no-legend", "--no-pager", pattern], timeout=20)
            names |= {line.split()[0] for line in files.stdout.splitlines() if line.strip()}
        units = [_unit_state(systemctl, name) for name in sorted(names) if _is_ours(name)]
    except HopError as exc:
        return [], f"error: {_last_line(exc.message)}"
    return units, "ok"


def _is_ours(name: str) -> bool:
    return name.startswith(UNIT_PREFIX) and name.endswith(UNIT_SUFFIX) and "@" not in name


def _unit_state(systemctl: Any, name: str) -> UnitState:
    state = systemctl.show(name)
    return UnitState(
        unit=name,
        load=state.get("LoadState", ""),
        active=state.get("ActiveState", ""),
        sub=state.get("SubState", ""),
        result=state.get("Result", ""),
        main_pid=int(state.get("MainPID") or 0),
        since=systemctl.since_epoch(state),
    )


@dataclass(frozen=True)
class QueuedJob:
    job: JobState
    profile: str  # from the submission note, "" when jupyter-hop did not submit it
    submitted: float | None


def slurm_jobs(paths: Paths) -> tuple[list[QueuedJob], str]:
    """This user's queued and running jobs, and how the Slurm source went."""
    if not shutil.which("squeue"):
        return [], "absent: squeue is not on PATH"
    from jupyter_hop.slurm import submissions, tools

    unconfigured = slurm_unconfigured()
    if unconfigured and not submissions.known_job_ids(paths):
        return [], f"absent: {unconfigured}"
    try:
        queue = tools.squeue()
    except HopError as exc:
        return [], f"error: {_last_line(exc.message)}"
    queued = []
    for job in queue:
        note = submissions.read_submission(paths, job.job_id)
        queued.append(QueuedJob(job, note.profile if note else "", note.submitted if note else None))
    return queued, "ok"


def slurm_unconfigured() -> str:
    """Why Slurm's tools have no configuration here, or "" when they may have one.

    Without a slurm.conf the tools fall back to DNS SRV lookups (configless clusters), which on a machine
    that merely has the client installed means a slow, pointless query; a missing $SLURM_CONF makes them
    retry for a minute.
    """
    conf = os.environ.get("SLURM_CONF")
    if conf:
        return "" if Path(conf).is_file() else f"SLURM_CONF={conf} does not exist"
    return "" if slurm_conf() else "Slurm is not configured here (no slurm.conf)"


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1]
