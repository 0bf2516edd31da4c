"""The laptop's per-host settings, hosts.toml in the user's config dir: how to start jupyter-hop there.

    [hosts.hpc]                                   # the HOST given to connect, as typed
    remote_command = "module load jupyter-hop && jupyter-hop"

Unknown keys and bad values are errors (one line naming the file, the key and what is allowed).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_hop.errors import HopError
from jupyter_hop.laptop.remote import DEFAULT_REMOTE_COMMAND
from jupyter_hop.paths import Paths

MAX_COMMAND = 1000
_EXAMPLES = '"jupyter-hop", "~/venv/bin/jupyter-hop" or "module load jupyter-hop && jupyter-hop"'


@dataclass(frozen=True)
class HostSettings:
    remote_command: str = DEFAULT_REMOTE_COMMAND


KEYS = ("remote_command",)


def hosts_file(paths: Paths) -> Path:
    return paths.config_dir / "hosts.toml"


def _toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    import tomlkit

    data: dict[str, Any] = tomlkit.parse(text).unwrap()
    return data


def _check_command(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HopError(f"{where} remote_command must be a non-empty string such as {_EXAMPLES}, not {value!r}")
    if any(ch in value for ch in "\n\r\0") or len(value) > MAX_COMMAND:
        raise HopError(f"{where} remote_command must be one line of at most {MAX_COMMAND} characters, "
                       f"such as {_EXAMPLES}")
    return value.strip()


def parse(text: str, path: Path | str = "hosts.toml") -> dict[str, HostSettings]:
    """The settings per host; a bad file is a HopError naming it."""
    try:
        data = _toml(text)
    except Exception as exc:  # tomllib.TOMLDecodeError or tomlkit's error, whichever parsed
        raise HopError(f"{path} is not valid TOML: {' '.join(str(exc).split())}") from exc
    unknown = sorted(set(data) - {"hosts"})
    if unknown:
        raise HopError(f"{path}: unknown top-level key {unknown[0]!r}; only [hosts.NAME] tables are allowed")
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise HopError(f"{path}: hosts must be tables such as [hosts.hpc], not {hosts!r}")
    found: dict[str, HostSettings] = {}
    for name, table in hosts.items():
        where = f"{path}: [hosts.{name}]"
        if not isinstance(table, dict):
            raise HopError(f"{where} must be a table with {', '.join(KEYS)}, not {table!r}")
        bad = sorted(set(table) - set(KEYS))
        if bad:
            raise HopError(f"{where} unknown key {bad[0]!r}; allowed: {', '.join(KEYS)}")
        settings = HostSettings()
        if "remote_command" in table:
            settings = HostSettings(remote_command=_check_command(where, table["remote_command"]))
        found[name] = settings
    return found


def load(paths: Paths) -> dict[str, HostSettings]:
    """hosts.toml's settings, or none when the file does not exist."""
    path = hosts_file(paths)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise HopError(f"cannot read {path}: {exc.strerror}") from exc
    return parse(text, path)


def for_host(paths: Paths, host: str, known: Mapping[str, HostSettings] | None = None) -> HostSettings:
    """The settings for HOST exactly as typed (an alias is matched as an alias, never resolved)."""
    table = load(paths) if known is None else known
    return table.get(host, HostSettings())
