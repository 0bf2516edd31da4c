"""Which host and Slurm cluster this process runs on, so records of other machines on a shared home are left alone."""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
from pathlib import Path

from jupyter_hop import proc
from jupyter_hop.errors import HopError

# Where Slurm's tools look for their configuration (the last one: configless nodes cache it there).
SLURM_CONF_FILES = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf/slurm.conf")
# Slurm's own rule is looser; this is what is safe inside a file name and a printed line.
CLUSTER_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def this_host() -> str:
    return socket.gethostname()


def is_this_host(host: str) -> bool:
    """Records of runs and units carry the full host name, job records Slurm's short node name."""
    here = this_host()
    return host in (here, here.split(".")[0])


def slurm_conf() -> Path | None:
    """The slurm.conf the tools here read, or None when there is none."""
    conf = os.environ.get("SLURM_CONF")
    candidates = [conf] if conf else list(SLURM_CONF_FILES)
    return next((Path(p) for p in candidates if Path(p).is_file()), None)


def check_cluster(name: str, origin: str) -> str:
    """Slurm maps cluster names to lower case; anything else than a plain name is refused, never used in a path."""
    lowered = name.strip().lower()
    if not CLUSTER_RE.fullmatch(lowered):
        raise HopError(f"{origin} = {name!r} is not a Slurm cluster name (letters, digits, '.', '_', '-'); "
                       "ask your administrators, or unset it")
    return lowered


@functools.cache
def this_cluster() -> str:
    """The Slurm cluster this host belongs to ("" when it is not known here).

    Inside a job Slurm sets SLURM_CLUSTER_NAME; elsewhere slurm.conf names it, and only when that file leaves it
    to an included file is `scontrol show config` (a round trip to the controller) asked.
    """
    env = os.environ.get("SLURM_CLUSTER_NAME", "")
    if env:
        return check_cluster(env, "SLURM_CLUSTER_NAME")
    conf = slurm_conf()
    if conf is None:
        return ""
    found = _conf_value(conf, "ClusterName")
    if found is None:
        found = _scontrol_cluster()
    return check_cluster(found, f"ClusterName in {conf}") if found else ""


def _conf_value(conf: Path, key: str) -> str | None:
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, sep, value = line.split("#", 1)[0].partition("=")
        if sep and name.strip().lower() == key.lower():
            return value.strip()
    return None


def _scontrol_cluster() -> str:
    scontrol = shutil.which("scontrol")
    if not scontrol:
        return ""
    try:
        out = proc.run([scontrol, "show", "config"], timeout=10, what="asking Slurm for its cluster name").stdout
    except HopError:
        return ""
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "ClusterName":
            return value.strip()
    return ""


def is_this_cluster(cluster: str) -> bool:
    """A record without a cluster (an older jupyter-hop wrote it) counts as this cluster's, as it always did."""
    return not cluster or cluster == this_cluster()
