"""Reading a remote `--json` command that waits (portable): its progress events as one live status line, in the
words of the remote's own (laptop/objects.progress_text), whose clock keeps counting between events on a
terminal; its lines for people kept as evidence; its one object left on stdout for the caller."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from jupyter_hop.laptop import objects
from jupyter_hop.slurm import statustext

REFRESH = 1.0  # seconds between redraws of a terminal's line while no event comes


@dataclass
class Followed:
    code: int
    stdout: str
    kept: list[str]  # the remote's stderr lines that were not events


def _pump(stream: Iterable[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def read(process: subprocess.Popen[str], err: IO[str], *,
         on_event: Callable[[dict[str, Any]], None] = lambda found: None) -> Followed:
    """Until the remote command ends; a KeyboardInterrupt leaves the line as it stood and goes through."""
    assert process.stdout is not None and process.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    # a thread, not select(): pipes cannot be polled on Windows, and the line's clock must move without events
    threading.Thread(target=_pump, args=(process.stderr, lines), daemon=True).start()
    live = statustext.LiveLine(err)
    kept: list[str] = []
    latest: tuple[dict[str, Any], float] | None = None
    try:
        while True:
            try:
                line = lines.get(timeout=REFRESH)
            except queue.Empty:
                line = ""  # only the clock moved
            if line is None:
                break
            found = objects.event(line) if line else None
            if line and found is None:
                kept.append(line.rstrip("\n"))
                continue
            if found is not None:
                on_event(found)
                latest = (found, time.monotonic())
            if latest is not None:
                event, at = latest
                width = statustext.terminal_width() if live.tty else None
                text = objects.progress_text(event, since=time.monotonic() - at, width=width)
                live.show(objects.progress_key(event), text)
        stdout = process.stdout.read()
        code = process.wait()
    finally:
        live.keep()
    return Followed(code, stdout, kept)
