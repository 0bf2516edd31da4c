"""Where jupyter-hop keeps profiles, configs, records and runtime files, resolved once from the environment."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, NamedTuple

from jupyter_hop.errors import HopError

APP_NAME = "jupyter-hop"


class Paths(NamedTuple):
    """All locations, so tests can point every one of them away from the real home.

    A NamedTuple (immutable, compared by value) rather than a frozen dataclass: every command builds one, and
    building the dataclass costs each of them about a millisecond at import."""

    config_dir: Path  # profiles and generated server configs
    state_dir: Path  # records, batch scripts, job logs: on the shared home on clusters
    runtime_base: Path  # node-local, per-launch runtime dirs (Unix sockets, jpserver json)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = Path(env.get("HOME") or Path.home())
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        state_home = Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")
        return cls(
            config_dir=config_home / APP_NAME,
            state_dir=state_home / APP_NAME,
            runtime_base=_node_local_base(env),
        )

    def profile_file(self, name: str) -> Path:
        return self.config_dir / "profiles" / f"{name}.toml"

    def server_dir(self, name: str) -> Path:
        return self.config_dir / "servers" / name

    def server_config(self, name: str) -> Path:
        return self.server_dir(name) / "jupyter_server_config.py"

    def password_file(self, name: str) -> Path:
        return self.server_dir(name) / "password"

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "records"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


def _node_local_base(env: Mapping[str, str]) -> Path:
    """$XDG_RUNTIME_DIR when it is really ours on this node, else a private dir under /tmp.

    Slurm jobs inherit XDG_RUNTIME_DIR from the login node, where it may not exist on the compute node, so it
    is checked rather than trusted. It is preferred over /tmp because units run with PrivateTmp=yes and sshd
    must still reach a Unix socket.
    """
    if not hasattr(os, "getuid"):  # Windows: only connect runs there (laptop/direct.py), and keeps nothing here
        return Path(tempfile.gettempdir()) / APP_NAME
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            info = os.stat(runtime)
        except OSError:
            info = None
        if info and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return Path(runtime) / APP_NAME
    return _tmp_base()


def _tmp_base() -> Path:
    return Path("/tmp") / f"{APP_NAME}-{os.getuid()}"


def new_launch_dir(paths: Paths, err: IO[str], *, prefix: str = "launch-") -> Path:
    """A fresh private dir for one launch's runtime files (socket, jpserver json, token file), or with another
    `prefix` for one `connect` run's ssh control sockets.

    Under /tmp another user may have made /tmp/jupyter-hop-UID first (a dir, a symlink, a file) to block us
    or to watch our files: then the launch gets a dir of its own straight under /tmp (mkdtemp: new, ours,
    0700), and says so. Records hold the absolute socket path, so nothing needs to find this dir again.
    """
    from jupyter_hop.fsutil import private_dir

    base = paths.runtime_base
    if base != _tmp_base():
        return Path(tempfile.mkdtemp(prefix=prefix, dir=private_dir(base)))
    squatter = _claim(base)
    if squatter is None:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    fresh = Path(tempfile.mkdtemp(prefix=f"{base.name}-", dir=base.parent))
    err.write(f"jupyter-hop: warning: {base} is {squatter}, not a private dir of yours; using {fresh} instead\n")
    return fresh


def own_runtime_base(paths: Paths) -> Path | None:
    """The node-local base when it is a private dir of ours, for caches; None when another user holds
    /tmp/jupyter-hop-UID (a cache is never written into someone else's dir: launches then use a fresh one)."""
    base = paths.runtime_base
    if base != _tmp_base():
        return base  # $XDG_RUNTIME_DIR, checked as ours by _node_local_base
    try:
        return base if _claim(base) is None else None
    except (HopError, OSError):
        return None


def _claim(base: Path) -> str | None:
    """Make `base` ours (0700) and return None, or say what another user put there instead."""
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise HopError(f"cannot create directory {base}: {exc.strerror}") from exc
    # lstat after mkdir, not before: /tmp is sticky, so once the entry is ours nobody else can replace it.
    info = base.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        if stat.S_IMODE(info.st_mode) != 0o700:
            base.chmod(0o700)
        return None
    kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "a directory" if stat.S_ISDIR(info.st_mode) else "a file"
    return f"{kind} of {_user_name(info.st_uid)}"


def _user_name(uid: int) -> str:
    import pwd

    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
