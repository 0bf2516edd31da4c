"""The profile model: human-edited TOML in, a validated, typed profile out, and back again."""

from __future__ import annotations

import dataclasses
import importlib.util
import keyword
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import atomic_write, read_text
from jupyter_hop.paths import Paths

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
APPS = ("lab", "server", "notebook")
BIND_MODES = ("localhost", "socket", "node")
SSH_STYLES = ("command", "config")
# host names and ssh user names: letters, digits and . _ - (no leading '-', which ssh would read as an option)
HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
# each part starts with a letter: traitlets' Config keeps "__x" names as Python attributes, so such an option
# would be lost or (`__class__`) break the config at load time; no configurable trait starts with "_"
TRAIT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*")
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


def default_app() -> str:
    """`lab` when JupyterLab is installed in this environment, else the plain `server`."""
    return "lab" if importlib.util.find_spec("jupyterlab") else "server"


@dataclass
class ServerSettings:
    app: str = field(default_factory=default_app)
    root_dir: str = "~"
    bind: str = "localhost"
    port: int = 0  # 0: the server picks a free port at each launch
    local_port: int = 8888  # the port on the laptop end of the tunnel
    idle_timeout: int = 0  # seconds without activity before the server shuts down; 0: never
    ready_timeout: int = 120  # seconds the launcher waits for the server to answer
    options: dict[str, Any] = field(default_factory=dict)  # extra "Class.trait" = value config lines


@dataclass
class SshSettings:
    login_host: str = ""  # what the user types after `ssh` (a ~/.ssh/config alias works); "" = this host
    user: str = ""  # "" = the user running jupyter-hop
    style: str = "command"  # how instructions show the tunnel: an ssh command, or an ~/.ssh/config block


@dataclass
class SlurmSettings:
    job_name: str = "jupyter-hop"
    partition: str = ""
    time: str = "04:00:00"
    cpus: int = 1
    mem: str = ""
    gpus: str = ""
    gres: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    signal_grace: int = 120  # seconds before the time limit at which the server gets SIGTERM
    extra_directives: list[str] = field(default_factory=list)
    skip_directives: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)  # shell lines run before the server starts


@dataclass
class SystemdSettings:
    environment: dict[str, str] = field(default_factory=dict)
    memory_max: str = ""
    cpu_quota: str = ""


@dataclass
class Profile:
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


def _type_name(kind: Any) -> str:
    return {int: "an integer", str: "a string", bool: "true or false"}.get(kind, str(kind))


def _check_type(key: str, value: object, kind: Any) -> None:
    """TOML gives plain Python values; check them against the field's annotation (bool is not an int here)."""
    if kind in (int, str, bool):
        if type(value) is not kind:
            raise _bad(key, value, f"expected {_type_name(kind)}")
    elif kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(key, value, "expected a list of strings")
    elif kind == "dict[str, str]":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _bad(key, value, "expected a table of strings")
    elif kind == "dict[str, Any]" and not isinstance(value, dict):
        raise _bad(key, value, "expected a table")


_KINDS = {"int": int, "str": str, "bool": bool}


def _build_section(section: str, cls: type, table: object) -> Any:
    if not isinstance(table, dict):
        raise _bad(section, table, "expected a table like [" + section + "]")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in table.items():
        full = f"{section}.{key}"
        if key not in fields:
            raise HopError(f"unknown key {full!r}: allowed keys in [{section}] are {', '.join(fields)}")
        annotation = fields[key].type
        _check_type(full, value, _KINDS.get(str(annotation), str(annotation)))
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
    if srv.bind not in BIND_MODES:
        raise _bad("server.bind", srv.bind, "one of " + ", ".join(BIND_MODES))
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
    from jupyter_hop import slurm_values, systemd_values

    slurm_values.validate(profile.slurm)
    systemd_values.validate(profile.systemd)


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


def load(paths: Paths, name: str) -> Profile:
    """Read and validate a profile; a missing file says how to create it."""
    check_name(name)
    path = paths.profile_file(name)
    text = read_text(path)
    if text is None:
        raise HopError(f"no profile named {name!r} ({path} does not exist); create it with `jupyter hop init {name}`")
    return parse(name, text, path)


def parse(name: str, text: str, path: Path | str = "<profile>") -> Profile:
    try:
        data = _load_toml(text)
    except ValueError as exc:  # parse errors and duplicate keys alike
        raise HopError(f"{path} is not valid TOML: {' '.join(str(exc).split())}") from exc
    try:
        return from_dict(name, data)
    except HopError as exc:
        raise HopError(f"{path}: {exc.message}") from exc


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
