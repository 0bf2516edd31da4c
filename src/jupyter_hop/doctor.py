"""Checks of the environment a profile runs in, one line each, each failure saying what to fix."""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import os
import shlex
import shutil
import socket
import stat
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths

# ok: fine. info: worth knowing, nothing to fix. skip: does not apply on this machine. warn: works, but
# something the user probably wants fixed. fail: something the user asked for will not work.
Status = Literal["ok", "info", "skip", "warn", "fail"]
SLURM_TOOLS = ("sbatch", "squeue", "scontrol", "scancel")
SYSTEMD_BOOTED = Path("/run/systemd/system")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    fix: str = ""  # what to do, when there is something to do; commands in it run as printed

    def line(self) -> str:
        text = f"{self.status.upper():<4}  {self.name}: {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text


@dataclass
class Report:
    profile: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(check.status == "fail" for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def text(self) -> str:
        lines = [check.line() for check in self.checks]
        failed = sum(check.status == "fail" for check in self.checks)
        warned = sum(check.status == "warn" for check in self.checks)
        lines.append(f"{failed} to fix, {warned} warning(s)." if failed or warned else "All good.")
        return "\n".join(lines) + "\n"


def systemd_present() -> str:
    """"" when this machine runs systemd (sd_booted: /run/systemd/system exists), else why it does not."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed"
    if not SYSTEMD_BOOTED.is_dir():
        return f"this machine does not run systemd ({SYSTEMD_BOOTED} does not exist)"
    return ""


def slurm_present() -> str:
    """"" when this machine has Slurm commands and a configuration for them, else why not."""
    if not any(shutil.which(tool) for tool in SLURM_TOOLS):
        return "no Slurm command is on PATH"
    from jupyter_hop.tracking import sources

    return sources.slurm_unconfigured()


def diagnose(paths: Paths, name: str, *, systemd: bool | None = None, slurm: bool | None = None) -> Report:
    """Every check for profile `name`; `systemd`/`slurm` force a group on or off (None: decide by the machine)."""
    from jupyter_hop.profile import store

    report = Report(name)
    add = report.checks.append
    try:
        profile: Any = store.load(paths, name)
        add(Check("profile", "ok", f"{paths.profile_file(name)} is valid"))
    except HopError as exc:
        profile = None
        missing = not os.path.lexists(paths.profile_file(name))  # no exception for an unreadable dir
        add(Check("profile", "fail", exc.message, f"jupyter hop init {shlex.quote(name)}" if missing else ""))
    if profile is not None:
        add(check_jupyter(profile.server.app))
    add(check_modes(paths, name))
    if profile is not None:
        add(check_password(paths, profile))
        add(check_login_host(profile))
        add(check_port(profile))
        add(check_local_port(profile))
    report.checks.extend(systemd_checks(systemd, systemd_present()))
    report.checks.extend(slurm_checks(slurm, slurm_present()))
    add(check_records(paths))
    return report


def check_jupyter(app: str) -> Check:
    """Found without importing: importing jupyter_server costs the CLI over a second."""
    from jupyter_hop.server.launcher import APP_MODULES

    needed = ["jupyter_server"] + ([APP_MODULES[app]] if app != "server" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        return Check("jupyter", "fail", f"{', '.join(missing)} not importable by {sys.executable} "
                     f"(server.app = {app!r})",
                     f"{shlex.quote(sys.executable)} -m pip install {' '.join(missing)}")
    return Check("jupyter", "ok", f"{', '.join(needed)} importable by {sys.executable}")


def _mode_problem(path: Path, want: int) -> str:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if info.st_uid != os.getuid():
        return f"{path} belongs to uid {info.st_uid}, not to you"
    mode = stat.S_IMODE(info.st_mode)
    if mode & ~want:
        return f"{path} is {mode:04o}, should be {want:04o}"
    return ""


def check_modes(paths: Paths, name: str) -> Check:
    """Secrets and configs 0600, their dirs 0700: nobody else may read a hash, a token or a record."""
    dirs = [paths.config_dir, paths.profile_file(name).parent, paths.server_dir(name).parent, paths.server_dir(name),
            paths.state_dir, paths.records_dir, paths.jobs_dir, paths.logs_dir]
    files = [paths.profile_file(name), paths.server_config(name), paths.password_file(name)]
    for directory in (paths.records_dir, paths.jobs_dir):
        with contextlib.suppress(OSError):
            files += sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    bad_dirs = [(d, p) for d in dirs if (p := _mode_problem(d, 0o700))]
    bad_files = [(f, p) for f in files if (p := _mode_problem(f, 0o600))]
    if not paths.server_config(name).exists():
        return Check("files", "fail", f"{paths.server_config(name)} does not exist",
                     f"jupyter hop init {shlex.quote(name)}")
    if not bad_dirs and not bad_files:
        return Check("files", "ok", f"configs and records private (0600 files in 0700 dirs under "
                     f"{paths.config_dir} and {paths.state_dir})")
    problems = [p for _, p in bad_dirs + bad_files]
    fixes = []
    if bad_dirs:
        fixes.append("chmod 700 " + " ".join(shlex.quote(str(d)) for d, _ in bad_dirs))
    if bad_files:
        fixes.append("chmod 600 " + " ".join(shlex.quote(str(f)) for f, _ in bad_files))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if any("belongs to uid" in p for p in problems):
        return Check("files", "fail", problems[0] + more, "move those files away and run jupyter hop init again")
    return Check("files", "fail", problems[0] + more, " && ".join(fixes))


def check_password(paths: Paths, profile: Any) -> Check:
    from jupyter_hop.server import password, serverconfig

    hashed = serverconfig.read_hash(paths, profile.name)
    change = f"jupyter hop password {shlex.quote(profile.name)}"
    if hashed is None:
        if profile.server.bind == "node":
            return Check("password", "fail", "no password set, and server.bind = 'node' needs one (others on the "
                         "cluster can reach the port)", change)
        return Check("password", "warn", "no password set: token mode (a fresh token each launch, shown only "
                     "on your terminal)", change)
    if not password.looks_hashed(hashed):
        return Check("password", "fail", f"{paths.password_file(profile.name)} does not hold an argon2 hash "
                     "that Jupyter accepts", change)
    return Check("password", "ok", "password set (argon2 hash)")


def check_login_host(profile: Any) -> Check:
    if profile.ssh.login_host:
        return Check("login-host", "ok", f"instructions hop through ssh.login_host = {profile.ssh.login_host!r}")
    here = socket.gethostname()
    return Check("login-host", "info", f"ssh.login_host is not set: jobs name the node they were submitted "
                 f"from, runs and units name this host ({here!r}); set it (`jupyter hop init --login-host`) if "
                 "your laptop knows it by another name")


def check_port(profile: Any) -> Check:
    port = profile.server.port
    if not port:
        return Check("port", "ok", "server.port = 0: a free port is picked at each launch")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return Check("port", "fail", f"server.port = {port} is in use on this host",
                         f"jupyter hop init {shlex.quote(profile.name)} --port 0")
    return Check("port", "ok", f"server.port = {port} is free on this host")


def check_local_port(profile: Any) -> Check:
    """The laptop end of the tunnel; it matters here only when this machine is also where the tunnel starts."""
    port = profile.server.local_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return Check("local-port", "info", f"server.local_port = {port} is in use on this host; that only "
                         "matters if you open the tunnel from here (`jupyter hop init --local-port` changes it)")
    return Check("local-port", "ok", f"server.local_port = {port} is free on this host")


def systemd_checks(forced: bool | None, absent: str) -> list[Check]:
    """Run when asked for (--systemd), else when the machine runs systemd; otherwise one SKIP line."""
    if forced is False or (forced is None and absent):
        return [Check("systemd", "skip", f"no systemd user units here: {absent or 'not asked for (--no-systemd)'}")]
    from jupyter_hop.systemd import systemctl

    user = getpass.getuser()
    checks = []
    try:
        systemctl.require_manager()
        checks.append(Check("systemd", "ok", "the systemd user manager answers"))
    except HopError as exc:
        checks.append(Check("systemd", "fail", exc.message))
    linger = systemctl.linger(user)
    if linger.state == "yes":
        checks.append(Check("linger", "ok", f"{user} lingers: units keep running after logout"))
    else:
        what = "does not linger" if linger.state == "no" else f"may not linger ({linger.how})"
        checks.append(Check("linger", "fail", f"{user} {what}: units stop when you log out and do not start at "
                            "boot", f"loginctl enable-linger {user}"))
    return checks


def slurm_checks(forced: bool | None, absent: str) -> list[Check]:
    """Run when asked for (--slurm), else when Slurm is installed and configured; otherwise one SKIP line."""
    if forced is False or (forced is None and absent):
        return [Check("slurm", "skip", f"no Slurm jobs here: {absent or 'not asked for (--no-slurm)'}")]
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        return [Check("slurm", "fail", f"{', '.join(missing)} not on PATH (PATH={os.environ.get('PATH', '')})",
                      "run this on a Slurm login node, or load the Slurm module first")]
    from jupyter_hop.slurm import tools
    from jupyter_hop.tracking import sources

    unconfigured = sources.slurm_unconfigured()
    if unconfigured:
        return [Check("slurm", "fail", unconfigured, "run this on a Slurm login node, or set SLURM_CONF")]
    try:
        tools.squeue()
    except HopError as exc:
        return [Check("slurm", "fail", (exc.message.strip().splitlines() or [""])[-1],
                      "check that the Slurm controller runs (`sinfo` tells)")]
    return [Check("slurm", "ok", f"{', '.join(SLURM_TOOLS)} on PATH and squeue answers")]


def check_records(paths: Paths) -> Check:
    """Stale records are only reported here; `list` shows and removes them."""
    from jupyter_hop.tracking import inventory

    found = inventory.gather(paths, clean=False)
    stale = [row for row in found.rows if row.state == "stale"]
    if stale:
        return Check("records", "warn", f"{len(stale)} stale record(s): {inventory.keys(stale)} ({stale[0].note})",
                     "jupyter hop list (shows and removes them)")
    live = sum(row.state != "stale" for row in found.rows)
    return Check("records", "ok", f"no stale records ({live} server(s) known)")

