"""Checks for the systemd values a profile may carry."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jupyter_hop.errors import HopError

if TYPE_CHECKING:
    from jupyter_hop.profile import SystemdSettings

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MEMORY_RE = re.compile(r"[1-9]\d*[KMGT]?|\d{1,2}%|100%|infinity")
CPU_QUOTA_RE = re.compile(r"[1-9]\d{0,4}%")


def _bad(key: str, value: object, allowed: str) -> HopError:
    return HopError(f"systemd.{key} = {value!r} is not allowed: {allowed}")


def validate(s: SystemdSettings) -> None:
    for name, value in s.environment.items():
        if not ENV_NAME_RE.fullmatch(name):
            raise _bad("environment", name, "variable names of letters, digits and '_'")
        if any(c in value for c in "\n\r\x00"):
            raise _bad(f"environment.{name}", value, "a value on one line")
    if s.memory_max and not MEMORY_RE.fullmatch(s.memory_max):
        raise _bad("memory_max", s.memory_max, "a size such as 8G, a percentage such as 50%, or infinity")
    if s.cpu_quota and not CPU_QUOTA_RE.fullmatch(s.cpu_quota):
        raise _bad("cpu_quota", s.cpu_quota, "a percentage such as 200% (two CPUs)")
