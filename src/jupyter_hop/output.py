"""Printing results as text for people or as JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_hop.tracking.records import Record


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def say(text: str = "") -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def warn(text: str) -> None:
    sys.stderr.write(f"jupyter-hop: warning: {text}\n")
    sys.stderr.flush()


def show_instructions(record: Record, style: str) -> None:
    """Print a server's instructions for the user at this terminal: the token only if stdout is a terminal."""
    from jupyter_hop.tracking import instructions

    text = instructions.render(record, style=style, show_secret=sys.stdout.isatty(), hop=instructions.invocation())
    sys.stdout.write(text)
    sys.stdout.flush()
