"""The unit a profile gets on this machine: the profile plus what this user manager and kernel offer.

Apart from ops.py so that `systemd render` imports only what rendering needs, not the tracking of servers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jupyter_hop.paths import Paths
from jupyter_hop.profile.model import Profile
from jupyter_hop.systemd import systemctl
from jupyter_hop.systemd import unit as unit_file


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
        journal=systemctl.journal_available(),
        private_users=systemctl.private_tmp_possible(),
        run_args=run_args,
    )
