"""Everything jupyter-hop knows of, reconciled from records, systemd user units and Slurm jobs, as rows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from jupyter_hop import output, timetext
from jupyter_hop.fields import Kind
from jupyter_hop.paths import Paths
from jupyter_hop.slurm import tools
from jupyter_hop.slurm.tools import JobState
from jupyter_hop.tracking import records
from jupyter_hop.tracking.liveness import is_here
from jupyter_hop.tracking.place import this_host
from jupyter_hop.tracking.records import Record
from jupyter_hop.tracking.sources import QueuedJob, UnitState, slurm_jobs, systemd_units
from jupyter_hop.tracking.stale import elsewhere, remove_stale, stale_reason

# The order of `list`: units, then jobs, then foreground runs.
ROW_ORDER: tuple[Kind, ...] = ("unit", "job", "run")
State = Literal["pending", "starting", "ready", "stopped", "failed", "stale"]


@dataclass
class Row:
    """One server, as `list` shows it and `stop` finds it."""

    key: str  # what `jupyter hop stop` takes: job id, profile of a unit, HOST-PID of a foreground run
    profile: str
    kind: Kind
    state: State
    host: str = ""
    port: int = 0
    sock: str = ""
    address: str = ""
    started: float | None = None  # epoch seconds
    ends: float | None = None  # epoch seconds of a job's time limit
    expected_start: float | None = None  # epoch seconds: when Slurm expects a pending job to start, if it does
    job_id: str = ""
    unit: str = ""
    pid: int = 0  # the launcher's pid on `host`
    cluster: str = ""  # a job record's Slurm cluster, when it names one
    note: str = ""  # pending reason, failure, what cleaning did
    record: str = ""  # the record file, when there is one
    cleaned: bool = False  # a stale record that was removed
    job: JobState | None = None  # what squeue says of a job (not part of the row's JSON: `slurm status` shows it)

    @property
    def endpoint(self) -> str:
        return records.endpoint(self.address, self.port, self.sock)

    def to_dict(self, now: float) -> dict[str, Any]:
        data = asdict(self)
        del data["job"]
        data["endpoint"] = self.endpoint
        data["age"] = round(now - self.started, 1) if self.started else None
        data["time_left"] = round(max(self.ends - now, 0.0), 1) if self.ends and self.state != "stale" else None
        return data


@dataclass
class Inventory:
    rows: list[Row] = field(default_factory=list)
    # records, systemd, slurm -> "ok", "absent: why" or "error: why"
    sources: dict[str, str] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        return [f"{name}: {state[len('error: '):]}" for name, state in self.sources.items()
                if state.startswith("error: ")]


# ---- rows ----


def unit_row(unit: UnitState, record: Record | None) -> Row:
    """A unit's row: systemd's state, the server's address from the record once the launcher wrote it."""
    state: State
    if unit.active == "active":
        state, note = "ready", "" if record else "running, but it wrote no record"
    elif unit.active in ("activating", "reloading"):
        state = "starting"
        note = "restarting after a failure" if unit.sub == "auto-restart" else ""
    elif unit.active == "failed":
        state, note = "failed", f"systemd gave up ({unit.result})"
    else:
        state, note = "stopped", "stopping" if unit.active == "deactivating" else ""
    row = Row(key=unit.profile, profile=unit.profile, kind="unit", state=state, unit=unit.unit,
              pid=unit.main_pid, started=unit.since, note=note, host=this_host())
    if record is not None and state == "ready":
        _fill_from_record(row, record)
        row.started = record.started
    return row


def forget_ended_submissions(paths: Paths, queued: dict[str, QueuedJob]) -> None:
    """Submission notes of jobs Slurm no longer queues or runs are of no more use (their logs are kept)."""
    from jupyter_hop.slurm import submissions

    for job_id in submissions.known_job_ids(paths):
        if job_id not in queued:
            with contextlib.suppress(FileNotFoundError):
                submissions.submission_path(paths, job_id).unlink()


def job_row(queued: QueuedJob, record: Record | None) -> Row:
    job = queued.job
    profile = record.profile if record else queued.profile
    state: State
    if job.state in tools.PENDING:
        state = "pending"
    elif job.state in ("RUNNING", "CONFIGURING"):
        state = "ready" if record else "starting"
    elif job.state in tools.FAILED:
        state = "failed"
    else:
        state = "stopped"
    note = job.reason if state == "pending" else ("" if state in ("ready", "starting") else job.state)
    row = Row(key=job.job_id, profile=profile, kind="job", state=state, host=job.node, job_id=job.job_id,
              started=queued.submitted, ends=job.end if state in ("ready", "starting") else None, note=note,
              expected_start=job.expected_start if state == "pending" else None, job=job)
    if record is not None and state == "ready":
        _fill_from_record(row, record)
        row.ends = job.end or record.job_end
    return row


# ---- records ----


def _fill_from_record(row: Row, record: Record) -> None:
    row.host = record.host
    row.port = record.port
    row.sock = record.sock
    row.address = record.address
    row.pid = record.pid
    row.started = record.started


def record_row(record: Record, state: State, note: str, path: Path) -> Row:
    row = Row(key=record.key, profile=record.profile, kind=record.kind, state=state, job_id=record.job_id,
              unit=record.unit, ends=record.job_end, note=note, record=str(path), cluster=record.cluster)
    _fill_from_record(row, record)
    return row


def gather(paths: Paths, *, clean: bool = True, include_stopped: bool = False, units: bool = True) -> Inventory:
    """Every server jupyter-hop knows of; stale records are reported as such and, with `clean`, removed.
    `units=False` leaves systemd unasked (for `slurm status`, which shows jobs only)."""
    inventory = Inventory()
    found = records.all_records(paths)
    inventory.sources["records"] = "ok"
    unit_list, inventory.sources["systemd"] = systemd_units(include_stopped) if units else ([], "absent: not asked")
    job_list, inventory.sources["slurm"] = slurm_jobs(paths)
    unit_states = {u.unit: u for u in unit_list} if inventory.sources["systemd"] == "ok" else None
    jobs = {q.job.job_id: q for q in job_list} if inventory.sources["slurm"] == "ok" else None
    live: dict[tuple[str, str], tuple[Path, Record]] = {}
    for path, record in found:
        if record is None:
            continue  # a torn or foreign file: not ours to judge or delete
        reason = stale_reason(record, unit_states, jobs)
        if reason:
            row = record_row(record, "stale", reason, path)
            if clean:
                done = remove_stale(paths, path, record)
                row.cleaned = "record removed" in done
                row.note = f"{reason}; {done}" if done else reason
            inventory.rows.append(row)
            continue
        where = elsewhere(record)
        if where:  # shown as it is, never matched with this host's unit_states or this cluster's queue
            inventory.rows.append(record_row(record, "ready", where, path))
            continue
        live.setdefault((record.kind, record.key), (path, record))
        if record.kind == "run" or (record.kind == "unit" and unit_states is None):
            inventory.rows.append(record_row(record, "ready", "", path))
        elif record.kind == "job" and jobs is None:
            here = is_here(record)
            inventory.rows.append(record_row(record, "ready", "" if here else "Slurm not reachable: not checked", path))
    for unit in unit_states.values() if unit_states else []:
        path_record = live.get(("unit", unit.profile))
        row = unit_row(unit, path_record[1] if path_record else None)
        row.record = str(path_record[0]) if path_record else ""
        if row.state != "stopped" or include_stopped:
            inventory.rows.append(row)
    for queued in jobs.values() if jobs else []:
        path_record = live.get(("job", queued.job.job_id))
        if path_record is None and not queued.profile:
            continue  # not submitted by jupyter-hop
        row = job_row(queued, path_record[1] if path_record else None)
        row.record = str(path_record[0]) if path_record else ""
        if row.state != "stopped" or include_stopped:
            inventory.rows.append(row)
    if clean and jobs is not None:
        forget_ended_submissions(paths, jobs)
    inventory.rows.sort(key=lambda r: (ROW_ORDER.index(r.kind), r.key))
    return inventory


# ---- text ----


def duration(seconds: float | None) -> str:
    """Short human durations: 45s, 12m, 3h05m, 2d04h."""
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


COLUMNS = ("ID", "PROFILE", "KIND", "STATE", "HOST", "ENDPOINT", "AGE", "LEFT", "NOTE")


def render(inventory: Inventory, now: float | None = None) -> str:
    """The `list` table; pure, so tests can compare it line by line."""
    now = time.time() if now is None else now
    if not inventory.rows:
        return "No servers.\n"
    table = [list(COLUMNS)]
    for row in inventory.rows:
        data = row.to_dict(now)
        note = row.note
        if row.expected_start is not None:
            note = ", ".join(part for part in (note, timetext.expected_start(row.expected_start, now)) if part)
        table.append([row.key, row.profile, row.kind, row.state, row.host or "-", row.endpoint or "-",
                      duration(data["age"]), duration(data["time_left"]) if data["time_left"] is not None else "-",
                      note])
    return output.table(table)


def to_json(inventory: Inventory, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {"servers": [row.to_dict(now) for row in inventory.rows], "sources": dict(inventory.sources)}


def find(inventory: Inventory, target: str) -> list[Row]:
    """Rows `target` names: by key (job id, unit profile, HOST-PID), else by profile name."""
    exact = [row for row in inventory.rows if row.key == target]
    return exact or [row for row in inventory.rows if row.profile == target]


def keys(rows: Iterable[Row]) -> str:
    return ", ".join(row.key for row in rows)
