"""The unit a profile gets on this machine: the profile plus what this user manager and kernel offer.

Apart from ops.py so that `systemd render` imports only what rendering needs, not the tracking of servers, and
apart from systemctl.py (the manager's commands), which rendering does not run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jupyter_hop import proc
from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile.model import Profile
from jupyter_hop.systemd import unit as unit_file

# Where journald takes the output of services; without it the unit writes to a log file instead.
JOURNAL_STDOUT = Path("/run/systemd/journal/stdout")
UNIT_ROOT = Path("/run/systemd/unit-root")


def home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def build(paths: Paths, profile: Profile, run_args: Sequence[str] = ()) -> unit_file.UnitSpec:
    """The spec `install` would write on this machine now; `profile` already has the one-off overrides that
    `run_args` carry to the launcher (overrides.run_args)."""
    from jupyter_hop.server.serverconfig import resolved_root

    return unit_file.spec_for(
        profile,
        paths,
        root_dir=resolved_root(profile),
        home=home(),
        journal=journal_available(),
        private_users=private_tmp_possible(),
        run_args=run_args,
    )


def journal_available() -> bool:
    return JOURNAL_STDOUT.exists()


def private_tmp_possible() -> bool:
    """Whether a user unit can get PrivateTmp=: it needs a user namespace (PrivateUsers=), and the mount point
    /run/systemd/unit-root that PID 1 creates (a user manager cannot); without them the unit would fail."""
    unit_root = UNIT_ROOT.exists() or os.access(UNIT_ROOT.parent, os.W_OK)
    return unit_root and user_namespaces_available()


def user_namespaces_available() -> bool:
    """Whether this user may create a user namespace."""
    try:
        return proc.run(["unshare", "--user", "true"], timeout=10, what="asking for user namespaces").returncode == 0
    except HopError:
        return False
