"""`jupyter hop connect HOST [PROFILE]`, run on the laptop: the server on HOST, a verified tunnel, the browser."""

from __future__ import annotations

from typing import Annotated

import typer

from jupyter_hop.commands import options as o
from jupyter_hop.errors import HopError

CONNECT_HELP = (
    "From the laptop in one command: start (or reattach to) the Jupyter server of PROFILE on HOST, open a "
    "verified tunnel to it and the browser, and keep the tunnel up until Ctrl-C.\n\n"
    "HOST is what you type after `ssh` (an alias from ~/.ssh/config). You authenticate once: everything runs "
    "over one private ssh master. Ctrl-C closes the tunnel and leaves the job running; --stop stops it."
)
WARN_DEFAULT = 10.0


def register(app: typer.Typer) -> None:
    app.command("connect", help=CONNECT_HELP)(connect)


def connect(
    host: Annotated[str, typer.Argument(help="What you type after `ssh`: an alias, a host name or user@host.")],
    profile: Annotated[str, typer.Argument(help="Profile name on HOST.")] = "default",
    slurm: Annotated[bool, typer.Option("--slurm", help="A Slurm job (the default where HOST has sbatch).")] = False,
    systemd: Annotated[bool, typer.Option("--systemd", help="PROFILE's systemd user unit on HOST (started if it "
                                                            "is not running).")] = False,
    run: Annotated[bool, typer.Option("--run", help="A foreground server on HOST that stops with connect.")] = False,
    new: Annotated[bool, typer.Option("--new", help="Submit a new job even if one of PROFILE runs.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop PROFILE's running job on HOST and exit.")] = False,
    port: Annotated[int | None, typer.Option("--port", metavar="PORT",
                                             help="Laptop port wanted (else the profile's; the next free one "
                                                  "if taken).")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    warn_before: Annotated[float, typer.Option("--warn-before", metavar="MINUTES",
                                               help="Warn this long before the job's end.")] = WARN_DEFAULT,
    time: o.Time = None, partition: o.Partition = None, cpus: o.Cpus = None, mem: o.Mem = None,
    gpus: o.Gpus = None, gres: o.Gres = None, account: o.Account = None, qos: o.Qos = None,
    constraint: o.Constraint = None, job_name: o.JobName = None, sbatch: o.Sbatch = None,
) -> None:
    if not 0 <= warn_before <= 24 * 60:
        raise HopError(f"bad --warn-before {warn_before:g}: expected minutes from 0 to 1440")
    if slurm + systemd + run > 1:
        raise HopError("--slurm, --systemd and --run choose the mode: give one of them")
    if port is not None and not 1024 <= port <= 65535:
        raise HopError(f"bad --port {port}: expected a laptop port from 1024 to 65535")
    from jupyter_hop.laptop import connect as flow

    given = {"--time": time, "--partition": partition, "--cpus": cpus, "--mem": mem, "--gpus": gpus,
             "--gres": gres, "--account": account, "--qos": qos, "--constraint": constraint,
             "--job-name": job_name}
    words = [w for option, value in given.items() if value is not None for w in (option, value)]
    words += [w for directive in sbatch or [] for w in ("--sbatch", directive)]
    mode: flow.Mode | None = "slurm" if slurm else "systemd" if systemd else "run" if run else None
    request = flow.Request(host=host, profile=profile, mode=mode, new=new, overrides=words,
                           port=port, browser=not no_browser, warn_before=warn_before * 60, stop=stop)
    try:
        code = flow.Connect(request).main()
    except flow.Interrupted:
        raise typer.Abort() from None  # what was left and how to come back is printed: "interrupted", exit 130
    if code:
        raise typer.Exit(code)
