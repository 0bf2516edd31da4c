"""Options and arguments that several commands share, declared once so that each reads and helps alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

ProfileName = Annotated[str, typer.Argument(help="Profile name.", show_default=True)]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SshConfig = Annotated[bool, typer.Option("--ssh-config", help="Show an ~/.ssh/config block instead of a command.")]


def group(name: str, help: str) -> tuple[typer.Typer, Callable[[typer.Typer], None]]:
    """A command group (`jupyter hop NAME ...`) and the function that adds it to the root app."""
    app = typer.Typer(no_args_is_help=True, help=help)

    def register(root: typer.Typer, command: str = "") -> None:
        """Add the group; given the subcommand the command line names, only that one (Typer inspects the
        signature of every command it registers, which `render` would otherwise pay for all of them)."""
        named = [info for info in app.registered_commands if _command_name(info) == command]
        if named:
            app.registered_commands = named
        root.add_typer(app, name=name)

    return app, register


def _command_name(info: typer.models.CommandInfo) -> str:
    if info.name:
        return info.name
    callback = info.callback
    return callback.__name__.replace("_", "-") if callback else ""
