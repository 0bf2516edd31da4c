"""`run` (the launcher every unit and batch script calls) and `instructions` (print them again later)."""

from __future__ import annotations

import sys

import typer

from jupyter_hop.output import show_instructions


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("instructions")(instructions)


def run(name: str = typer.Argument("default", help="Profile name.")) -> None:
    """Start the Jupyter server in the foreground, wait until it answers, print how to reach it."""
    from jupyter_hop import launcher, profile
    from jupyter_hop.paths import Paths

    paths = Paths.from_env()
    code = launcher.run(paths, profile.load(paths, name), out=sys.stdout, err=sys.stderr)
    raise typer.Exit(code)


def instructions(
    target: str = typer.Argument(..., help="Slurm job id, profile name of a unit, or HOST-PID of a foreground run."),
    ssh_config: bool = typer.Option(False, "--ssh-config", help="Show an ~/.ssh/config block instead of a command."),
) -> None:
    """Print the connection instructions of a running server again (the token only on your own terminal)."""
    from jupyter_hop import liveness, records
    from jupyter_hop.errors import HopError
    from jupyter_hop.paths import Paths

    paths = Paths.from_env()
    found = [r for _, r in records.all_records(paths) if r is not None and r.key == target]
    if not found:
        raise HopError(f"no running server {target!r} is known; `jupyter hop list` shows what runs")
    record = sorted(found, key=lambda r: not liveness.is_here(r))[0]  # a profile's unit on this host first
    style = "config" if ssh_config else "command"
    show_instructions(record, style)
