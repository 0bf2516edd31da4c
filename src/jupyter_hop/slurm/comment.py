"""Readiness in the job's Slurm comment, next to the record file.

The launcher on the compute node writes the record into the shared home; `submit` on the login node reads it
there. On NFS a file another client created can stay invisible for tens of seconds (cached directory entries),
so a ready server would look like one still starting, and a slow enough cache like one that failed. The
controller has no such lag: once the record is written the launcher also puts "ready" in the job's comment,
which `submit` reads in the squeue call it makes anyway.

Every user of the cluster can read a job's comment (`squeue -o %k`), so it says where the server is and which
launch it is, never anything secret (no token). Versioned, plain words, parsed strictly:

    jupyter-hop:1 ready host=c0412 port=47213 launch=0f3a9c1e2b7d4a56
    jupyter-hop:1 ready host=c0412 socket launch=0f3a9c1e2b7d4a56
    jupyter-hop:1 stopped launch=0f3a9c1e2b7d4a56

A comment the user gave the job (`--comment` in extra_directives) is kept, in front of ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import IO

from jupyter_hop.profile.model import HOST_RE
from jupyter_hop.tracking.records import Record

MARK = "jupyter-hop:"
VERSION = 1
STATES = ("ready", "stopped")
LAUNCH_RE = re.compile(r"[0-9a-f]{1,64}")
# scontrol refuses an update of a job that is ending; a comment then misleads nobody (the job is not running)
ENDING = ("already finished", "already completing", "Job/step already completing")


@dataclass(frozen=True)
class Announcement:
    state: str  # ready or stopped
    host: str = ""
    port: int = 0
    socket: bool = False
    launch: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def render(note: Announcement) -> str:
    words = [f"{MARK}{VERSION}", note.state]
    if note.ready:
        words.append(f"host={note.host}")
        words.append("socket" if note.socket else f"port={note.port}")
    if note.launch:
        words.append(f"launch={note.launch}")
    return " ".join(words)


def split(comment: str) -> tuple[str, str]:
    """The user's part of a comment and ours (from the last word that starts with our mark)."""
    at = -1
    for match in re.finditer(r"(?:^|\s)" + re.escape(MARK), comment):
        at = match.end() - len(MARK)
    if at < 0:
        return comment.strip(), ""
    return comment[:at].strip(), comment[at:].strip()


def parse(comment: str) -> Announcement | None:
    """Our announcement in a job's comment, or None when there is none this version can read."""
    words = split(comment)[1].split()
    if len(words) < 2 or words[0] != f"{MARK}{VERSION}" or words[1] not in STATES:
        return None
    host, port, socket, launch = "", 0, False, ""
    for word in words[2:]:
        key, eq, value = word.partition("=")
        if not eq:
            socket = socket or key == "socket"
        elif key == "host" and HOST_RE.fullmatch(value):
            host = value
        elif key == "port" and value.isascii() and value.isdigit() and 0 < int(value) < 65536:
            port = int(value)
        elif key == "launch" and LAUNCH_RE.fullmatch(value):
            launch = value
    note = Announcement(words[1], host, port, socket, launch)
    if note.ready and not (host and (port or socket)):
        return None
    return note


def of_record(record: Record, state: str) -> Announcement:
    return Announcement(state, record.host, record.port, bool(record.sock), record.launch_id)


def combined(current: str, note: Announcement) -> str:
    """The comment to set: the user's part of the current one, then ours."""
    user = split(current)[0]
    return f"{user} {render(note)}" if user else render(note)


def announce(record: Record, state: str, err: IO[str]) -> None:
    """Put the launch's state in its job's comment; best effort: a failure is one warning line in the job log
    (`submit` then learns of readiness from the record file alone)."""
    if record.kind != "job" or not record.job_id:
        return
    from jupyter_hop.errors import HopError
    from jupyter_hop.slurm import tools

    try:
        listed = tools.squeue([record.job_id], timeout=tools.COMMENT_TIMEOUT)
    except HopError as exc:
        listed, problem = [], exc.message
    else:
        problem = ""
    current = next((job.comment for job in listed if job.job_id == record.job_id), "")
    if not problem:
        problem = tools.set_comment(record.job_id, combined(current, of_record(record, state)))
    if problem and not (state == "stopped" and any(word in problem for word in ENDING)):
        err.write(f"jupyter-hop: warning: could not mark the job's comment {state} ({problem}); "
                  "waiting commands rely on the record file alone\n")
        err.flush()
