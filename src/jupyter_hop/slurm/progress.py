"""How `submit` reports a job's progress while it waits: a status line for people, JSON lines for programs."""

from __future__ import annotations

import shutil
import time
from typing import IO, Protocol

from jupyter_hop import protocol, timetext
from jupyter_hop.slurm import comment, reasons
from jupyter_hop.slurm.tools import JobState


class Progress(Protocol):
    """What wait_ready tells as it polls: the job's latest state, and that waiting is over."""

    def job(self, job: JobState, elapsed: float) -> None: ...

    def clear(self) -> None: ...


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def expected(job: JobState, now: float) -> str:
    """"expected start 18:05 UTC (in 12 min)", or "" while Slurm has no estimate."""
    return "" if job.expected_start is None else timetext.expected_start(job.expected_start, now)


def describe(job: JobState, now: float | None = None, *, words: bool = True) -> str:
    """The job's state in one line: PENDING with why (in words and Slurm's code) and when it is expected to start;
    RUNNING with whether its server is up yet. `words=False` is the short form, the reason's code alone."""
    now = time.time() if now is None else now
    if job.state == "PENDING":
        said = reasons.words(job.reason) if words else ""
        head = f"PENDING: {said} ({job.reason})" if said else f"PENDING ({job.reason})" if job.reason else "PENDING"
        start = expected(job, now)
        return f"{head}, {start}" if start else head
    if job.state == "RUNNING":
        node = f" on {job.node}" if job.node else ""
        note = comment.parse(job.comment)
        if note is not None and note.ready:
            # the launcher says so (in the job's comment), but this host does not see its record yet
            return f"RUNNING{node}, Jupyter is ready there; waiting for its record to show up on this host"
        return f"RUNNING{node}, starting Jupyter"
    return job.state


def change(job: JobState) -> str:
    """What a new line is printed for when not on a terminal: a change of state, reason, estimate or readiness
    (not the minutes counting down to the estimate)."""
    start = int(job.expected_start // 60) if job.expected_start is not None else None
    note = comment.parse(job.comment)
    return f"{job.state}|{job.reason}|{job.node}|{start}|{bool(note and note.ready)}"


class StatusLine:
    """One line on stderr: rewritten in place on a terminal, else printed only when the state changes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_key = ""
        self.last_text = ""

    def job(self, job: JobState, elapsed: float) -> None:
        now = time.time()
        text = f"Slurm job {job.job_id}: {describe(job, now)} ({clock(elapsed)})"
        if self.tty:
            # a line longer than the terminal wraps, and "\r" would then rewrite only its last part
            width = shutil.get_terminal_size((80, 24)).columns - 1
            if len(text) > width:
                text = f"Slurm job {job.job_id}: {describe(job, now, words=False)} ({clock(elapsed)})"
            text = text if len(text) <= width else text[: max(width - 3, 0)] + "..."
        self.show(change(job), text)

    def show(self, key: str, text: str) -> None:
        if self.tty:
            if text != self.last_text:
                self.stream.write("\r" + text + "\x1b[K")
                self.stream.flush()
        elif key != self.last_key:
            self.stream.write(text + "\n")
            self.stream.flush()
        self.last_key, self.last_text = key, text

    def clear(self) -> None:
        if self.tty and self.last_text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.last_text = ""


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
