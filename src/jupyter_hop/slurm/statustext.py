"""The words of a waiting job's status line, pure and portable (no POSIX-only import): the same text for the
remote's own line (slurm/progress.py, from squeue) and for the laptop's (laptop/objects.py, from the remote's
progress events), so both read alike."""

from __future__ import annotations

import shutil
from typing import IO

from jupyter_hop import timetext


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def state_text(state: str, *, reason: str = "", said: str = "", expected_start: float | None = None,
               node: str = "", ready: bool = False, now: float) -> str:
    """PENDING with why (`said`: the reason in words, "" for the code alone) and when it is expected to start;
    RUNNING with whether its server is up yet (`ready`: the launcher said so, its record is not visible yet)."""
    if state == "PENDING":
        head = f"PENDING: {said} ({reason})" if said and reason else f"PENDING ({reason})" if reason else "PENDING"
        start = "" if expected_start is None else timetext.expected_start(expected_start, now)
        return f"{head}, {start}" if start else head
    if state == "RUNNING":
        where = f" on {node}" if node else ""
        if ready:
            return f"RUNNING{where}, Jupyter is ready there; waiting for its record to show up on this host"
        return f"RUNNING{where}, starting Jupyter"
    return state


def line(job_id: str, long: str, short: str, elapsed: float, *, width: int | None = None) -> str:
    """`Slurm job ID: STATE... (M:SS)`; with a terminal `width`, the short form (the reason's code alone) when
    the long one would wrap, cut with "..." if even that is too long (a wrapped line defeats "\\r")."""
    text = f"Slurm job {job_id}: {long} ({clock(elapsed)})"
    if width is None:
        return text
    if len(text) > width:
        text = f"Slurm job {job_id}: {short} ({clock(elapsed)})"
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns - 1


class LiveLine:
    """One line on a stream: rewritten in place on a terminal, else printed only when its `key` changes (a log
    gets a line per change, not per second)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_key = ""
        self.last_text = ""

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
        """Take the line back (what follows replaces it)."""
        if self.tty and self.last_text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.last_text = ""

    def keep(self) -> None:
        """Leave the line as it stands and go on below it."""
        if self.tty and self.last_text:
            self.stream.write("\n")
            self.stream.flush()
        self.last_text = ""
