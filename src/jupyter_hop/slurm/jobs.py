"""Submitting a profile's batch job and following it: wait until ready, status, instructions, cancel."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import atomic_write, private_dir
from jupyter_hop.paths import Paths
from jupyter_hop.profile.model import Profile
from jupyter_hop.server import probe
from jupyter_hop.slurm import batch, comment, tools
from jupyter_hop.slurm.progress import Progress, describe
from jupyter_hop.slurm.submissions import (
    Submission,
    check_job_id,
    forget,
    other_cluster,
    other_clusters,
    read_submission,
    submission_path,
)
from jupyter_hop.tracking import inventory, records
from jupyter_hop.tracking.place import is_this_host, this_cluster
from jupyter_hop.tracking.records import Record

RECORD_POLL = 0.02  # the record appears within this much of the launcher writing it
FAST_POLL = 0.25  # squeue while the server comes up, and in the first FAST_FOR seconds of a phase
FAST_FOR = 5.0
SLOW_POLL = 5.0  # at most one squeue per this many seconds while a job pends
GROWTH = 0.1  # seconds the interval grows by per second spent in a slow phase: 5 s after about 50 s
# Once the job's comment says ready, how long the record may take to show up here: NFS clients cache a
# directory's entries for up to acdirmax (60 s by default) before they look again.
RECORD_LAG = 120.0
READY_MARGIN = 60.0  # beyond server.ready_timeout, for the setup lines and the interpreter to start
CANCEL_TIMEOUT = 120.0  # scancel gives KillWait (30 s by default) before SIGKILL


def write_script(paths: Paths, profile: Profile) -> Path:
    """Render (everything validated first), then write the script 0600 in the 0700 jobs dir."""
    text = batch.render(batch.batch_script(profile, paths))
    path = batch.script_path(paths, profile.name)
    private_dir(paths.state_dir)
    atomic_write(path, text)
    return path


def submit(paths: Paths, profile: Profile) -> Submission:
    script = write_script(paths, profile)
    job_id = tools.sbatch(script)
    log = batch.log_path(paths, profile.name, job_id)
    submission = Submission(job_id, profile.name, str(log), time.time(), this_cluster())
    atomic_write(submission_path(paths, job_id), json.dumps(asdict(submission), indent=2) + "\n")
    return submission


def answers_here(record: Record) -> bool | None:
    """Whether the server answers GET {base_url}api from here; None when it cannot be reached from this host
    (bound to the node's loopback or a socket on another node): then the launcher's own check stands."""
    same_host = is_this_host(record.host)
    if record.sock:
        if not same_host:
            return None
        return probe.answers(address="", port=0, sock=record.sock, base_url=record.base_url, timeout=2.0)
    if record.bind != "node" and not same_host:
        return None
    return probe.answers(address=record.address, port=record.port, sock="", base_url=record.base_url,
                         timeout=2.0)


def poll_interval(phase: str, in_phase: float) -> float:
    """Seconds until the next squeue, by what the wait is at and for how long it has been there.

    Fast while the server comes up ("starting": the job runs, its server is not ready yet), and in the first
    seconds of any phase; then slower and slower, to one call per SLOW_POLL, while the job pends ("queued",
    minutes to days) or its server is ready and only its record is awaited ("announced"). Every waiting user's
    squeue is a round trip to the one slurmctld; readiness itself is seen in the record file, polled apart.
    """
    if phase == "starting" or in_phase < FAST_FOR:
        return FAST_POLL
    return min(SLOW_POLL, FAST_POLL + (in_phase - FAST_FOR) * GROWTH)


def phase_of(job: tools.JobState) -> str:
    if job.state != "RUNNING":
        return "queued"
    note = comment.parse(job.comment)
    return "announced" if note is not None and note.ready else "starting"


def wait_ready(
    paths: Paths,
    submission: Submission,
    ready_timeout: float,
    status: Progress,
    *,
    job_state: Callable[[str], tools.JobState | None] = tools.job_state,
) -> tuple[Record, tools.JobState | None]:
    """Until the job's record exists and its server answers; pending time is unbounded but shown, the time
    from RUNNING to ready is bounded by `ready_timeout` plus a margin for the setup lines, and once the job's
    comment says the server is ready, the time until its record shows up here by RECORD_LAG."""
    job_id = submission.job_id
    log = Path(submission.log)
    start = time.monotonic()
    next_state_poll = start
    shown = start
    phase, phase_since = "", start
    running_since: float | None = None
    announced_since: float | None = None
    job: tools.JobState | None = None
    looked_again = False
    while True:
        record = _own_record(paths, submission)
        if record is not None and answers_here(record) is not False:
            return record, job
        now = time.monotonic()
        if now >= next_state_poll:
            job = job_state(job_id)
            if job is None or job.ended:
                if _own_record(paths, submission) is not None and not looked_again:
                    looked_again = True
                    continue  # ready just as it ended: look at the record once more
                what = f"ended ({job.state}{_exit(job)})" if job else "is no longer known to Slurm"
                raise HopError(f"Slurm job {job_id} {what} before the Jupyter server was ready",
                               detail=tools.log_tail(log))
            if phase_of(job) != phase:
                phase, phase_since = phase_of(job), now
            if job.state == "RUNNING" and running_since is None:
                running_since = now
            if phase == "announced" and announced_since is None:
                announced_since = now
            next_state_poll = time.monotonic() + poll_interval(phase, now - phase_since)
            status.job(job, now - start)
            shown = now
        elif job is not None and now - shown >= 1.0:
            status.job(job, now - start)  # the elapsed time goes on between the (slower) squeue calls
            shown = now
        if announced_since is not None:
            if now - announced_since > RECORD_LAG:
                raise HopError(_not_visible(paths, job_id, job), detail=tools.log_tail(log))
        elif running_since is not None and now - running_since > ready_timeout + READY_MARGIN:
            raise HopError(
                f"Slurm job {job_id} runs but its Jupyter server did not answer within "
                f"{ready_timeout + READY_MARGIN:g} s; the job is left running: "
                f"`jupyter hop slurm cancel {job_id}` stops it",
                detail=tools.log_tail(log),
            )
        time.sleep(RECORD_POLL)


def _not_visible(paths: Paths, job_id: str, job: tools.JobState | None) -> str:
    node = f" on {job.node}" if job and job.node else ""
    return (f"Slurm job {job_id}'s Jupyter server is ready{node} (the job's comment says so), but its record did "
            f"not show up in {paths.records_dir} on this host within {RECORD_LAG:g} s: is {paths.state_dir} on "
            "a file system that the compute nodes share with this host? The job is left running: "
            f"`jupyter hop slurm instructions {job_id} --wait` waits again, `jupyter hop slurm cancel {job_id}` "
            "stops it")


def _own_record(paths: Paths, submission: Submission) -> Record | None:
    """The record of the job just submitted: its id, on the cluster it was submitted to."""
    try:
        paths.records_dir.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HopError(f"cannot look for the job's record in {paths.records_dir}: {exc.strerror}; check the state "
                       "directory's permissions (the job is left as it is)") from exc
    job_id, cluster = submission.job_id, submission.cluster
    found = records.find(paths, "job", job_id, lambda r: r.job_id == job_id and r.cluster in ("", cluster))
    return found[0][1] if found else None


def _exit(job: tools.JobState) -> str:
    parts = []
    if job.exit_code and job.exit_code != "0:0":
        parts.append(f"exit code {job.exit_code}")
    if job.reason and job.reason not in ("None",):
        parts.append(f"reason {job.reason}")
    return ", " + ", ".join(parts) if parts else ""


def with_end(record: Record, job: tools.JobState | None) -> Record:
    """The launcher may not know the job's end time; squeue does."""
    if record.job_end is None and job is not None and job.end:
        record.job_end = job.end
    return record


def find_record(paths: Paths, job_id: str) -> Record:
    """The record of a running job (with its end time), or an error that says what the job is doing instead.

    A record whose job has ended is left over by a launcher that was killed: it is removed, not shown.
    """
    record = records.find_job(paths, check_job_id(job_id))
    others = other_clusters(paths, job_id) if record is None and read_submission(paths, job_id) is None else []
    if others:
        raise HopError(other_cluster(job_id, others[0]))
    job = tools.job_state(job_id)
    if job is None or job.ended:
        if record is not None:
            forget(paths, job_id)
        state = f" ({job.state})" if job else ""
        raise HopError(f"Slurm job {job_id} is not running{state}; `jupyter hop slurm status` lists yours")
    if record is not None:
        return with_end(record, job)
    if phase_of(job) == "announced":
        raise HopError(
            f"Slurm job {job_id}'s server is ready on {job.node or 'its node'}, but its record has not shown up "
            f"on this host yet (a shared home on NFS can take a minute); "
            f"`jupyter hop slurm instructions {job_id} --wait` waits for it"
        )
    raise HopError(
        f"Slurm job {job_id} is {describe(job)} and its server is not ready yet; "
        f"`jupyter hop slurm instructions {job_id} --wait` waits for it"
    )


@dataclass
class JobStatus:
    job_id: str
    profile: str
    state: str
    reason: str
    node: str
    time_left: str
    ready: bool
    log: str
    expected_start: float | None = None  # epoch seconds, while it pends and Slurm has an estimate


def status(paths: Paths) -> list[JobStatus]:
    """The user's jupyter-hop jobs that Slurm still runs or queues: the job rows of the inventory, which also
    forgets ended ones (their submission note and any record a killed launcher left behind); logs are kept."""
    found = []
    for row in inventory.gather(paths, units=False).rows:
        job = row.job  # set on the rows of jobs Slurm still queues or runs
        if job is None:
            continue
        note = read_submission(paths, row.job_id)
        found.append(JobStatus(
            job_id=row.job_id,
            profile=row.profile,
            state=job.state,
            reason=job.reason,
            node=job.node,
            time_left=job.time_left,
            ready=row.state == "ready",
            log=note.log if note else "",
            expected_start=job.expected_start,
        ))
    return sorted(found, key=lambda status: int(status.job_id))


def cancel(paths: Paths, job_id: str, *, timeout: float = CANCEL_TIMEOUT) -> str:
    """scancel, wait until Slurm no longer runs the job, forget what jupyter-hop kept; the final state."""
    check_job_id(job_id)
    if read_submission(paths, job_id) is None and records.find_job(paths, job_id) is None:
        others = other_clusters(paths, job_id)
        if others:
            raise HopError(other_cluster(job_id, others[0]))
        raise HopError(f"Slurm job {job_id} was not submitted by jupyter-hop for you; "
                       "`jupyter hop slurm status` lists yours (scancel cancels any other)")
    job = tools.job_state(job_id)
    if not _gone(job):
        tools.scancel(job_id)
        deadline = time.monotonic() + timeout
        while not _gone(job):
            assert job is not None
            if time.monotonic() > deadline:
                raise HopError(f"Slurm job {job_id} is still {job.state} {timeout:.0f} s after scancel; "
                               "ask your administrators about the node")
            time.sleep(0.1)
            job = tools.job_state(job_id)
    forget(paths, job_id)
    return job.state if job else "ended"


def _gone(job: tools.JobState | None) -> bool:
    """Ended, and done ending: while COMPLETING, Slurm may still be stopping the job's processes."""
    return job is None or (job.ended and job.state != "COMPLETING")
