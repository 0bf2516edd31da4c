"""Thin calls to the Slurm tools (sbatch, squeue, scontrol, scancel) and pure parsers of their output."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jupyter_hop import proc
from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import tail

# States after which the batch script no longer runs (COMPLETING: it ended, Slurm is cleaning up).
ENDED = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "COMPLETING", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "STOPPED", "TIMEOUT",
})
# Where a job that has not ended stands (SUSPENDED: it may resume) and how an ended job failed.
PENDING = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED"})
# Pending states in which StartTime (%S) is an expectation; a suspended or resizing job has started already.
NOT_STARTED = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"})
FAILED = frozenset({"BOOT_FAIL", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"})
# %S is the expected start while a job pends (N/A until the scheduler has one). %k, the comment, is last: it is
# the one free-text field (it may hold "|"), so a line is split at the first 7 bars only.
SQUEUE_FORMAT = "%i|%T|%r|%N|%e|%L|%S|%k"
SQUEUE_FIELDS = SQUEUE_FORMAT.count("|") + 1
TOOL_TIMEOUT = 30.0
COMMENT_TIMEOUT = 5.0  # the launcher's comment update is best effort: it must not hold up the server for long


# ---- parsers of tool output (pure) ----


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # RUNNING, PENDING, ... as Slurm spells it
    reason: str = ""  # why it pends (or why it ended), "" for None
    node: str = ""
    end: float | None = None  # epoch seconds: the time limit while it runs, the end once it ended
    time_left: str = ""  # as squeue prints it (D-HH:MM:SS, INVALID, UNLIMITED)
    exit_code: str = ""  # from scontrol, "0:0" when it succeeded
    expected_start: float | None = None  # epoch seconds: when Slurm expects a pending job to start, if it does
    comment: str = ""  # the job's comment (squeue %k), where the launcher says that the server is ready

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def _none(value: str) -> str:
    return "" if value in ("None", "(null)", "N/A", "n/a") else value


def parse_time(value: str) -> float | None:
    """Slurm's local-time timestamps (2026-11-26T18:05:00) as epoch seconds; Unknown/N/A/None -> None."""
    try:
        return time.mktime(time.strptime(value.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def parse_squeue(text: str) -> list[JobState]:
    """Lines of `squeue -h -o SQUEUE_FORMAT`, one job each; other lines are ignored (a comment with a newline
    continues on a line of its own, which is not a job's)."""
    jobs = []
    for line in text.splitlines():
        fields = line.split("|", SQUEUE_FIELDS - 1)
        if len(fields) != SQUEUE_FIELDS or not fields[0].strip().isdigit():
            continue
        job_id, state, reason, node, end, left, start, comment = (f.strip() for f in fields)
        expected = parse_time(start) if state in NOT_STARTED else None
        jobs.append(JobState(job_id, state, _none(reason), _none(node), parse_time(end), _none(left),
                             expected_start=expected, comment=_none(comment)))
    return jobs


_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_:/]*=")


def parse_scontrol(text: str) -> dict[str, str]:
    """`scontrol show job` output (one line with -o, or several) as key -> value.

    Values may contain spaces (Command=/path with space/x); a word that does not start with Key= belongs to
    the value before it.
    """
    fields: dict[str, str] = {}
    key = ""
    for word in text.split():
        match = _KEY_RE.match(word)
        if match:
            key = match.group()[:-1]
            fields[key] = word[match.end():]
        elif key:
            fields[key] += " " + word
    return fields


def state_from_scontrol(fields: Mapping[str, str]) -> JobState:
    state = fields.get("JobState", "")
    node = _none(fields.get("BatchHost", "")) or _none(fields.get("NodeList", ""))
    return JobState(
        job_id=fields.get("JobId", ""),
        state=state,
        reason=_none(fields.get("Reason", "")),
        node=node,
        end=parse_time(fields.get("EndTime", "")),
        exit_code=fields.get("ExitCode", ""),
        expected_start=parse_time(fields.get("StartTime", "")) if state in NOT_STARTED else None,
        # no comment: scontrol prints it unquoted among the other Key=value words, so a comment that holds
        # "key=value" words cannot be told apart from them (squeue's %k can)
    )


# ---- the Slurm tools (thin edges) ----


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise HopError(f"{name} is not on PATH: run this on a Slurm login node (or load the Slurm module)")
    return path


def _run(argv: Sequence[str], *, umask: int = -1, timeout: float = TOOL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return proc.run(argv, timeout=timeout, umask=umask,
                    what="asking the Slurm controller; `sinfo` tells whether it is up")


def sbatch(script: Path) -> str:
    """Submit `script`; the job id. umask 077: Slurm creates the job log with the submitter's umask."""
    result = _run([_tool("sbatch"), "--parsable", str(script)], umask=0o077)
    job_id = result.stdout.strip().split(";")[0]
    if result.returncode != 0 or not job_id.isdigit():
        reason = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise HopError(f"sbatch rejected the job: {reason}", detail=result.stderr)
    return job_id


def squeue(job_ids: Sequence[str] = (), *, timeout: float = TOOL_TIMEOUT) -> list[JobState]:
    """This user's queued and running jobs (all of them, or those of `job_ids`); ended jobs are not listed."""
    # -u rather than --me, which Slurm before 20.11 does not know; the uid's name, not $USER, which may lie
    argv = [_tool("squeue"), "-h", "-u", pwd.getpwuid(os.getuid()).pw_name, "-o", SQUEUE_FORMAT]
    if job_ids:
        argv += ["-j", ",".join(job_ids)]
    result = _run(argv, timeout=timeout)
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return []  # the controller has forgotten every one of them
        raise HopError(f"squeue failed: {result.stderr.strip() or result.returncode}", detail=result.stderr)
    return parse_squeue(result.stdout)


def job_state(job_id: str) -> JobState | None:
    """The job's state while it is queued or running; after it ended, its final state; None once forgotten."""
    for job in squeue([job_id]):
        if job.job_id == job_id:
            return job
    return scontrol_job(job_id)


def scontrol_job(job_id: str) -> JobState | None:
    result = _run([_tool("scontrol"), "show", "job", "-o", job_id])
    if result.returncode != 0:
        return None
    fields = parse_scontrol(result.stdout)
    return state_from_scontrol(fields) if fields.get("JobId") == job_id else None


def set_comment(job_id: str, comment: str) -> str:
    """Set the job's comment (its owner may, from inside the job); "" when done, else why not, in one line."""
    try:
        result = _run([_tool("scontrol"), "update", f"JobId={job_id}", f"Comment={comment}"],
                      timeout=COMMENT_TIMEOUT)
    except HopError as exc:
        return exc.message
    if result.returncode == 0:
        return ""
    return (result.stderr.strip() or result.stdout.strip() or f"exit code {result.returncode}").splitlines()[-1]


def scancel(job_id: str) -> None:
    result = _run([_tool("scancel"), job_id])
    if result.returncode != 0:
        reason = result.stderr.strip() or result.returncode
        raise HopError(f"scancel {job_id} failed: {reason}", detail=result.stderr)


def log_tail(path: Path) -> str:
    """The end of a job log, for error messages; says so when there is none."""
    text = tail(path).rstrip("\n")
    return f"Last lines of {path}:\n{text}" if text else f"(no job log at {path})"
