"""How `submit` reports a job's progress while it waits: a status line for people, JSON lines for programs."""

from __future__ import annotations

from typing import IO, Protocol

from jupyter_hop import protocol
from jupyter_hop.slurm.tools import JobState


class Progress(Protocol):
    """What wait_ready tells as it polls: the job's latest state, and that waiting is over."""

    def job(self, job: JobState, elapsed: float) -> None: ...

    def clear(self) -> None: ...


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(job: JobState) -> str:
    if job.state == "PENDING":
        return f"PENDING ({job.reason})" if job.reason else "PENDING"
    if job.state == "RUNNING":
        return f"RUNNING on {job.node}, starting Jupyter" if job.node else "RUNNING, starting Jupyter"
    return job.state


class StatusLine:
    """One line on stderr: rewritten in place on a terminal, else printed only when the state changes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_key = ""
        self.last_text = ""

    def job(self, job: JobState, elapsed: float) -> None:
        self.show(describe(job), f"Slurm job {job.job_id}: {describe(job)} ({clock(elapsed)})")

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
    """One JSON event per line (protocol.progress_event) each time the job's state, reason or node changes, so
    that a program reading stderr sees every change once and stdout keeps the one object."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last: tuple[str, str, str] | None = None

    def job(self, job: JobState, elapsed: float) -> None:
        key = (job.state, job.reason, job.node)
        if key != self.last:
            self.stream.write(protocol.dumps(protocol.progress_event(job, elapsed)))
            self.stream.flush()
            self.last = key

    def clear(self) -> None:
        """Nothing to take back: every line stays as written."""
