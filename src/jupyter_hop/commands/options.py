"""Options and arguments that several commands share, declared once so that each reads and helps alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

ProfileName = Annotated[str, typer.Argument(help="Profile name.", show_default=True)]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ShowToken = Annotated[
    bool,
    typer.Option("--show-token", help="Show the token (in the URL, and in --json) even when this is not your terminal; "
                 "refused inside a Slurm job or a systemd unit, whose output is a log."),
]
SshConfig = Annotated[bool, typer.Option("--ssh-config", help="Show an ~/.ssh/config block instead of a command.")]


def check_show_token(show_token: bool) -> None:
    """Refuse --show-token before anything starts where stdout is a shared log (server/placement.py says where)."""
    if show_token:
        import os

        from jupyter_hop.server.placement import check_show_token as check

        check(os.environ)


def group(name: str, help: str) -> tuple[typer.Typer, Callable[[typer.Typer], None]]:
    """A command group (`jupyter hop NAME ...`) and the function that adds it to the root app."""
    app = typer.Typer(no_args_is_help=True, help=help)

    def register(root: typer.Typer) -> None:
        root.add_typer(app, name=name)

    return app, register
