"""Slurm batch scripts: the template's model from a profile, the paths of scripts and job logs, and rendering."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile.model import Profile
from jupyter_hop.slurm.settings import option_name

TEMPLATE = "slurm/jupyter-hop.sbatch.j2"
# Exported into the job only when set at render time, so the job writes its record where submit looks for it
# even when a site submits with --export=NONE.
EXPORTED = ("XDG_CONFIG_HOME", "XDG_STATE_HOME")

class BatchScript(NamedTuple):
    """Exactly the template's variables (a NamedTuple: cheaper to define than a dataclass, on every render)."""

    profile: str
    directives: list[tuple[str, str]]  # (--option, value), quoted by the template
    extra_directives: list[str]  # the profile's own lines, verbatim, as sbatch reads them
    environment: list[tuple[str, str]]
    setup: list[str]
    python: str


def log_pattern(paths: Paths, profile: str) -> str:
    """The --output value: the private jobs dir, with Slurm's %j for the job id."""
    jobs = str(paths.jobs_dir)
    if "\\" in jobs:
        # a backslash anywhere in the path turns off Slurm's %j replacement
        raise HopError(f"the state directory {jobs} contains a backslash, which Slurm's --output cannot use; "
                       "set XDG_STATE_HOME to a plain path")
    return jobs.replace("%", "%%") + f"/{profile}-%j.log"


def log_path(paths: Paths, profile: str, job_id: str) -> Path:
    return paths.jobs_dir / f"{profile}-{job_id}.log"


def script_path(paths: Paths, profile: str) -> Path:
    return paths.jobs_dir / f"{profile}.sbatch"


def batch_script(
    profile: Profile, paths: Paths, env: Mapping[str, str] | None = None, python: str | None = None
) -> BatchScript:
    """The script's model; `env` and `python` default to this process's, which is what the job must run."""
    env = os.environ if env is None else env
    python = sys.executable if python is None else python
    if not python or not os.path.isabs(python):
        raise HopError(f"the Python path {python!r} is not absolute; run jupyter-hop from its environment")
    s = profile.slurm
    generated = [
        ("--job-name", s.job_name),
        ("--nodes", "1"),
        ("--ntasks", "1"),
        ("--cpus-per-task", str(s.cpus)),
        ("--time", s.time),
        ("--mem", s.mem),
        ("--partition", s.partition),
        ("--account", s.account),
        ("--qos", s.qos),
        ("--constraint", s.constraint),
        ("--gpus", s.gpus),
        ("--gres", s.gres),
        ("--output", log_pattern(paths, profile.name)),
        # B: to the batch shell only, which is the launcher (exec): it stops the server and removes the record
        ("--signal", f"B:TERM@{s.signal_grace}"),
    ]
    skipped = {option_name(name) for name in s.skip_directives}
    extra = [line for line in s.extra_directives if option_name(line) not in skipped]
    overridden = {option_name(line) for line in extra}  # a profile's own directive replaces ours
    directives = [(n, v) for n, v in generated if v and n not in skipped and n not in overridden]
    environment = [(name, env[name]) for name in EXPORTED if env.get(name)]
    return BatchScript(profile.name, directives, extra, environment, list(s.setup), python)


def render(script: BatchScript) -> str:
    from jupyter_hop import templates

    return templates.render(TEMPLATE, **script._asdict())
