"""Options and arguments that several commands share, declared once so that each reads and helps alike."""

from __future__ import annotations

from typing import Annotated

import typer

ProfileName = Annotated[str, typer.Argument(help="Profile name.", show_default=True)]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SshConfig = Annotated[bool, typer.Option("--ssh-config", help="Show an ~/.ssh/config block instead of a command.")]
