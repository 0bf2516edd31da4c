"""`systemd render|install|start|stop|restart|status|logs|uninstall`: a profile as a systemd user unit."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from jupyter_hop.commands import options as o
from jupyter_hop.commands.options import Json, ProfileName, ShowToken, check_show_token, group
from jupyter_hop.output import emit_json, note, say, show_instructions, warn

if TYPE_CHECKING:
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile.model import Profile

app, register = group(
    "systemd", "Run a profile's server as a systemd user unit: always there, restarted when it crashes."
)


def _load(name: str) -> tuple[Paths, Profile]:
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import store

    paths = Paths.from_env()
    return paths, store.load(paths, name)


def _instructions(profile: Profile, record: object, *, as_json: bool = False, show_token: bool = False) -> None:
    from jupyter_hop.tracking.records import Record

    assert isinstance(record, Record)
    show_instructions(record, profile.ssh.style, as_json=as_json, show_token=show_token)


def _server_overrides(
    app: str | None, bind: str | None, port: str | None, root_dir: str | None, idle_timeout: str | None,
) -> dict[str, dict[str, str | Sequence[str]]]:
    from jupyter_hop.profile import overrides

    return overrides.given("server", app=app, bind=bind, port=port, root_dir=o.absolute(root_dir),
                           idle_timeout=idle_timeout)


@app.command()
def render(
    name: ProfileName = "default",
    app: o.App = None, bind: o.Bind = None, port: o.Port = None, root_dir: o.RootDir = None,
    idle_timeout: o.IdleTimeout = None, save: o.Save = False,
) -> None:
    """Print the unit that `install` would write on this machine."""
    from jupyter_hop.profile import overrides
    from jupyter_hop.systemd import machine
    from jupyter_hop.systemd import unit as unit_file

    given = _server_overrides(app, bind, port, root_dir, idle_timeout)
    with overrides.naming(given):
        paths, base = _load(name)
        profile = overrides.apply(base, given)
        # without --save the unit's run line carries the overrides; with it, the profile does
        text = unit_file.render(machine.build(paths, profile, [] if save else overrides.run_args(profile, given)))
        if save:
            overrides.save(paths, base, profile, given)
    sys.stdout.write(text)


@app.command()
def install(
    name: ProfileName = "default",
    now: Annotated[bool, typer.Option("--now", help="Also start it, and wait until the server answers.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an installed unit that differs.")] = False,
    app: o.App = None, bind: o.Bind = None, port: o.Port = None, root_dir: o.RootDir = None,
    idle_timeout: o.IdleTimeout = None, save: o.Save = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --now: print JSON for scripts.")] = False,
    show_token: ShowToken = False,
) -> None:
    """Write the unit, reload the user manager and enable the unit (it starts with your user manager).

    Overrides without --save go into the unit's command line (`run NAME --port 9000`): `start` and `restart`
    then run it as installed, and `install` without them asks for --force before dropping them.
    """
    from jupyter_hop.errors import HopError
    from jupyter_hop.profile import overrides
    from jupyter_hop.systemd import ops

    if (as_json or show_token) and not now:
        flag = "--json" if as_json else "--show-token"
        raise HopError(f"{flag} goes with --now (install alone starts no server): "
                       f"jupyter hop systemd install {name} --now {flag}")
    check_show_token(show_token)
    given = _server_overrides(app, bind, port, root_dir, idle_timeout)
    with overrides.naming(given):
        paths, base = _load(name)
        profile = overrides.apply(base, given)
        run_args = [] if save else overrides.run_args(profile, given)
        if save and given:
            overrides.check_writable(paths, name)
        checked = (lambda: overrides.save(paths, base, profile, given)) if save else None
        result = ops.install(paths, profile, force=force, run_args=run_args, checked=checked)
    verb = "Installed" if result.written else "Already installed"
    # with --json stdout carries the one object alone; what happened to the file is for people, on stderr
    (note if as_json else say)(f"{verb} and enabled: {result.path}")
    if result.linger_advice:
        warn(result.linger_advice)
    if now:
        # a running server with a changed unit is restarted so that the new unit applies
        started = ops.start(paths, profile, restart=result.running and result.written)
        _instructions(profile, started, as_json=as_json, show_token=show_token)
    elif result.running and result.written:
        say(f"It is running with the old unit; apply the new one: jupyter hop systemd restart {name}")
    elif not result.running:
        say(f"Start it now: jupyter hop systemd start {name}")


@app.command()
def start(name: ProfileName = "default", as_json: Json = False, show_token: ShowToken = False) -> None:
    """Start the unit; returns once the server answers, then prints how to reach it."""
    _start(name, restart=False, as_json=as_json, show_token=show_token)


@app.command()
def restart(name: ProfileName = "default", as_json: Json = False, show_token: ShowToken = False) -> None:
    """Restart the unit (a new server process); returns once it answers again."""
    _start(name, restart=True, as_json=as_json, show_token=show_token)


def _start(name: str, *, restart: bool, as_json: bool, show_token: bool) -> None:
    from jupyter_hop.systemd import ops

    check_show_token(show_token)
    paths, profile = _load(name)
    stale = ops.check_installed(paths, profile)
    if stale:
        warn(stale)
    _instructions(profile, ops.start(paths, profile, restart=restart), as_json=as_json, show_token=show_token)


@app.command()
def stop(name: ProfileName = "default") -> None:
    """Stop the unit: the launcher stops Jupyter and its kernels cleanly. It stays enabled."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile.model import check_name
    from jupyter_hop.systemd import ops

    unit = ops.stop(Paths.from_env(), check_name(name))
    say(f"Stopped {unit}.")


@app.command()
def status(
    name: ProfileName = "default",
    as_json: Json = False,
) -> None:
    """systemd's state of the unit, since when, and where the server answers."""
    from dataclasses import asdict

    from jupyter_hop.paths import Paths
    from jupyter_hop.profile.model import check_name
    from jupyter_hop.systemd import ops, systemctl

    info = ops.status(Paths.from_env(), check_name(name))
    if as_json:
        emit_json(asdict(info))
        return
    if info.load_state == "not-found":
        say(f"{info.unit}: not installed (`jupyter hop systemd install {name}` installs it)")
        return
    line = f"{info.unit}: {info.active_state} ({info.sub_state})"
    if info.since:
        line += f" since {systemctl.format_since(info.since)}"
    if info.main_pid:
        line += f", pid {info.main_pid}"
    say(line + f", restarted {info.restarts} times")
    if info.active_state == "failed" or info.result not in ("", "success"):
        say(f"  last run ended with: {info.result} (`jupyter hop systemd logs {name}` shows why)")
    say(f"  unit file: {info.unit_file} ({info.unit_file_state})")
    if info.url:
        say(f"  server: {info.url} on {info.host}")
        say(f"  connect: jupyter hop instructions {name}")


@app.command()
def logs(
    name: ProfileName = "default",
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many of the last lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output until Ctrl-C.")] = False,
) -> None:
    """The unit's output: from the journal, or from its log file where no journal runs."""
    from jupyter_hop import proc
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile.model import check_name
    from jupyter_hop.systemd import machine, ops, systemctl
    from jupyter_hop.systemd import unit as unit_file

    paths = Paths.from_env()
    check_name(name)
    if machine.journal_available():
        argv = systemctl.journal_argv(unit_file.unit_name(name), lines, follow=follow)
        raise typer.Exit(proc.run(argv, timeout=None, capture=False, what="showing the unit's output").returncode)
    if not unit_file.log_path(paths, name).exists():
        say(f"(no output yet: {unit_file.log_path(paths, name)} does not exist)")
        if not follow:
            return
    if not follow:
        sys.stdout.write(ops.log_tail(paths, name, lines))
        return
    for chunk in ops.follow_log(paths, name, lines):
        sys.stdout.write(chunk)
        sys.stdout.flush()


@app.command()
def uninstall(name: ProfileName = "default") -> None:
    """Stop and disable the unit, remove its file and reload the user manager."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile.model import check_name
    from jupyter_hop.systemd import ops

    done = ops.uninstall(Paths.from_env(), check_name(name))
    if done.existed:
        say(f"Uninstalled: {done.path} is gone and the user manager no longer knows the unit.")
    else:
        say(f"Nothing to uninstall: {done.path} does not exist and the user manager does not know the unit.")
