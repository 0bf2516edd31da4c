"""How `submit` reports a job's progress while it waits: a status line for people, JSON lines for programs."""

from __future__ import annotations

import time
from typing import IO, Protocol

from jupyter_hop import protocol
from jupyter_hop.slurm import comment, reasons, statustext
from jupyter_hop.slurm.statustext import clock as clock  # where it always was, for callers of progress
from jupyter_hop.slurm.tools import JobState


class Progress(Protocol):
    """What wait_ready tells as it polls: the job's latest state, and that waiting is over."""

    def job(self, job: JobState, elapsed: float) -> None: ...

    def clear(self) -> None: ...


def describe(job: JobState, now: float | None = None, *, words: bool = True) -> str:
    """The job's state in one line: PENDING with why (in words and Slurm's code) and when it is expected to start;
    RUNNING with whether its server is up yet. `words=False` is the short form, the reason's code alone."""
    now = time.time() if now is None else now
    note = comment.parse(job.comment)
    return statustext.state_text(job.state, reason=job.reason, said=reasons.words(job.reason) if words else "",
                                 expected_start=job.expected_start, node=job.node,
                                 ready=bool(note and note.ready), now=now)


def change(job: JobState) -> str:
    """What a new line is printed for when not on a terminal: a change of state, reason, estimate or readiness
    (not the minutes counting down to the estimate)."""
    start = int(job.expected_start // 60) if job.expected_start is not None else None
    note = comment.parse(job.comment)
    return f"{job.state}|{job.reason}|{job.node}|{start}|{bool(note and note.ready)}"


class StatusLine(statustext.LiveLine):
    """One line on stderr: rewritten in place on a terminal, else printed only when the state changes."""

    def job(self, job: JobState, elapsed: float) -> None:
        now = time.time()
        width = statustext.terminal_width() if self.tty else None
        text = statustext.line(job.job_id, describe(job, now), describe(job, now, words=False), elapsed,
                               width=width)
        self.show(change(job), text)


class JsonProgress:
    """One JSON event per line (protocol.progress_event) each time the job's state, reason, node, expected start or
    readiness changes, so
    that a program reading stderr sees every change once and stdout keeps the one object."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last: str | None = None

    def job(self, job: JobState, elapsed: float) -> None:
        key = change(job)
        if key != self.last:
            self.stream.write(protocol.dumps(protocol.progress_event(job, elapsed)))
            self.stream.flush()
            self.last = key

    def clear(self) -> None:
        """Nothing to take back: every line stays as written."""
