"""Where the server's output goes: a journal or job log gets all of it, a terminal only what needs a person."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO

from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import private_dir
from jupyter_hop.paths import Paths

# Jupyter's log lines start "[W 2026-12-01 22:00:00.123 ServerApp] ": the level's initial, then a time stamp.
LOG_LINE = re.compile(r"\[([A-Z]) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
# tornado colours the level only when the server's own stderr is a terminal, which a pipe to us never is;
# stripped anyway, so that a log configured to colour still classifies.
ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z])")  # CSI, and curses' sgr0 "\x1b(B\x1b[m"
CHATTER = frozenset("DI")  # debug and info: start-up, extensions loaded, requests answered
NOT_LOG = "?"  # a line that is no part of Jupyter's log (a Python warning, a kernel's or extension's print)


def level(line: str, previous: str) -> str:
    """The level of one line of server output, given the level of the line before it ("" at the start).

    tornado indents every further line of a record (a traceback, a multi-line message) by four spaces, and a
    Python warning's source line is indented too: such lines, and blank ones, belong to the line before.
    A line that is not Jupyter's log counts as news: hiding what we cannot classify could hide a crash.
    """
    plain = ANSI.sub("", line)
    match = LOG_LINE.match(plain)
    if match:
        return match.group(1)
    if previous and (not plain.strip() or plain[0] in " \t"):
        return previous
    return NOT_LOG


def shown(line_level: str) -> bool:
    """Whether a terminal shows a line of this level without --verbose: warnings, errors, and what is not a log."""
    return line_level not in CHATTER


def log_file(paths: Paths, profile: str, host: str) -> Path:
    """The launch log of a run on a terminal; per host too, because the state dir is shared between nodes."""
    return paths.logs_dir / f"run-{profile}@{host}.log"


class ServerOutput:
    """Takes the server's output line by line (from the pump thread) and sends each line where it belongs."""

    def __init__(self, terminal: IO[str], log: IO[str] | None = None, path: Path | None = None,
                 everything: bool = True) -> None:
        self.terminal, self.log, self.path, self.everything = terminal, log, path, everything
        self._level = ""

    def write(self, line: str) -> None:
        self._level = level(line, self._level)
        if self.log is not None:
            try:
                self.log.write(line)
                self.log.flush()
            except ValueError:  # closed at the end of the run while the pump still drained the pipe
                pass
            except OSError as exc:
                self._lost_log(exc)
        if self.everything or shown(self._level):
            with contextlib.suppress(OSError, ValueError):
                self.terminal.write(line)
                self.terminal.flush()

    def _lost_log(self, exc: OSError) -> None:
        self.log = None
        self.everything = True  # with no file to keep it, the rest of the log goes to the terminal after all
        with contextlib.suppress(OSError, ValueError):
            self.terminal.write(f"jupyter-hop: warning: cannot write {self.path} ({exc.strerror}); "
                                "the rest of the server log shows here\n")

    @property
    def log_path(self) -> Path | None:
        """The log file's path while it is still this launch's (a later launch of the profile replaces it)."""
        if self.log is None or self.path is None:
            return None
        try:
            here, ours = os.stat(self.path), os.fstat(self.log.fileno())
        except (OSError, ValueError):
            return None
        return self.path if (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino) else None

    def close(self) -> None:
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.close()


def for_launch(paths: Paths, profile: str, host: str, err: IO[str], verbose: bool) -> ServerOutput:
    """All output to `err` when it is not a terminal (a unit's journal, a job's log: the admin's full record);
    on a terminal, all of it to a fresh launch log file, and to the terminal what `shown` keeps (or, verbose, all).
    """
    if not err.isatty():
        return ServerOutput(err)
    path = log_file(paths, profile, host)
    directory = private_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    except OSError as exc:
        raise HopError(f"cannot create the server log {path}: {exc.strerror}") from exc
    try:
        # Replaced, not truncated: a `tail -f` of the last launch, or a launch of this profile still running,
        # keeps its own file instead of seeing this one's lines mixed into it.
        os.replace(tmp, path)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise HopError(f"cannot create the server log {path}: {exc.strerror}") from exc
    log = os.fdopen(fd, "w", encoding="utf-8")
    return ServerOutput(err, log, path, everything=verbose)
