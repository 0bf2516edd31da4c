"""`run` (the launcher every unit and batch script calls) and `instructions` (print them again later)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from jupyter_hop.commands.options import ProfileName, SshConfig
from jupyter_hop.output import show_instructions


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("instructions")(instructions)


def run(
    name: ProfileName = "default",
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show the server's whole log on this terminal, not only its warnings and errors "
            "(the whole log is also in a log file; without a terminal, all of it goes to stderr anyway).",
        ),
    ] = False,
) -> None:
    """Start the Jupyter server in the foreground, wait until it answers, print how to reach it."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import store
    from jupyter_hop.server import launcher

    paths = Paths.from_env()
    code = launcher.run(paths, store.load(paths, name), out=sys.stdout, err=sys.stderr, verbose=verbose)
    raise typer.Exit(code)


def instructions(
    target: Annotated[
        str, typer.Argument(help="Slurm job id, profile name of a unit, or HOST-PID of a foreground run.")
    ],
    ssh_config: SshConfig = False,
) -> None:
    """Print the connection instructions of a running server again (the token only on your own terminal)."""
    from jupyter_hop.errors import HopError
    from jupyter_hop.paths import Paths
    from jupyter_hop.tracking import liveness, records

    paths = Paths.from_env()
    found = [r for _, r in records.all_records(paths) if r is not None and r.key == target]
    if not found:
        raise HopError(f"no running server {target!r} is known; `jupyter hop list` shows what runs")
    record = sorted(found, key=lambda r: not liveness.is_here(r))[0]  # a profile's unit on this host first
    style = "config" if ssh_config else "command"
    show_instructions(record, style)
