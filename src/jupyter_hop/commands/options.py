"""Options and arguments that several commands share, declared once so that each reads and helps alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

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

    def register(root: typer.Typer, command: str = "") -> None:
        """Add the group; given the subcommand the command line names, only that one (Typer inspects the
        signature of every command it registers, which `render` would otherwise pay for all of them)."""
        named = [info for info in app.registered_commands if _command_name(info) == command]
        if named:
            app.registered_commands = named
        root.add_typer(app, name=name)

    return app, register


# One-off overrides: profile values for this command only, checked like the profile's own; --save keeps them.
# Typed as strings, integers too: the profile's check then names the option, the value and the allowed range
# in one line, where Typer's own parsing would say only "is not a valid int range".
OVERRIDES = "One-off overrides (this command only; --save writes them to the profile)"


def _override(flag: str, metavar: str, help: str) -> Any:
    return typer.Option(flag, help=help, metavar=metavar, show_default=False, rich_help_panel=OVERRIDES)


Time = Annotated[str | None, _override(
    "--time", "TIME", "Time limit (slurm.time): MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, such as 2:00:00.")]
Partition = Annotated[str | None, _override(
    "--partition", "NAME", "Partition (slurm.partition); '' for the cluster's default.")]
Cpus = Annotated[str | None, _override(
    "--cpus", "N", "CPUs for the server and its kernels (slurm.cpus): 1-4096.")]
Mem = Annotated[str | None, _override(
    "--mem", "SIZE", "Memory (slurm.mem): a size such as 4000M, 16G or 1T.")]
Gpus = Annotated[str | None, _override(
    "--gpus", "GPUS", "GPUs (slurm.gpus): a count such as 1, or type:count such as a100:2.")]
Gres = Annotated[str | None, _override(
    "--gres", "GRES", "Generic resources (slurm.gres), such as gpu:1 or gpu:a100:2.")]
Account = Annotated[str | None, _override("--account", "NAME", "Account to charge (slurm.account).")]
Qos = Annotated[str | None, _override("--qos", "NAME", "Quality of service (slurm.qos).")]
Constraint = Annotated[str | None, _override(
    "--constraint", "FEATURES", "Node features (slurm.constraint), joined by & | and brackets.")]
JobName = Annotated[str | None, _override(
    "--job-name", "NAME", "Job name (slurm.job_name): letters, digits, . _ + -.")]
Sbatch = Annotated[list[str] | None, _override(
    "--sbatch", "OPTION", "One more sbatch option, such as --exclusive or --mail-type=END (repeat for more; like "
    "slurm.extra_directives): one named like a generated or a profile's directive replaces it; --output, "
    "--error, --open-mode, --wrap, --array, --wait and --hold are refused.")]
App = Annotated[str | None, _override("--app", "APP", "Jupyter app (server.app): lab, server or notebook.")]
Bind = Annotated[str | None, _override(
    "--bind", "BIND", "Where the server listens (server.bind): localhost, socket or node.")]
Port = Annotated[str | None, _override(
    "--port", "PORT", "Server port (server.port): 0 (a free port at each launch) or 1024-65535.")]
RootDir = Annotated[str | None, _override(
    "--root-dir", "DIR", "Directory the server shows (server.root_dir); a relative one is taken from here.")]
IdleTimeout = Annotated[str | None, _override(
    "--idle-timeout", "SECONDS",
    "Seconds without activity before the server stops itself (server.idle_timeout): 0 or more, 0 = never.")]
Save = Annotated[bool, typer.Option("--save", help="Also write the overrides to the profile file (its comments "
                                    "stay), as `init` would.", rich_help_panel=OVERRIDES)]


def absolute(path: str | None) -> str | None:
    """A relative directory is taken from where the command runs: units and jobs start elsewhere."""
    import os

    if not path or path.startswith("~"):
        return path
    return os.path.abspath(path)
def _command_name(info: typer.models.CommandInfo) -> str:
    if info.name:
        return info.name
    callback = info.callback
    return callback.__name__.replace("_", "-") if callback else ""
