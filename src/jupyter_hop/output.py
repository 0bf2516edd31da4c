"""Printing results as text for people or as JSON for scripts."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from jupyter_hop.errors import HopError

if TYPE_CHECKING:
    from jupyter_hop.tracking.records import Record


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def table(lines: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks; the first line is the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n"
                   for line in lines)


def say(text: str = "") -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    """A line for people on stderr: with --json, stdout carries the one object and nothing else."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    sys.stderr.write(f"jupyter-hop: warning: {text}\n")
    sys.stderr.flush()


def show_instructions(
    record: Record, style: str, *, as_json: bool = False, show_token: bool = False, log: str = ""
) -> None:
    """Print a server's instructions for the user at this terminal (the token only if stdout is a terminal, or
    with --show-token), or with `as_json` the protocol's one object (the token only with --show-token)."""
    import time

    from jupyter_hop import protocol
    from jupyter_hop.tracking import instructions

    hop = instructions.invocation()
    if as_json:
        show_object(protocol.ready(record, hop=hop, show_token=show_token, now=time.time(), log=log))
        return
    show_secret = show_token or sys.stdout.isatty()
    sys.stdout.write(instructions.render(record, style=style, show_secret=show_secret, hop=hop))
    sys.stdout.flush()


def show_object(obj: dict[str, Any]) -> None:
    """The --json object of a command that starts a server or prints its instructions: one line, flushed."""
    from jupyter_hop import protocol

    sys.stdout.write(protocol.dumps(obj))
    sys.stdout.flush()


def write_or_fail(out: IO[str], text: str, what: str, consequence: str) -> None:
    """Write and flush `text`; a closed stdout (`jupyter hop run | true`) becomes one line of error."""
    try:
        out.write(text)
        out.flush()
    except OSError as exc:
        with contextlib.suppress(OSError, ValueError):
            # The unwritten text stays buffered: exit would flush it again and print "Exception ignored".
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        raise HopError(
            f"cannot print {what}: standard output failed ({exc.strerror}; did the reader of a pipe exit?); "
            + consequence
        ) from None
