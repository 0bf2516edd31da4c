"""Profile files: parse TOML into a validated profile, update one keeping the user's comments, write a new one."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import atomic_write, read_text
from jupyter_hop.paths import Paths
from jupyter_hop.profile.model import Profile, check_name, from_dict


def load(paths: Paths, name: str) -> Profile:
    """Read and validate a profile; a missing file says how to create it."""
    check_name(name)
    path = paths.profile_file(name)
    text = read_text(path)
    if text is None:
        raise HopError(f"no profile named {name!r} ({path} does not exist); create it with `jupyter hop init {name}`")
    from jupyter_hop.paths import own_runtime_base

    base = own_runtime_base(paths)
    return parse(name, text, path, cache=base / PARSED_CACHE if base else None)


def parse(name: str, text: str, path: Path | str = "<profile>", *, cache: Path | None = None) -> Profile:
    data = _cached(cache, text) if cache else None
    if data is None:
        try:
            data = _load_toml(text)
        except ValueError as exc:  # parse errors and duplicate keys alike
            raise HopError(f"{path} is not valid TOML: {' '.join(str(exc).split())}") from exc
        if cache:
            _remember(cache, text, data)
    try:
        return from_dict(name, data)
    except HopError as exc:
        raise HopError(f"{path}: {exc.message}") from exc


# Parsed profiles, by the SHA-256 of their text, as JSON in the node-local private runtime dir: a command that
# only reads a profile then skips importing a TOML parser (about 4 ms, an eighth of what `render` adds to
# starting Python). Keyed by content, an entry can never be stale; the values are checked after, as always.
PARSED_CACHE = "profiles"
PARSED_KEEP = 32  # entries; a new one beyond that replaces the oldest


def _cached(cache: Path, text: str) -> dict[str, Any] | None:
    import hashlib
    import json

    try:
        data = json.loads((cache / f"{hashlib.sha256(text.encode()).hexdigest()}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remember(cache: Path, text: str, data: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written (or a value JSON cannot hold) is only no cache."""
    import hashlib
    import json

    from jupyter_hop.fsutil import private_dir

    made = not cache.exists()
    try:
        encoded = json.dumps(data, allow_nan=False)
        private_dir(cache)
        entries = sorted(cache.glob("*.json"), key=lambda entry: entry.stat().st_mtime)
        for old in entries[: max(len(entries) - PARSED_KEEP + 1, 0)]:
            old.unlink(missing_ok=True)
        atomic_write(cache / f"{hashlib.sha256(text.encode()).hexdigest()}.json", encoded)
    except (HopError, OSError, TypeError, ValueError):
        if made:  # leave no empty dir behind (a full runtime dir, say): it was not there before
            with contextlib.suppress(OSError):
                cache.rmdir()


def _load_toml(text: str) -> dict[str, Any]:
    """Plain values from TOML text; ValueError when it is not TOML.

    Reading uses the standard library's tomllib where there is one: it imports in a fraction of tomlkit's time,
    which every command that only reads a profile pays. tomlkit is kept for updates, which must keep comments.
    """
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        data: dict[str, Any] = tomlkit.parse(text).unwrap()
    except TOMLKitError as exc:
        raise ValueError(str(exc)) from exc
    return data


def exists(paths: Paths, name: str) -> bool:
    return paths.profile_file(check_name(name)).exists()


def updated(paths: Paths, name: str, updates: dict[str, dict[str, Any]]) -> tuple[str, Profile]:
    """The profile file's new text with `updates` ({section: {key: value}}) applied, keeping the user's comments
    and order, and the profile it loads as; nothing is written."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    path = paths.profile_file(check_name(name))
    text = read_text(path)
    try:
        doc = tomlkit.parse(text) if text is not None else _new_document(name)
    except TOMLKitError as exc:
        raise HopError(f"{path} is not valid TOML: {' '.join(str(exc).split())}") from exc
    for section, values in updates.items():
        if not values:
            continue
        if section not in doc:
            doc[section] = tomlkit.table()
        table = doc[section]
        for key, value in values.items():
            table[key] = value
    new_text = tomlkit.dumps(doc)
    return new_text, parse(name, new_text, path)


def write(paths: Paths, name: str, text: str) -> None:
    atomic_write(paths.profile_file(name), text)


# What a new profile file shows: every key with its default and a short note, so it can be edited by hand.
KEY_NOTES: dict[str, dict[str, str]] = {
    "server": {
        "app": "lab, server or notebook",
        "root_dir": "the directory the server shows; ~ is expanded",
        "bind": "localhost (default), socket (a private Unix socket) or node (the cluster address; needs a password)",
        "port": "0: a free port at each launch; or a fixed port, 1024-65535",
        "local_port": "the port on your laptop end of the tunnel",
        "idle_timeout": "seconds without activity before the server stops itself; 0: never",
        "ready_timeout": "seconds to wait for the server to answer before giving up",
    },
    "ssh": {
        "login_host": "what you type after `ssh` to reach this machine (workstation) or the login node (cluster); "
        "empty: this host's name, or the node the job was submitted from",
        "user": "your user name there; empty: the same as here",
        "style": "command (an ssh -L line) or config (an ~/.ssh/config block)",
    },
    "slurm": {
        "job_name": "",
        "partition": "empty: the cluster's default",
        "time": "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
        "cpus": "",
        "mem": "such as 16G; empty: the cluster's default",
        "gpus": "such as 1 or a100:2",
        "gres": "such as gpu:1",
        "account": "",
        "qos": "",
        "constraint": "",
        "signal_grace": "seconds before the time limit at which the server is stopped cleanly",
        "extra_directives": "more sbatch options, one per item, such as \"--exclusive\"",
        "skip_directives": "options your site rejects, by name, such as \"--mem\"",
        "setup": "shell lines run before the server, such as \"module load python\"",
    },
    "systemd": {
        "environment": "extra variables for the unit, such as { OMP_NUM_THREADS = \"4\" }",
        "memory_max": "such as 8G; empty: no limit",
        "cpu_quota": "such as 200%; empty: no limit",
    },
}


def _new_document(name: str) -> Any:
    """A new profile file listing every key with its default, so the user can edit it by hand."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"jupyter-hop profile {name!r}; `jupyter hop config {name}` shows what it produces."))
    doc.add(tomlkit.comment("Unknown keys are errors. After editing, `jupyter hop init` checks the file."))
    defaults = Profile(name=name)
    for section, notes in KEY_NOTES.items():
        table = tomlkit.table()
        values = dataclasses.asdict(getattr(defaults, section))
        for key, note in notes.items():
            if isinstance(values[key], dict):  # a sub-table: its note goes on the line above
                table.add(tomlkit.comment(f"[{section}.{key}]: {note}"))
                continue
            table.add(key, values[key])
            if note:
                table[key].comment(note)
        if section == "server":
            example = '"ServerApp.max_body_size" = 1000000'
            table.add(tomlkit.comment(f"[server.options]: extra Jupyter settings, such as {example}"))
        doc.add(tomlkit.nl())
        doc.add(section, table)
    return doc
