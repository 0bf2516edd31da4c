"""`run` (the launcher every unit and batch script calls) and `instructions` (print them again later)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from jupyter_hop.commands import options as o
from jupyter_hop.commands.options import Json, ProfileName, ShowToken, SshConfig, check_show_token
from jupyter_hop.output import show_instructions

if TYPE_CHECKING:
    from jupyter_hop.tracking.records import Record


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("instructions")(instructions)


def run(
    name: ProfileName = "default",
    app: o.App = None, bind: o.Bind = None, port: o.Port = None, root_dir: o.RootDir = None,
    idle_timeout: o.IdleTimeout = None, save: o.Save = False,
    as_json: Json = False, show_token: ShowToken = False,
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
    from jupyter_hop.profile import overrides, store
    from jupyter_hop.server import launcher

    check_show_token(show_token)
    paths = Paths.from_env()
    given = overrides.given("server", app=app, bind=bind, port=port, root_dir=o.absolute(root_dir),
                            idle_timeout=idle_timeout)
    with overrides.naming(given):
        base = store.load(paths, name)
        profile = overrides.apply(base, given)
        if save:  # before the server starts (it runs until stopped), once the values are known to work here
            launcher.check_app(profile.server.app)
            overrides.save(paths, base, profile, given)
        announce = _announce(profile.ssh.style, as_json, show_token)
        # one-off values get a server config of their own: the profile's stays as the profile says
        code = launcher.run(paths, profile, out=sys.stdout, err=sys.stderr, own_config=bool(given) and not save,
                            announce=announce, verbose=verbose)
    raise typer.Exit(code)


def _announce(style: str, as_json: bool, show_token: bool) -> Callable[[Record], str] | None:
    """What the launcher prints once ready: the protocol's object with --json, the text with the token with
    --show-token, else (None) the text instructions as they always were."""
    if not as_json and not show_token:
        return None
    import time

    from jupyter_hop import protocol
    from jupyter_hop.tracking import instructions

    def announce(record: Record) -> str:
        hop = instructions.invocation()
        if as_json:
            return protocol.dumps(protocol.ready(record, hop=hop, show_token=show_token, now=time.time()))
        return instructions.render(record, style=style, show_secret=True, hop=hop)

    return announce


def instructions(
    target: Annotated[
        str, typer.Argument(help="Slurm job id, profile name of a unit, or HOST-PID of a foreground run.")
    ],
    ssh_config: SshConfig = False,
    as_json: Json = False,
    show_token: ShowToken = False,
) -> None:
    """Print the connection instructions of a running server again (the token only on your own terminal)."""
    from jupyter_hop.errors import HopError
    from jupyter_hop.paths import Paths
    from jupyter_hop.slurm.submissions import job_log
    from jupyter_hop.tracking import liveness, records

    check_show_token(show_token)
    paths = Paths.from_env()
    found = [r for _, r in records.all_records(paths) if r is not None and r.key == target]
    if not found:
        raise HopError(f"no running server {target!r} is known; `jupyter hop list` shows what runs")
    record = sorted(found, key=lambda r: not liveness.is_here(r))[0]  # a profile's unit on this host first
    style = "config" if ssh_config else "command"
    show_instructions(record, style, as_json=as_json, show_token=show_token, log=job_log(paths, record))
