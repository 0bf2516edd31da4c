"""Keeps a verified tunnel up (portable): an HTTP probe through it every few seconds, the connection checked when
it fails (`ssh -O check` on the master, or whether the tunnel's own ssh still runs), the forward re-opened (and
the master or the tunnel's ssh re-created, which may ask for authentication: said before it asks) with backoff,
and a stop on refused credentials instead of asking again in a loop.

One status line: node, job id, time left, tunnel state, URL; a warning (and a desktop notification where one
exists) some minutes before the job's end.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from jupyter_hop import proc
from jupyter_hop.errors import HopError
from jupyter_hop.laptop import objects, probe
from jupyter_hop.laptop.link import Link, LoginFailed

INTERVAL = 3.0  # between probes of a tunnel that answers
PROBE_TIMEOUT = 3.0
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # between attempts to re-open a tunnel that does not answer


@dataclass
class Tunnel:
    spec: str
    url: str
    reopen: Callable[[], None]  # opens the forward again over the (possibly re-created) master


def notify(title: str, text: str) -> None:
    """A desktop notification where the laptop has a tool for it; nothing where it has none."""
    if shutil.which("notify-send"):
        argv = ["notify-send", title, text]
    elif sys.platform == "darwin" and shutil.which("osascript"):
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        argv = ["osascript", "-e", f'display notification "{quoted}" with title "{title}"']
    else:
        return
    with contextlib.suppress(HopError):  # the warning is on the terminal already
        proc.run(argv, timeout=10, what="a desktop notification")


class Supervisor:
    def __init__(self, session: Link, tunnel: Tunnel, *, label: str, ends: float | None,
                 warn_before: float, err: IO[str], clock: Callable[[], float] = time.time) -> None:
        self.session, self.tunnel, self.label = session, tunnel, label
        self.ends, self.warn_before, self.err, self.clock = ends, warn_before, err, clock
        self.warned = False
        self.state = "up"
        self.shown = ""

    def line(self) -> str:
        parts = [self.label]
        if self.ends is not None:
            parts.append(f"{objects.left(self.ends - self.clock())} left")
        parts += [f"tunnel {self.state}", self.tunnel.url]
        return " | ".join(parts)

    def show(self) -> None:
        text = self.line()
        if self.err.isatty():
            self.err.write("\r\033[K" + text)
        elif text.split(" | ")[-2:] != self.shown.split(" | ")[-2:]:  # a log gets a line per tunnel change only
            self.err.write(text + "\n")
        self.shown = text
        self.err.flush()

    def end_line(self) -> None:
        if self.shown and self.err.isatty():
            self.err.write("\n")
            self.err.flush()

    def say(self, text: str) -> None:
        self.end_line()
        self.err.write(text + "\n")
        self.err.flush()
        self.shown = ""

    def check_end(self) -> bool:
        """Warn once before the job's end; True once it has ended."""
        if self.ends is None:
            return False
        remaining = self.ends - self.clock()
        if remaining <= 0:
            self.say(f"{self.label} reached its time limit; the tunnel is closed.")
            return True
        if not self.warned and remaining <= self.warn_before:
            self.warned = True
            text = f"{self.label} ends in {objects.left(remaining)}: save your work."
            self.say(f"Warning: {text}")
            notify("jupyter-hop", text)
        return False

    def repair(self) -> None:
        """Re-open the forward; a connection that is gone is re-created first (the user may be asked again)."""
        if not self.session.connected():
            self.say(f"The ssh connection to {self.session.host} is gone; reconnecting (ssh may ask you to "
                     "authenticate again).")
        self.tunnel.reopen()

    def run(self) -> None:
        """Until Ctrl-C (KeyboardInterrupt) or the job's end; refused credentials end it with a HopError."""
        attempt = 0
        self.show()
        while True:
            if self.check_end():
                return
            if probe.status(self.tunnel.url, timeout=PROBE_TIMEOUT) is not None:
                if self.state != "up":
                    self.state = "up"
                attempt = 0
                self.show()
                time.sleep(INTERVAL)
                continue
            self.state = "down, re-opening"
            self.show()
            try:
                self.repair()
            except LoginFailed as exc:
                if exc.auth:
                    raise HopError(f"{exc.message}; not trying again (run connect again to re-enter your "
                                   "credentials)", detail=exc.detail) from exc
            except HopError:
                pass  # the network may still be down: the next attempt after the backoff
            if probe.status(self.tunnel.url, timeout=PROBE_TIMEOUT) is not None:
                self.state = "up"
                attempt = 0
                self.show()
                continue
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1
