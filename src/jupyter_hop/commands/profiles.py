"""`init`, `password` and `config`: the profile and the server config it produces."""

from __future__ import annotations

from typing import Any

import typer

from jupyter_hop.output import emit_json, say

NAME_ARG = typer.Argument("default", help="Profile name.", show_default=True)
PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from standard input instead of asking twice on a terminal."
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("password")(password)
    app.command("config")(config)


def _asker(from_stdin: bool):  # type: ignore[no-untyped-def]
    from jupyter_hop.server.password import read_new_password

    return lambda: read_new_password(from_stdin=from_stdin)


def _absolute(root_dir: str | None) -> str | None:
    """A relative --root-dir is taken from where `init` runs: units and jobs run elsewhere, so store it whole."""
    import os

    if not root_dir or root_dir.startswith("~"):
        return root_dir
    return os.path.abspath(root_dir)


def _integer(flag: str, text: str | None) -> int | None:
    """Parsed here rather than by Typer so the one-line error names the value that was given."""
    import re

    from jupyter_hop.errors import HopError

    if text is None:
        return None
    if not re.fullmatch(r"-?[0-9]+", text.strip()):
        raise HopError(f"{flag} {text!r} is not allowed: expected an integer")
    return int(text)


def init(
    name: str = NAME_ARG,
    app_name: str = typer.Option(None, "--app", help="lab, server or notebook."),
    root_dir: str = typer.Option(None, "--root-dir", help="Directory the server shows (default: your home)."),
    bind: str = typer.Option(None, "--bind", help="localhost, socket or node."),
    port: str = typer.Option(None, "--port", help="Server port; 0 lets the server pick a free one at each launch."),
    local_port: str = typer.Option(None, "--local-port", help="Port on your laptop for the tunnel."),
    login_host: str = typer.Option(
        None, "--login-host", help="What you type after `ssh` to reach this machine or its login node."
    ),
    ssh_user: str = typer.Option(None, "--ssh-user", help="Your user name there, if not the same as here."),
    password_stdin: bool = PASSWORD_STDIN,
    no_password: bool = typer.Option(False, "--no-password", help="Use a fresh random token at each launch instead."),
) -> None:
    """Create or update a profile and its Jupyter server config; asks for a password for a new profile."""
    from jupyter_hop.errors import HopError
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import setup, store
    from jupyter_hop.server import serverconfig

    if no_password and password_stdin:
        raise HopError("--no-password and --password-stdin contradict each other; choose one")
    paths = Paths.from_env()
    server = {
        "app": app_name,
        "root_dir": _absolute(root_dir),
        "bind": bind,
        "port": _integer("--port", port),
        "local_port": _integer("--local-port", local_port),
    }
    ssh = {"login_host": login_host, "user": ssh_user}
    updates: dict[str, dict[str, Any]] = {
        "server": {k: v for k, v in server.items() if v is not None},
        "ssh": {k: v for k, v in ssh.items() if v is not None},
    }
    has_password = serverconfig.read_hash(paths, name) is not None
    # A new profile asks for a password unless told not to; an update changes only what it names.
    new = not store.exists(paths, name)
    wants_password = password_stdin or (new and not no_password)
    asker = _asker(password_stdin) if wants_password else None
    result = setup.init_profile(paths, name, updates, ask_password=asker)
    verb = "Created" if result.created else "Updated"
    say(f"{verb} profile {name!r}: {result.profile_file}")
    say(f"Server config: {result.server_config}")
    if result.password_changed:
        say("Password set (argon2 hash; the password itself is stored nowhere).")
    elif not has_password:
        say("No password: each launch gets a fresh random token, shown only on your terminal.")
    say(f"Start it here: jupyter hop run {name}")


def password(name: str = NAME_ARG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Set or change the profile's password (argon2), written where the server reads it."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import setup

    config_path = setup.change_password(Paths.from_env(), name, _asker(password_stdin))
    say(f"Password changed for profile {name!r} ({config_path}). Running servers keep the old one until restarted.")


def config(
    name: str = NAME_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show the profile and the generated server config, with where each file lives."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import setup

    info = setup.describe(Paths.from_env(), name)
    if as_json:
        emit_json(info)
        return
    say(f"Profile {name!r}: {info['profile']['path']} (mode {info['profile']['mode']})")
    say(info["profile"]["text"].rstrip("\n"))
    say("")
    server = info["server_config"]
    say(f"Server config: {server['path']} (mode {server['mode']})")
    say((server["text"] or "(not written yet: run `jupyter hop init`)").rstrip("\n"))
    say("")
    where = f"; the hash is in {info['password_hash']['path']}, not shown here" if info["password_set"] else ""
    say(f"Password: {info['password']}{where}")
