"""The JSON protocol: one versioned object for every command that starts a server or prints its instructions.

`--json` prints exactly one object, on one line of stdout, built here from a record (a server that answers) or
from a job just submitted; progress while waiting goes to stderr as one JSON event per line. The laptop side
(`jupyter hop connect`) reads nothing else, so the tunnel, the URL and the stop command are the very words the
text instructions print (tracking/instructions.py), never a second rendering of them.

Version rule: fields may be added under SCHEMA = 1 (a consumer ignores fields it does not know); removing or
renaming a field, changing its type or meaning, or giving a field a value it could not have before bumps SCHEMA.
The document is protocol.schema.json beside this module (shipped in the wheel), described in the README.
"""

from __future__ import annotations

import json
import shlex
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from jupyter_hop import __version__
from jupyter_hop.tracking import instructions
from jupyter_hop.tracking.records import Record

if TYPE_CHECKING:
    from jupyter_hop.slurm.tools import JobState

SCHEMA = 1
SCHEMA_FILE = "protocol.schema.json"


def utc(epoch: float) -> str:
    """ISO-8601 in UTC with a Z, to the second (RFC 3339 `date-time`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _argv(hop: str, *words: str) -> list[str]:
    """A jupyter-hop command as words: `hop` is instructions.invocation(), the shell form the text lines use."""
    return [*shlex.split(hop), *words]


def _again(hop: str, record: Record) -> list[str]:
    """The command that prints this object again (what a laptop reattaching to the server runs)."""
    if record.kind == "job":
        return _argv(hop, "slurm", "instructions", record.job_id, "--json")
    return _argv(hop, "instructions", record.key, "--json")


def tunnel(record: Record) -> dict[str, Any]:
    """The ssh command of the text instructions as argv, and its parts: the -L forward, the destination and the
    jump host, read from those same words so that they cannot disagree with it."""
    argv = instructions.tunnel(record, record.local_port).argv
    forward = argv[argv.index("-L") + 1]
    return {
        "argv": argv,
        "local_port": record.local_port,
        "remote": forward.split(":", 2)[2],  # after LAPTOP:PORT: the server's ADDRESS:PORT or socket path
        "forward": forward,
        "target": argv[-1],
        "jump": argv[argv.index("-J") + 1] if "-J" in argv else None,
    }


def ready(record: Record, *, hop: str, show_token: bool, now: float, log: str = "") -> dict[str, Any]:
    """The object for a server that answers. `hop` is how this shell runs jupyter-hop (instructions.invocation),
    `now` the epoch seconds `ends_in` counts from; the token is in it only when `show_token` is set."""
    ends = record.job_end if record.kind == "job" else None
    obj: dict[str, Any] = {
        "schema": SCHEMA,
        "version": __version__,
        "state": "ready",
        "kind": record.kind,
        "profile": record.profile,
        "host": record.host,
        "job_id": record.job_id or None,
        "unit": record.unit or None,
        "ends": utc(ends) if ends is not None else None,
        "ends_in": round(ends - now) if ends is not None else None,
        "bind": record.bind,
        "auth": "token" if record.token else "password",
        "tunnel": tunnel(record),
        "url": instructions.login_url(record, record.local_port, show_secret=show_token),
        "stop": _argv(hop, "stop", record.key),
        "instructions": _again(hop, record),
        "log": record.log or log or None,
    }
    if show_token:
        obj["token"] = record.token or None
    return obj


def submitted(job_id: str, profile: str, bind: str, log: str, *, hop: str, show_token: bool) -> dict[str, Any]:
    """The object for a job that Slurm has accepted and whose server is not known yet (`submit --no-wait`)."""
    obj: dict[str, Any] = {
        "schema": SCHEMA,
        "version": __version__,
        "state": "submitted",
        "kind": "job",
        "profile": profile,
        "host": None,
        "job_id": job_id,
        "unit": None,
        "ends": None,
        "ends_in": None,
        "bind": bind,
        "auth": None,  # the launcher decides (a password set by then, or a fresh token)
        "tunnel": None,
        "url": None,
        "stop": _argv(hop, "stop", job_id),
        "instructions": _argv(hop, "slurm", "instructions", job_id, "--wait", "--json"),
        "log": log or None,
    }
    if show_token:
        obj["token"] = None
    return obj


def submit_event(job_id: str, log: str) -> dict[str, Any]:
    """The first stderr line of `submit --json`: the job id, before any waiting."""
    return {"schema": SCHEMA, "event": "submitted", "job_id": job_id, "log": log or None}


def reattach_event(job_id: str, state: str, log: str) -> dict[str, Any]:
    """The first stderr line of `submit --reattach --json` that found a job: that job, Slurm's state for it."""
    return {"schema": SCHEMA, "event": "reattached", "job_id": job_id, "state": state, "log": log or None}


def progress_event(job: JobState, elapsed: float) -> dict[str, Any]:
    """A stderr line of `submit --json` for each change of the job's state while it waits."""
    from jupyter_hop.slurm import comment, reasons

    note = comment.parse(job.comment)
    return {
        "schema": SCHEMA,
        "event": "progress",
        "job_id": job.job_id,
        "state": job.state,
        "reason": job.reason or None,
        "reason_text": (reasons.words(job.reason) or None) if job.reason else None,
        "expected_start": utc(job.expected_start) if job.expected_start is not None else None,
        "node": job.node or None,
        # the launcher said so in the job's comment while its record is not visible here yet (a lagging NFS)
        "ready_on_node": bool(note and note.ready),
        "elapsed": round(elapsed, 1),
    }


def dumps(obj: dict[str, Any]) -> str:
    """One line: a consumer reads the object (or an event) as the first line, without waiting for EOF."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"


def schema() -> dict[str, Any]:
    """The JSON Schema document of the object and of the events (draft 2020-12)."""
    text = resources.files("jupyter_hop").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
