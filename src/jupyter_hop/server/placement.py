"""Where a launch runs and how the user reaches it: host, user, job and login node, each checked before use.

Every value here reaches lines the user pastes, so the environment's (SLURM_SUBMIT_HOST, SLURMD_NODENAME, the
login name) are checked with the profile's rules, naming the variable that held a bad one.
"""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from jupyter_hop.errors import HopError
from jupyter_hop.fields import Kind
from jupyter_hop.profile.model import Profile, check_host, check_user
from jupyter_hop.tracking import place


@dataclass
class Placement:
    """Where this launch runs and how the user will reach it; resolved once from the environment."""

    kind: Kind
    host: str
    ssh_user: str
    login_host: str = ""
    ssh_host: str = ""
    job_id: str = ""
    unit: str = ""


def placement(profile: Profile, env: Mapping[str, str]) -> Placement:
    """Every value here reaches lines the user pastes, so the environment's are checked with the profile's rules
    (a host name cannot start with '-' or hold a newline), naming the variable that held a bad one."""
    user = profile.ssh.user or check_user(*_login_name(env))
    job_id = env.get("SLURM_JOB_ID", "")
    if job_id:
        if not job_id.isascii() or not job_id.isdigit():
            raise HopError(f"SLURM_JOB_ID = {job_id!r} is not allowed: a Slurm job id (digits)")
        node = _env_host(env, "SLURMD_NODENAME") or _this_host(short=True)
        # The concrete login node the job came from: a load-balanced alias may land on another one.
        login = profile.ssh.login_host or _env_host(env, "SLURM_SUBMIT_HOST")
        return Placement("job", node, user, login_host=login, job_id=job_id)
    host = _this_host(short=False)
    unit = env.get("JUPYTER_HOP_UNIT", "")
    kind: Kind = "unit" if unit else "run"
    return Placement(kind, host, user, ssh_host=profile.ssh.login_host or host, unit=unit)


def check_show_token(env: Mapping[str, str]) -> None:
    """--show-token only where stdout is the user's own: inside a batch job it is the job log, inside our unit
    the journal (or the unit's log file), both kept and readable later, perhaps by others."""
    job_id = env.get("SLURM_JOB_ID", "")
    if job_id:
        raise HopError(
            f"--show-token is not allowed inside a Slurm job (SLURM_JOB_ID = {job_id!r}): its output is the job "
            "log; run the command on a login node (`jupyter hop slurm instructions JOBID --json --show-token`)"
        )
    unit = env.get("JUPYTER_HOP_UNIT", "")
    if unit:
        raise HopError(
            f"--show-token is not allowed inside a systemd unit (JUPYTER_HOP_UNIT = {unit!r}): its output goes "
            "to the journal; run `jupyter hop instructions PROFILE --json --show-token` in your own shell"
        )


def _login_name(env: Mapping[str, str]) -> tuple[str, str]:
    """Where the user name comes from (for the error) and what it is, in getpass.getuser()'s order."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if env.get(var):
            return var, env[var]
    return f"the user name of uid {os.getuid()}", pwd.getpwuid(os.getuid()).pw_name


def _env_host(env: Mapping[str, str], var: str) -> str:
    value = env.get(var, "")
    return check_host(var, value) if value else ""


def _this_host(*, short: bool) -> str:
    name = place.this_host()
    return check_host("this host's name (hostname)", name.split(".")[0] if short else name)


def node_address(host: str) -> str:
    """The address other cluster hosts reach this one at: what its name resolves to, never loopback."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise HopError(
            f"server.bind = 'node': host name {host!r} does not resolve ({exc}); use bind = localhost"
        ) from exc
    for info in infos:
        address = str(info[4][0])
        if not address.startswith("127."):
            return address
    raise HopError(
        f"server.bind = 'node': host name {host!r} resolves only to loopback; use bind = localhost or socket"
    )


def cluster_of(where: Placement) -> str:
    """A job's cluster, which keys its record; never an error once the server runs (Slurm sets the variable from
    its own configuration, so a bad value is not expected: the record is then unkeyed, as older ones were)."""
    if where.kind != "job":
        return ""
    try:
        return place.this_cluster()
    except HopError:
        return ""
