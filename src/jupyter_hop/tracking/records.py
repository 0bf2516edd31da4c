"""Connection records: one private JSON file per live server, on the shared state dir."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_hop.fsutil import atomic_write, exclusive, private_dir
from jupyter_hop.paths import Paths

KINDS = ("run", "unit", "job")


@dataclass
class Record:
    kind: str  # run (foreground), unit (systemd user unit) or job (Slurm batch job)
    profile: str
    host: str  # short host name of the machine the server runs on
    bind: str  # localhost, socket or node
    address: str  # the address the server listens on ("" for a socket)
    port: int  # 0 for a socket
    sock: str  # Unix socket path, or ""
    base_url: str
    app: str
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
        return f"{self.kind}-{self.key}.json"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path_for(paths, record))


# What each field's JSON value must be (annotations are strings here: `from __future__ import annotations`).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "float | None": (int, float, type(None)),
}


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
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        if isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[str(item.type)]):
            return False
    return record.kind in KINDS


def all_records(paths: Paths) -> list[tuple[Path, Record | None]]:
    try:
        files = sorted(paths.records_dir.glob("*.json"))
    except OSError:
        return []
    return [(p, read(p)) for p in files]


def find_job(paths: Paths, job_id: str) -> Record | None:
    path = paths.records_dir / f"job-{job_id}.json"
    return read(path) if path.exists() else None


def find_unit(paths: Paths, profile: str) -> Record | None:
    path = paths.records_dir / f"unit-{profile}.json"
    return read(path) if path.exists() else None
