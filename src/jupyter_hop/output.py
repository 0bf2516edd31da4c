"""Printing results as text for people or as JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def say(text: str = "") -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def warn(text: str) -> None:
    sys.stderr.write(f"jupyter-hop: warning: {text}\n")
    sys.stderr.flush()
