"""Creating and updating a profile, its password and its server config, all checked before anything is written."""

from __future__ import annotations

import contextlib
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import atomic_write_all, exclusive, private_dir
from jupyter_hop.paths import Paths
from jupyter_hop.profile import model as prof
from jupyter_hop.profile import store
from jupyter_hop.server import password as pw
from jupyter_hop.server import serverconfig

PasswordSource = Callable[[], str]


@dataclass
class InitResult:
    profile: prof.Profile
    created: bool
    password_changed: bool
    profile_file: Path
    server_config: Path


def init_profile(
    paths: Paths,
    name: str,
    updates: dict[str, dict[str, Any]],
    *,
    ask_password: PasswordSource | None,
) -> InitResult:
    """Create or update profile `name`; `ask_password` is called when a password is to be set."""
    created = not store.exists(paths, name)
    # Check everything before asking, so a bad option does not cost typing a password (twice).
    _, profile = store.updated(paths, name, updates)
    serverconfig.check_no_stray_json(paths, name)
    serverconfig.resolved_root(profile)
    if not ask_password:
        check_bind_needs_password(profile, serverconfig.read_hash(paths, name))
    new_hash = pw.hash_password(ask_password()) if ask_password else None
    with locked(paths):
        # Read again under the lock: another init or password may have written since.
        text, profile = store.updated(paths, name, updates)
        serverconfig.check_no_stray_json(paths, name)
        root = serverconfig.resolved_root(profile)
        hashed = new_hash or serverconfig.read_hash(paths, name)
        check_bind_needs_password(profile, hashed)
        config_text = serverconfig.render(profile, hashed, root)
        # Everything is checked; only now touch the disk, all files or none.
        config_path = paths.server_config(name)
        files = [(paths.profile_file(name), text), (config_path, config_text)]
        if new_hash:
            files.append((paths.password_file(name), new_hash + "\n"))
        atomic_write_all(files)
    return InitResult(profile, created, bool(new_hash), paths.profile_file(name), config_path)


def change_password(paths: Paths, name: str, ask_password: PasswordSource) -> Path:
    profile = store.load(paths, name)
    serverconfig.check_no_stray_json(paths, name)
    serverconfig.resolved_root(profile)
    hashed = pw.hash_password(ask_password())
    with locked(paths):
        profile = store.load(paths, name)
        serverconfig.check_no_stray_json(paths, name)
        config_text = serverconfig.render(profile, hashed, serverconfig.resolved_root(profile))
        atomic_write_all([(paths.password_file(name), hashed + "\n"), (paths.server_config(name), config_text)])
    return paths.server_config(name)


def locked(paths: Paths) -> contextlib.AbstractContextManager[None]:
    """Serialise writers of profiles: each writes a profile, a hash and a config that must agree.

    A read-only config dir is no error here: `run` only reads it when the config is current, and `init` or
    `password` then fail at their write with the clear "cannot write" error naming the file.
    """
    return exclusive(private_dir(paths.config_dir) / ".lock", unlocked_if_read_only=True)


def check_bind_needs_password(profile: prof.Profile, hashed: str | None) -> None:
    if profile.server.bind == "node" and not hashed:
        raise HopError(
            f"server.bind = 'node' needs a password (others on the cluster can reach the port): "
            f"run `jupyter hop password {profile.name}` first"
        )


def describe(paths: Paths, name: str) -> dict[str, Any]:
    """What `config` shows: each file, where it lives, its mode, and the text of the profile and server config.

    Never the password hash: this output is pasted into bug reports and chats, and an argon2 hash is enough
    to guess a weak password offline. The config text shows a placeholder where the hash is.
    """
    profile = store.load(paths, name)
    files = {
        "profile": paths.profile_file(name),
        "server_config": paths.server_config(name),
        "password_hash": paths.password_file(name),
    }
    hashed = serverconfig.read_hash(paths, name)
    info: dict[str, Any] = {"name": name, "password_set": hashed is not None}
    info["password"] = "set (argon2)" if hashed else "not set (token per launch)"
    for key, path in files.items():
        info[key] = {"path": str(path), "mode": _mode(path)}
    info["profile"]["text"] = paths.profile_file(name).read_text(encoding="utf-8")
    config = paths.server_config(name)
    text = config.read_text(encoding="utf-8") if config.exists() else None
    info["server_config"]["text"] = None if text is None else without_hash(text, hashed)
    info["app"] = profile.server.app
    info["bind"] = profile.server.bind
    return info


HASH_SHOWN_AS = "'(argon2 hash, not shown)'"
_HASH_LINE = re.compile(r"^(c\.\w*IdentityProvider\.hashed_password = ).*$", re.MULTILINE)


def without_hash(text: str, hashed: str | None) -> str:
    """`text` with every hashed_password value replaced, whichever hash it holds (a stale config's too)."""
    text = _HASH_LINE.sub(lambda match: match.group(1) + HASH_SHOWN_AS, text)
    return text.replace(hashed, HASH_SHOWN_AS) if hashed else text


def _mode(path: Path) -> str | None:
    try:
        return oct(stat.S_IMODE(path.stat().st_mode))
    except OSError:
        return None
