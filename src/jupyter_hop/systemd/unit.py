"""The systemd user unit of a profile: a typed spec built from the profile, rendered by a pure function."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.patterns import lazy
from jupyter_hop.profile.model import Profile, check_name
from jupyter_hop.systemd.settings import unit_path
from jupyter_hop.templates import systemd_path  # noqa: F401 (the filter, re-exported for tests)

TEMPLATE = "units/jupyter-hop.service.j2"
# The launcher starts after Python imports and config writing; its own ready_timeout deadline should fire
# (with an explanation and the server log) before systemd's blunter start timeout does.
START_MARGIN = 30
PRIVATE_TMP = ("/tmp", "/var/tmp")


UNIT_PREFIX = "jupyter-hop-"
UNIT_SUFFIX = ".service"


def unit_name(profile: str) -> str:
    return f"{UNIT_PREFIX}{check_name(profile)}{UNIT_SUFFIX}"


class UnitSpec(NamedTuple):
    """Everything the unit template uses; its fields are exactly the template's variables (raw values:
    the template's filters do all escaping). A NamedTuple: cheaper to define than a dataclass, on every render."""

    profile: str
    unit: str
    python: str  # absolute interpreter of the environment that installs the unit
    home: str  # paths below it are written as %h/..., which reads better and survives a moved home
    working_dir: str
    config_home: str  # XDG_CONFIG_HOME for the launcher, so it reads this same profile
    state_home: str  # XDG_STATE_HOME for the launcher, so records land where `status` looks
    timeout_start: int
    environment: dict[str, str]
    memory_max: str = ""
    cpu_quota: str = ""
    log_file: str = ""  # the output file when no journal runs; "" = the journal
    private_users: bool = True  # a user manager gives PrivateTmp= effect only inside a user namespace
    run_args: tuple[str, ...] = ()  # one-off overrides for `run`, such as ("--port", "9000"), already checked


def _visible(key: str, path: str) -> str:
    """`path`, unless it lies in /tmp or /var/tmp, which PrivateTmp= replaces with empty dirs for the unit."""
    for hidden in PRIVATE_TMP:
        if path == hidden or path.startswith(hidden + "/"):
            raise HopError(
                f"{key} = {path!r} is under {hidden}, which the unit cannot see (it gets a private {hidden}): "
                "choose a directory elsewhere, e.g. in your home"
            )
    return unit_path(key, path)


def spec_for(
    profile: Profile,
    paths: Paths,
    *,
    root_dir: Path,
    home: Path,
    python: str | None = None,
    journal: bool,
    private_users: bool,
    run_args: Sequence[str] = (),
) -> UnitSpec:
    """The unit for `profile`, every value checked; `journal` and `private_users` describe the machine."""
    home_text = str(home).rstrip("/") or "/"
    try:
        unit_path("HOME", home_text)
    except HopError:
        home_text = ""  # an odd home is still fine for absolute paths; it just is not abbreviated
    log_file = "" if journal else _visible("the unit log file", str(log_path(paths, profile.name)))
    return UnitSpec(
        profile=profile.name,
        unit=unit_name(profile.name),
        python=unit_path("the Python interpreter", os.path.abspath(python or sys.executable)),
        home=home_text,
        working_dir=_visible("server.root_dir", str(root_dir)),
        config_home=_visible("XDG_CONFIG_HOME", str(paths.config_dir.parent)),
        state_home=_visible("XDG_STATE_HOME", str(paths.state_dir.parent)),
        timeout_start=profile.server.ready_timeout + START_MARGIN,
        environment=dict(profile.systemd.environment),
        memory_max=profile.systemd.memory_max,
        cpu_quota=profile.systemd.cpu_quota,
        log_file=log_file,
        private_users=private_users,
        run_args=tuple(run_args),
    )


def log_path(paths: Paths, profile: str) -> Path:
    """Where the unit's output goes on machines without a journal."""
    return paths.logs_dir / f"unit-{profile}.log"


# One word of an Exec line as the `systemd` filter writes it: double-quoted with \\ \" %% $$, or bare.
_EXEC_WORD = lazy(r'"((?:[^"\\]|\\.)*)"|([^\s"]+)')


def run_args_of(text: str, profile: str) -> list[str] | None:
    """The options after `run PROFILE` on the ExecStart line of a unit this module rendered; None when the
    text has no such line (edited by hand, or not ours)."""
    lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    if len(lines) != 1:
        return None
    line = lines[0][len("ExecStart="):]
    words: list[str] = []
    position = 0
    for match in _EXEC_WORD.compiled.finditer(line):
        if line[position:match.start()].strip():
            return None
        quoted, bare = match.groups()
        word = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        words.append(word.replace("%%", "%").replace("$$", "$"))
        position = match.end()
    if line[position:].strip() or words[1:5] != ["-m", "jupyter_hop", "run", profile]:
        return None
    return words[5:]


def render(spec: UnitSpec) -> str:
    """The unit file text; all quoting happens in the template, through the `systemd` filters."""
    from jupyter_hop import templates

    return templates.render(TEMPLATE, **spec._asdict())
