"""`list` and `stop`: every server jupyter-hop knows of (runs, units, jobs), and stopping any of them."""

from __future__ import annotations

from typing import Annotated

import typer

from jupyter_hop.commands.options import Json
from jupyter_hop.output import emit_json, say, warn

LIST_HELP = (
    "Every server jupyter-hop knows of: foreground runs, systemd user units and Slurm jobs.\n\n"
    "STATE is pending, starting, ready, stopped, failed or stale. A stale record (its launcher or its job is "
    "gone) is shown once and removed. On a machine without systemd or without Slurm that part is simply absent."
)
STOP_HELP = (
    "Stop a server the right way for its kind and wait until it is really gone.\n\n"
    "A foreground run gets SIGTERM (only from the host it runs on), a unit `systemctl --user stop`, a Slurm job "
    "`scancel`. A profile name works too when it names exactly one server."
)


def register(app: typer.Typer) -> None:
    app.command("list", help=LIST_HELP)(list_servers)
    app.command("stop", help=STOP_HELP)(stop)


def list_servers(
    as_json: Json = False,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Also show installed units and jobs that are stopped.")
    ] = False,
) -> None:
    """Every server jupyter-hop knows of: foreground runs, systemd user units and Slurm jobs."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.tracking import inventory

    found = inventory.gather(Paths.from_env(), clean=True, include_stopped=show_all)
    if as_json:
        emit_json(inventory.to_json(found))
        return
    for problem in found.warnings():
        warn(problem)
    say(inventory.render(found))


def stop(
    target: Annotated[
        str, typer.Argument(help="A Slurm job id, the profile of a unit, or HOST-PID of a foreground run.")
    ],
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait until it is really gone.", min=1)
    ] = 60.0,
) -> None:
    """Stop a server the right way for its kind and wait until it is gone."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.tracking import stopping

    say(stopping.stop(Paths.from_env(), target, timeout=timeout).text())
