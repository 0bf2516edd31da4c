"""`doctor`: check the environment a profile runs in and say what to fix, one line per check."""

from __future__ import annotations

from typing import Annotated

import typer

from jupyter_hop.commands.options import Json, ProfileName
from jupyter_hop.output import emit_json, say

DOCTOR_HELP = (
    "Check what a profile needs and say what to fix, one line per check.\n\n"
    "Each line is OK, INFO (worth knowing), SKIP (does not apply on this machine), WARN (works, but you "
    "probably want to fix it) or FAIL (something will not work). The exit code is 1 when any check fails, "
    "else 0.\n\n"
    "The systemd checks (user manager reachable, lingering) apply when this machine runs systemd "
    "(/run/systemd/system exists); the Slurm checks (sbatch, squeue, scontrol, scancel on PATH, squeue "
    "answering) apply when any Slurm command is on PATH and Slurm is configured ($SLURM_CONF or a slurm.conf). "
    "Otherwise they are SKIP. --systemd/--no-systemd and --slurm/--no-slurm decide instead, for example "
    "--no-systemd on a cluster login node where you only submit jobs."
)

SYSTEMD_HELP = "Check systemd user units (default: when this machine runs systemd)."
SLURM_HELP = "Check Slurm (default: when Slurm is installed and configured)."


def register(app: typer.Typer) -> None:
    app.command("doctor", help=DOCTOR_HELP)(doctor)


def doctor(
    name: ProfileName = "default",
    as_json: Json = False,
    systemd: Annotated[bool | None, typer.Option("--systemd/--no-systemd", help=SYSTEMD_HELP)] = None,
    slurm: Annotated[bool | None, typer.Option("--slurm/--no-slurm", help=SLURM_HELP)] = None,
) -> None:
    from jupyter_hop import doctor as checks
    from jupyter_hop.paths import Paths

    report = checks.diagnose(Paths.from_env(), name, systemd=systemd, slurm=slurm)
    if as_json:
        emit_json(report.to_json())
    else:
        say(report.text())
    if not report.ok:
        raise typer.Exit(1)
