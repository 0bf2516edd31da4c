"""The profile model: typed settings sections and the checks every profile value passes, from a file or an option."""

from __future__ import annotations

import dataclasses
import importlib.util
import keyword
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_hop import fields
from jupyter_hop.errors import HopError
from jupyter_hop.fields import APPS, BINDS, SSH_STYLES, App, Bind, SshStyle
from jupyter_hop.patterns import lazy
from jupyter_hop.slurm import settings as slurm_settings
from jupyter_hop.slurm.settings import SlurmSettings
from jupyter_hop.systemd import settings as systemd_settings
from jupyter_hop.systemd.settings import SystemdSettings

NAME_RE = lazy(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# host names and ssh user names: letters, digits and . _ - (no leading '-', which ssh would read as an option)
HOST_RE = lazy(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
USER_RE = lazy(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
# each part starts with a letter: traitlets' Config keeps "__x" names as Python attributes, so such an option
# would be lost or (`__class__`) break the config at load time; no configurable trait starts with "_"
TRAIT_RE = lazy(r"[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*")
# traits that jupyter-hop sets itself: letting a profile override them would undo the security defaults
OWNED_TRAITS = frozenset(
    {
        "ServerApp.ip",
        "ServerApp.port",
        "ServerApp.port_retries",
        "ServerApp.sock",
        "ServerApp.sock_mode",
        "ServerApp.root_dir",
        "ServerApp.open_browser",
        "ServerApp.password",
        "ServerApp.password_required",
        "ServerApp.token",
        "ServerApp.allow_password_change",
        "ServerApp.allow_root",
        "ServerApp.allow_remote_access",
        "ServerApp.disable_check_xsrf",
        "ServerApp.identity_provider_class",
        "ServerApp.runtime_dir",
        "IdentityProvider.token",
        "IdentityProvider.hashed_password",
        "PasswordIdentityProvider.hashed_password",
        "PasswordIdentityProvider.password_required",
        "PasswordIdentityProvider.allow_password_change",
        "PasswordIdentityProvider.token",
    }
)


def default_app() -> App:
    """`lab` when JupyterLab is installed in this environment, else the plain `server`."""
    return "lab" if importlib.util.find_spec("jupyterlab") else "server"


@dataclass
class ServerSettings:
    """The profile's [server] table: what runs, where it listens, and how long it may take."""

    app: App = field(default_factory=default_app)
    root_dir: str = "~"
    bind: Bind = "localhost"
    port: int = 0  # 0: the server picks a free port at each launch
    local_port: int = 8888  # the port on the laptop end of the tunnel
    idle_timeout: int = 0  # seconds without activity before the server shuts down; 0: never
    ready_timeout: int = 120  # seconds the launcher waits for the server to answer
    options: dict[str, Any] = field(default_factory=dict)  # extra "Class.trait" = value config lines


@dataclass
class SshSettings:
    """The profile's [ssh] table: how the printed tunnel reaches the server."""

    login_host: str = ""  # what the user types after `ssh` (a ~/.ssh/config alias works); "" = this host
    user: str = ""  # "" = the user running jupyter-hop
    style: SshStyle = "command"  # how instructions show the tunnel: an ssh command, or an ~/.ssh/config block


@dataclass
class Profile:
    """One profile file: its name and its four tables."""

    name: str
    server: ServerSettings = field(default_factory=ServerSettings)
    ssh: SshSettings = field(default_factory=SshSettings)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    systemd: SystemdSettings = field(default_factory=SystemdSettings)

    @property
    def root_path(self) -> Path:
        return Path(self.server.root_dir).expanduser()


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "ssh": SshSettings,
    "slurm": SlurmSettings,
    "systemd": SystemdSettings,
}


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise HopError(
            f"profile name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _bad(key: str, value: object, allowed: str) -> HopError:
    return HopError(f"{key} = {value!r} is not allowed: {allowed}")


def check_host(key: str, value: str, what: str = "a host name") -> str:
    """A host name that reaches printed ssh lines: `key` names where it came from (a profile key, or a variable of
    the environment the launcher runs in)."""
    if not HOST_RE.fullmatch(value):
        raise _bad(key, value, f"{what} (letters, digits, . _ -, not starting with '-')")
    return value


def check_user(key: str, value: str) -> str:
    """A user name that reaches printed ssh lines (`user@host`, `User`)."""
    if not USER_RE.fullmatch(value):
        raise _bad(key, value, "a user name (letters, digits, . _ -, not starting with a digit)")
    return value


def _build_section(section: str, cls: type, table: object) -> Any:
    if not isinstance(table, dict):
        raise _bad(section, table, "expected a table like [" + section + "]")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in table.items():
        full = f"{section}.{key}"
        if key not in known:
            raise HopError(f"unknown key {full!r}: allowed keys in [{section}] are {', '.join(known)}")
        check, wanted = fields.expected(known[key])
        if not check(value):
            raise _bad(full, value, f"expected {wanted}")
    plain = {k: _plain(v) for k, v in table.items()}
    return cls(**plain)


def _plain(value: Any) -> Any:
    """tomlkit returns its own container types; turn them into plain Python values."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def from_dict(name: str, data: dict[str, Any]) -> Profile:
    """Build and validate a profile from parsed TOML; every error names the key and what is allowed."""
    check_name(name)
    for section in data:
        if section not in SECTIONS:
            raise HopError(f"unknown section [{section}]: allowed sections are {', '.join(SECTIONS)}")
    profile = Profile(
        name=name,
        **{s: _build_section(s, cls, data.get(s, {})) for s, cls in SECTIONS.items()},
    )
    validate(profile)
    return profile


def validate(profile: Profile) -> None:
    """Value checks beyond types; renderers may rely on everything checked here."""
    srv = profile.server
    if srv.app not in APPS:
        raise _bad("server.app", srv.app, "one of " + ", ".join(APPS))
    if srv.bind not in BINDS:
        raise _bad("server.bind", srv.bind, "one of " + ", ".join(BINDS))
    if not (srv.port == 0 or 1024 <= srv.port <= 65535):
        raise _bad("server.port", srv.port, "0 (pick a free port) or 1024-65535")
    if not 1 <= srv.local_port <= 65535:
        raise _bad("server.local_port", srv.local_port, "1-65535")
    if srv.idle_timeout < 0:
        raise _bad("server.idle_timeout", srv.idle_timeout, "seconds, 0 or more (0 = never)")
    if not 1 <= srv.ready_timeout <= 86400:
        raise _bad("server.ready_timeout", srv.ready_timeout, "seconds, 1-86400")
    if not srv.root_dir or "\x00" in srv.root_dir or "\n" in srv.root_dir:
        raise _bad("server.root_dir", srv.root_dir, "a directory path on one line")
    if not srv.root_dir.startswith(("/", "~")):
        # relative to what? units, jobs and shells each start in another directory
        raise _bad("server.root_dir", srv.root_dir, "an absolute path, or one starting with ~")
    for key, value in srv.options.items():
        _check_option(key, value)
    ssh = profile.ssh
    if ssh.login_host:
        check_host("ssh.login_host", ssh.login_host, "a host name or ~/.ssh/config alias")
    if ssh.user:
        check_user("ssh.user", ssh.user)
    if ssh.style not in SSH_STYLES:
        raise _bad("ssh.style", ssh.style, "one of " + ", ".join(SSH_STYLES))
    # Slurm and systemd values are checked by the modules that know those formats.
    slurm_settings.validate(profile.slurm)
    systemd_settings.validate(profile.systemd)


def _check_option(key: str, value: Any) -> None:
    full = f"server.options.{key!r}"
    # a Python keyword cannot be a class or trait name, and `c.if.x = 1` would not even compile
    if not TRAIT_RE.fullmatch(key) or any(keyword.iskeyword(part) for part in key.split(".")):
        raise HopError(f"{full} is not allowed: option names look like \"ServerApp.max_body_size\"")
    if key in OWNED_TRAITS:
        raise HopError(f"{full} is not allowed: jupyter-hop sets {key} itself (see `jupyter hop config`)")
    if not _is_literal(value):
        raise HopError(f"{full} = {value!r} is not allowed: use strings, numbers, booleans, lists or tables")


def _is_literal(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (str, int, bool)):
        return True
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    return False
