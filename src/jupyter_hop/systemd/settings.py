"""Checks for the systemd values a profile may carry, and for paths that go into a unit file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from jupyter_hop.errors import HopError
from jupyter_hop.patterns import lazy

ENV_NAME_RE = lazy(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MEMORY_RE = lazy(r"[1-9]\d*[KMGT]?|\d{1,2}%|100%|infinity")
CPU_QUOTA_RE = lazy(r"[1-9]\d{0,4}%")
# Variables the unit sets itself: a profile overriding them would point the launcher at other files.
OWNED_ENV = frozenset({"JUPYTER_HOP_UNIT", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "NOTIFY_SOCKET"})
# Anything that ends a line, or that systemd would read as something other than text, cannot be carried.
_CONTROL_RE = lazy(r"[\x00-\x1f\x7f]")



@dataclass
class SystemdSettings:
    """The profile's [systemd] table: the user unit's environment and resource limits."""

    environment: dict[str, str] = field(default_factory=dict)
    memory_max: str = ""
    cpu_quota: str = ""


def _bad(key: str, value: object, allowed: str) -> HopError:
    return HopError(f"systemd.{key} = {value!r} is not allowed: {allowed}")


def validate(s: SystemdSettings) -> None:
    for name, value in s.environment.items():
        if not ENV_NAME_RE.fullmatch(name):
            raise _bad("environment", name, "variable names of letters, digits and '_'")
        if name in OWNED_ENV:
            raise _bad("environment", name, "jupyter-hop sets " + name + " in the unit itself")
        if _CONTROL_RE.search(value):
            raise _bad(f"environment.{name}", value, "a value on one line, without control characters")
    if s.memory_max and not MEMORY_RE.fullmatch(s.memory_max):
        raise _bad("memory_max", s.memory_max, "a size such as 8G, a percentage such as 50%, or infinity")
    if s.cpu_quota and not CPU_QUOTA_RE.fullmatch(s.cpu_quota):
        raise _bad("cpu_quota", s.cpu_quota, "a percentage such as 200% (two CPUs)")


def unit_path(key: str, path: str) -> str:
    """`path` when systemd reads it back unchanged in a path setting (WorkingDirectory=, append:).

    Path settings are not unquoted, so the only escape is `%%`; what systemd would strip or normalise away
    (surrounding blanks, `.`/`..`, doubled slashes) or read as a continued line (a trailing backslash) is refused.
    """
    if _CONTROL_RE.search(path):
        raise HopError(f"{key} = {path!r} cannot go into a systemd unit: it contains a control character")
    if path.endswith("\\"):
        # a backslash at the end of a line joins the next line to it
        raise HopError(f"{key} = {path!r} cannot go into a systemd unit: it ends with a backslash")
    if not path.startswith("/") or path != path.strip() or os.path.normpath(path) != path or "//" in path:
        raise HopError(
            f"{key} = {path!r} cannot go into a systemd unit: use an absolute, normalised path "
            "without leading or trailing blanks"
        )
    return path
