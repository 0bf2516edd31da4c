"""Connection records: one private JSON file per live server, on the shared state dir."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_hop import fields
from jupyter_hop.errors import HopError
from jupyter_hop.fields import BINDS, KINDS, App, Bind, Kind
from jupyter_hop.fsutil import atomic_write, exclusive, private_dir
from jupyter_hop.paths import Paths
from jupyter_hop.tracking.place import is_this_cluster, is_this_host
from jupyter_hop.tracking.procid import ProcessId, recorded


@dataclass
class Record:
    kind: Kind  # run (foreground), unit (systemd user unit) or job (Slurm batch job)
    profile: str
    host: str  # short host name of the machine the server runs on
    bind: Bind  # localhost, socket or node
    address: str  # the address the server listens on ("" for a socket)
    port: int  # 0 for a socket
    sock: str  # Unix socket path, or ""
    base_url: str
    app: App
    pid: int  # the launcher's pid on `host`
    server_pid: int
    started: float  # epoch seconds
    local_port: int  # the laptop end of the tunnel
    login_host: str = ""  # the login node to hop through ("" on a workstation)
    ssh_host: str = ""  # on a workstation: what the user types after `ssh` to reach it
    ssh_user: str = ""
    job_id: str = ""
    job_end: float | None = None  # epoch seconds of the job's time limit
    unit: str = ""
    token: str = ""  # only without a password: the per-launch token
    log: str = ""  # the server's log file
    wanted_local_port: int = 0  # the profile's local_port; local_port differs when another server had it
    # Who the launcher and the server are (procid.ProcessId), so that a recycled pid is never taken for them;
    # records of older versions have none of these, and their processes are never signalled.
    launch_id: str = ""  # random per launch: a launcher removes the record only while it is still its own
    boot_id: str = ""  # /proc/sys/kernel/random/boot_id of `host` when both processes started
    pid_start: int = 0  # the launcher's start time, clock ticks after boot (/proc/PID/stat field 22)
    argv: list[str] = field(default_factory=list)  # the launcher's exact argv
    server_start: int = 0
    server_argv: list[str] = field(default_factory=list)  # the server's exact argv (with this launch's --config=)
    cluster: str = ""  # a job's Slurm cluster (SLURM_CLUSTER_NAME, lower case)

    @property
    def key(self) -> str:
        """What `jupyter hop stop` takes: the job id, the profile of a unit, or host-pid of a foreground run."""
        if self.kind == "job":
            return self.job_id
        if self.kind == "unit":
            return self.profile
        return f"{self.host}-{self.pid}"

    @property
    def file_name(self) -> str:
        """Keyed by where the server runs, so machines and clusters sharing a home never replace each other's:
        run-HOST-PID.json, unit-PROFILE@HOST.json, job-JOBID@CLUSTER.json (job-JOBID.json without a cluster)."""
        if self.kind == "unit":
            return f"unit-{self.profile}@{_safe(self.host)}.json"
        if self.kind == "job" and self.cluster:
            return f"job-{self.job_id}@{_safe(self.cluster)}.json"
        return f"{self.kind}-{_safe(self.key)}.json"

    @property
    def endpoint(self) -> str:
        """Where the server listens on its host: the socket path, or ADDRESS:PORT."""
        return endpoint(self.address, self.port, self.sock)

    @property
    def launcher_id(self) -> ProcessId | None:
        return recorded(self.pid, self.pid_start, self.boot_id, self.argv)

    @property
    def server_id(self) -> ProcessId | None:
        return recorded(self.server_pid, self.server_start, self.boot_id, self.server_argv)

    def same_launch(self, other: Record) -> bool:
        """Whether `other` is the record this very launch wrote (not a later launch's, nor another host's)."""
        if self.launch_id or other.launch_id:
            return self.launch_id == other.launch_id
        return (self.host, self.pid, self.started) == (other.host, other.pid, other.started)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def endpoint(address: str, port: int, sock: str) -> str:
    """A listening socket in words: the Unix socket's path, or ADDRESS:PORT; "" when there is neither."""
    if sock:
        return sock
    return f"{address or '127.0.0.1'}:{port}" if port else ""


def _safe(part: str) -> str:
    """Host and cluster names come from the machine and the environment: never a path separator in a name."""
    if not part or "/" in part or "\0" in part or part.startswith("."):
        raise HopError(f"{part!r} cannot be part of a record file name; set a plain host or cluster name")
    return part


def path_for(paths: Paths, record: Record) -> Path:
    return paths.records_dir / record.file_name


def write(paths: Paths, record: Record) -> Path:
    path = path_for(paths, record)
    atomic_write(path, record.to_json())
    return path


def locked(paths: Paths) -> contextlib.AbstractContextManager[None]:
    """Serialise read-then-write of records (launches that become ready together must not pick one local port)."""
    return exclusive(private_dir(paths.records_dir) / ".lock")


def remove(paths: Paths, record: Record) -> None:
    """Remove `record`'s file only while it is still this launch's: a restarted unit's launcher may have
    replaced it already, and another host's record never has this name or launch id."""
    path = path_for(paths, record)
    with locked(paths):
        current = read(path)
        if current is not None and current.same_launch(record):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def read(path: Path) -> Record | None:
    """A record, or None when the file vanished or is not a record (a torn or foreign file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = Record.from_dict(data)
    except (OSError, ValueError, TypeError, AttributeError):  # AttributeError: JSON that is not an object
        return None
    return record if _well_formed(record) else None


def _well_formed(record: Record) -> bool:
    """Every field of the type the code using it expects, so a hand-edited file cannot become a traceback."""
    if not all(fields.fits(item, getattr(record, item.name)) for item in dataclasses.fields(record)):
        return False
    return record.kind in KINDS and record.bind in BINDS


def all_records(paths: Paths) -> list[tuple[Path, Record | None]]:
    try:
        files = sorted(paths.records_dir.glob("*.json"))
    except OSError:
        return []
    return [(p, read(p)) for p in files]


def find(paths: Paths, kind: str, key: str, where: Callable[[Record], bool]) -> list[tuple[Path, Record]]:
    """The records of `kind` with `key` (a unit's profile, a job's id) that `where` accepts, whatever host or
    cluster their file names carry; the old unkeyed name (KIND-KEY.json) too."""
    try:
        names = os.listdir(paths.records_dir)
    except OSError:
        return []
    prefix, legacy = f"{kind}-{key}@", f"{kind}-{key}.json"
    found = []
    for name in sorted(names):
        if name == legacy or (name.startswith(prefix) and name.endswith(".json")):
            record = read(paths.records_dir / name)
            if record is not None and record.kind == kind and where(record):
                found.append((paths.records_dir / name, record))
    return found


def find_job(paths: Paths, job_id: str) -> Record | None:
    """This cluster's record of job `job_id` (Slurm reuses job ids across clusters)."""
    found = find(paths, "job", job_id, lambda r: r.job_id == job_id and is_this_cluster(r.cluster))
    return found[0][1] if found else None


def find_unit(paths: Paths, profile: str) -> Record | None:
    """This host's record of the unit of `profile` (hosts sharing a home each have their own)."""
    found = find(paths, "unit", profile, lambda r: r.profile == profile and is_this_host(r.host))
    return found[0][1] if found else None
