"""The ssh side of one `connect` run (POSIX only): a private control dir and one master per target.

The login master is the only one the user authenticates to. A node behind it (a compute node whose server
listens on its own 127.0.0.1) gets a master of its own, tunnelled through the login master, so each forward is
opened on the master of the host where its far end is reachable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from jupyter_hop.laptop import argv as ssh_argv
from jupyter_hop.laptop import master as ssh_master
from jupyter_hop.laptop import sshconfig
from jupyter_hop.laptop.link import Link
from jupyter_hop.paths import Paths, new_launch_dir

DIR_PREFIX = "ssh-"
OWNER = "owner.pid"


def sweep(base: Path, *, keep: Path) -> None:
    """Remove the control dirs of connect runs that were killed (their owner pid is gone): their masters ended
    with them (the watchdog), but the dir and its empty logs stay behind. A dir holding a socket is left."""
    for directory in base.glob(f"{DIR_PREFIX}*"):
        if directory == keep or not directory.is_dir() or directory.is_symlink():
            continue
        try:
            pid = int((directory / OWNER).read_text(encoding="utf-8"))
            os.kill(pid, 0)
            continue  # its owner runs
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # not ours to judge (no owner file, or another user's process)
        if not any(entry.is_socket() for entry in directory.iterdir()):
            shutil.rmtree(directory, ignore_errors=True)


class SshSession(Link):
    """Masters keyed by target; `close()` ends them all, nodes first, and removes the control dir."""

    def __init__(self, host: str, *, paths: Paths | None = None, ssh: str = "ssh",
                 env: Mapping[str, str] | None = None, err: IO[str] | None = None) -> None:
        super().__init__(host, paths=paths, ssh=ssh, env=env, err=err)
        self.control_dir: Path | None = None
        self.masters: dict[str, ssh_master.Master] = {}

    def _dir(self) -> Path:
        if self.control_dir is None:
            # short: $XDG_RUNTIME_DIR/jupyter-hop/ssh-XXXXXXXX or /tmp/jupyter-hop-UID/ssh-XXXXXXXX (0700, ours)
            self.control_dir = new_launch_dir(self._paths, self._err, prefix=DIR_PREFIX)
            (self.control_dir / OWNER).write_text(f"{os.getpid()}\n", encoding="utf-8")
            sweep(self.control_dir.parent, keep=self.control_dir)
        return self.control_dir

    def login(self, *, timeout: float = 300.0) -> ssh_master.Master:
        """The master to HOST, started on first use (this is where the user authenticates, once)."""
        found = self.masters.get(self.host)
        if found is not None and found.process.poll() is None:
            return found
        if found is not None:
            found.close()
        master = ssh_master.start(self.host, self._dir(), ssh=self.ssh, env=self.env, timeout=timeout)
        self.masters[self.host] = master
        return master

    def node(self, target: str, *, timeout: float = 60.0) -> ssh_master.Master:
        """A master to `target` (user@node or node) through the login master: no new login-node connection."""
        target = sshconfig.check_host(target)
        if target == self.host:
            return self.login()
        found = self.masters.get(target)
        if found is not None and found.process.poll() is None:
            return found
        if found is not None:
            found.close()
        login = self.login()
        options = ssh_argv.jump_options(self.host, login.control_path, ssh=self.ssh)
        master = ssh_master.start(target, self._dir(), options=options, ssh=self.ssh, env=self.env,
                                  timeout=timeout)
        self.masters[target] = master
        return master

    def run(self, line: str, *, timeout: float | None, what: str) -> subprocess.CompletedProcess[str]:
        return self.login().run(line, timeout=timeout, what=what)

    def popen(self, line: str) -> subprocess.Popen[str]:
        return self.login().popen(line)

    def master_for(self, obj: Mapping[str, Any]) -> ssh_master.Master:
        """The server's own 127.0.0.1 is reachable from its node only: a node behind the login node gets its own
        master through the login master; bind=node and servers on the login node itself are reached from there."""
        tunnel = obj["tunnel"]
        if tunnel.get("jump") and obj.get("bind") != "node":
            return self.node(tunnel["target"])
        return self.login()

    def forward(self, obj: Mapping[str, Any], spec: str) -> None:
        self.master_for(obj).forward(spec)

    def connected(self) -> bool:
        master = self.masters.get(self.host)
        return master is not None and master.check()

    def close(self) -> None:
        """End every master (nodes before the login master they go through) and remove the control dir."""
        for target in sorted(self.masters, key=lambda t: t == self.host):
            self.masters.pop(target).close()
        if self.control_dir is not None:
            shutil.rmtree(self.control_dir, ignore_errors=True)
            self.control_dir = None
