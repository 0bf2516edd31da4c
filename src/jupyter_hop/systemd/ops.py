"""What the `systemd` commands do: install, start, stop, status, logs and uninstall a profile's user unit."""

from __future__ import annotations

import contextlib
import getpass
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jupyter_hop import proc
from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import LOG_TAIL_LINES, atomic_write, private_file, read_text, tail
from jupyter_hop.paths import Paths
from jupyter_hop.profile import overrides
from jupyter_hop.profile.model import Profile
from jupyter_hop.systemd import machine, systemctl
from jupyter_hop.systemd import unit as unit_file
from jupyter_hop.systemd.machine import build, home
from jupyter_hop.tracking import records
from jupyter_hop.tracking.records import Record


def _install_command(name: str, run_args: Sequence[str], *options: str) -> str:
    return shlex.join(["jupyter", "hop", "systemd", "install", name, *run_args, *options])


def installed_path(unit: str) -> Path:
    systemctl.require_manager()
    return systemctl.unit_dir(systemctl.manager_environment(), home()) / unit


@dataclass
class Installed:
    path: Path
    written: bool  # False when the file already had exactly this text
    linger_advice: str
    running: bool  # already running: a changed unit applies from the next (re)start


def install(
    paths: Paths, profile: Profile, *, force: bool, run_args: Sequence[str] = (),
    checked: Callable[[], None] | None = None,
) -> Installed:
    """Write the unit where the user manager reads it, reload, enable; a different one needs force.

    `checked` runs once everything is checked, before the unit is written (`--save` writes the profile then).
    """
    spec = build(paths, profile, run_args)
    text = unit_file.render(spec)
    path = installed_path(spec.unit)
    old = read_text(path)
    if old is not None and old != text and not force:
        raise HopError(
            f"{path} differs from the unit jupyter-hop would write now (edited, the profile changed, or other "
            f"one-off options); `{_install_command(profile.name, run_args, '--force')}` replaces it"
        )
    if checked:
        checked()
    if old != text:
        # Not private: systemd and the user read it; it holds no secret.
        atomic_write(path, text, mode=0o644)
    if spec.log_file:
        private_file(Path(spec.log_file))
    systemctl.check(["daemon-reload"])
    systemctl.check(["enable", spec.unit])
    user = getpass.getuser()
    running = systemctl.show(spec.unit).get("ActiveState") in ("active", "activating", "reloading")
    return Installed(path, old != text, systemctl.linger(user).advice(user), running)


def check_installed(paths: Paths, profile: Profile) -> str:
    """Refuse a unit that is not installed; a warning when its file no longer matches the profile, else ""."""
    unit = unit_file.unit_name(profile.name)
    path = installed_path(unit)
    text = read_text(path)
    if text is None:
        raise HopError(
            f"{unit} is not installed ({path} does not exist): "
            f"run `jupyter hop systemd install {profile.name}`"
        )
    # A unit installed with one-off options (`install NAME --port 9000`) keeps them: it is compared with what
    # the same install would write now, so only a changed profile (or a hand edit) makes it stale.
    run_args = unit_file.run_args_of(text, profile.name) or []
    given = overrides.parse_run_args(run_args)
    if given is None:  # not options jupyter-hop wrote: a hand edit
        run_args, given = [], {}
    stale = ""
    with contextlib.suppress(HopError):
        spec = build(paths, overrides.apply(profile, given), run_args)
        if unit_file.render(spec) != text:
            stale = (f"{path} does not match the profile any more; "
                     f"`{_install_command(profile.name, run_args, '--force')}` updates it")
        if spec.log_file:
            private_file(Path(spec.log_file))  # a missing log dir would make the start fail
    return stale


def start(paths: Paths, profile: Profile, *, restart: bool = False) -> Record:
    """Start (or restart) the unit; Type=notify makes systemctl return only once the server answers."""
    check_installed(paths, profile)
    unit = unit_file.unit_name(profile.name)
    timeout = profile.server.ready_timeout + unit_file.START_MARGIN + 30
    # After a run of failures systemd refuses starts ("start request repeated too quickly") until reset.
    systemctl.run(["reset-failed", unit], timeout=20)
    result = systemctl.run(["restart" if restart else "start", unit], timeout=timeout)
    if result.returncode != 0:
        raise HopError(
            f"{unit} did not start: {(result.stderr.strip().splitlines() or ['no reason given'])[0]}",
            detail=why_failed(paths, profile.name),
        )
    record = records.find_unit(paths, profile.name)
    if record is None:
        raise HopError(
            f"{unit} is running but wrote no record in {paths.records_dir}; "
            f"see `jupyter hop systemd logs {profile.name}`"
        )
    return record


def why_failed(paths: Paths, name: str) -> str:
    """systemd's account of the last run (e.g. status=200/CHDIR) and the end of the unit's output."""
    unit = unit_file.unit_name(name)
    state = systemctl.run(["status", unit, "--no-pager", "--lines=0", "--full"], timeout=20).stdout.rstrip()
    tail = log_tail(paths, name, LOG_TAIL_LINES).rstrip()
    return f"{state}\n\nLast lines of its output:\n{tail or '(none)'}"


def stop(paths: Paths, name: str) -> str:
    unit = unit_file.unit_name(name)
    systemctl.require_manager()
    if not systemctl.known(unit):
        raise HopError(f"{unit} is not installed, so there is nothing to stop (`jupyter hop list` shows what runs)")
    systemctl.check(["stop", unit], timeout=90)
    _drop_dead_record(paths, name)
    return unit


def _drop_dead_record(paths: Paths, name: str) -> None:
    """A launcher that was killed (not stopped) cannot remove its record; the stop has to."""
    from jupyter_hop.tracking import liveness

    record = records.find_unit(paths, name)
    if record is not None and not liveness.launcher_alive(record):
        records.remove(paths, record)


@dataclass(frozen=True)
class UnitStatus:
    """systemd's view of a profile's unit, and where its server answers (from its record)."""

    profile: str
    unit: str
    load_state: str
    active_state: str
    sub_state: str
    unit_file_state: str
    unit_file: str
    main_pid: int
    restarts: int
    result: str
    since: float | None  # when it last became active, while it is
    url: str
    host: str


def status(paths: Paths, name: str) -> UnitStatus:
    """systemd's view of the unit plus the server's address from its record."""
    unit = unit_file.unit_name(name)
    systemctl.require_manager()
    state = systemctl.show(unit)
    active = state.get("ActiveState") == "active"
    record = records.find_unit(paths, name) if active else None
    return UnitStatus(
        profile=name,
        unit=unit,
        load_state=state.get("LoadState", ""),
        active_state=state.get("ActiveState", ""),
        sub_state=state.get("SubState", ""),
        unit_file_state=state.get("UnitFileState", ""),
        unit_file=state.get("FragmentPath", ""),
        main_pid=int(state.get("MainPID") or 0),
        restarts=int(state.get("NRestarts") or 0),
        result=state.get("Result", ""),
        since=systemctl.since_epoch(state) if active else None,
        url=server_url(record) if record else "",
        host=record.host if record else "",
    )


def server_url(record: Record) -> str:
    """Where the server answers on its own host (what the tunnel forwards to)."""
    if record.sock:
        return f"unix:{record.sock}"
    return f"http://{record.address or '127.0.0.1'}:{record.port}{record.base_url}"


def log_tail(paths: Paths, name: str, lines: int) -> str:
    """The last lines of the unit's output, from the journal or from its log file."""
    unit = unit_file.unit_name(name)
    if machine.journal_available():
        with contextlib.suppress(HopError):
            return proc.run(systemctl.journal_argv(unit, lines), timeout=20, what="reading the journal").stdout
        return ""
    return tail(unit_file.log_path(paths, name), lines)


def follow_log(paths: Paths, name: str, lines: int) -> Iterator[str]:
    """The last lines of the log file, then new text as it arrives, until interrupted."""
    path = unit_file.log_path(paths, name)
    yield log_tail(paths, name, lines)
    position = path.stat().st_size if path.exists() else 0
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < position:  # truncated or replaced: start over
            position = 0
        if size > position:
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            yield chunk
        time.sleep(0.2)


@dataclass(frozen=True)
class Uninstalled:
    path: Path  # the unit file, gone now
    existed: bool  # whether there was anything to uninstall


def uninstall(paths: Paths, name: str) -> Uninstalled:
    """Stop, disable, remove the file, reload: afterwards the manager no longer knows the unit."""
    unit = unit_file.unit_name(name)
    path = installed_path(unit)
    existed = path.exists() or systemctl.known(unit)
    systemctl.run(["stop", unit], timeout=90)
    if path.exists():
        systemctl.check(["disable", unit])
        try:
            path.unlink()
        except OSError as exc:
            raise HopError(f"cannot remove {path}: {exc.strerror}") from exc
    systemctl.check(["daemon-reload"])
    # A unit that failed stays in the manager's memory until reset, even without its file.
    systemctl.run(["reset-failed", unit], timeout=20)
    _drop_dead_record(paths, name)
    return Uninstalled(path, existed)
