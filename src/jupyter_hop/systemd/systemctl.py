"""Thin edges to the user's systemd manager: systemctl --user, loginctl, the journal and unit files."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jupyter_hop import proc
from jupyter_hop.errors import HopError

LINGER_DIR = Path("/var/lib/systemd/linger")
SHOW_PROPERTIES = (
    "LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath", "MainPID", "NRestarts",
    "ActiveEnterTimestamp", "Result",
)


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def run(
    args: list[str], *, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One systemctl --user call; a missing systemctl or a hung manager becomes a HopError."""
    return proc.run(["systemctl", "--user", *args], timeout=timeout, env=_env(env), what="systemd user units")


def check(args: list[str], *, timeout: float = 60, what: str = "") -> str:
    """Run systemctl --user and return its output; failure raises with systemctl's own words as detail."""
    result = run(args, timeout=timeout)
    if result.returncode != 0:
        raise HopError(
            f"`systemctl --user {' '.join(args)}` failed{': ' + what if what else ''}",
            detail=(result.stderr or result.stdout).strip(),
        )
    return result.stdout


def require_manager(env: Mapping[str, str] | None = None) -> None:
    """Raise a one-line HopError saying why no user manager is reachable and what to do about it."""
    env = _env(env)
    import getpass

    user, uid = getpass.getuser(), os.getuid()
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if not runtime:
        raise HopError(
            "XDG_RUNTIME_DIR is not set, so systemctl --user cannot find your user manager (su and sudo do "
            f"not set it): log in with ssh or on the console, or `export XDG_RUNTIME_DIR=/run/user/{uid}`"
        )
    private = Path(runtime) / "systemd" / "private"
    if not private.exists():
        raise HopError(
            f"no systemd user manager runs for {user} ({private} does not exist): log in with ssh or on the "
            f"console to start one, and `loginctl enable-linger {user}` to keep it running after logout"
        )
    result = run(["show-environment"], timeout=20, env=env)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise HopError(f"systemctl --user cannot reach your user manager through {private}: {reason}")


def manager_environment() -> dict[str, str]:
    return parse_show(check(["show-environment"], timeout=20))


def unit_dir(manager_env: Mapping[str, str], home: Path) -> Path:
    """Where the user manager reads units the user writes: its own XDG_CONFIG_HOME, as systemd does it."""
    config = manager_env.get("XDG_CONFIG_HOME") or str(Path(manager_env.get("HOME") or home) / ".config")
    return Path(config) / "systemd" / "user"


def journal_argv(unit: str, lines: int, *, follow: bool = False) -> list[str]:
    """The journalctl call that shows a user unit's last `lines` lines of output."""
    return ["journalctl", "--user", "-u", unit, "-n", str(lines), "--no-pager", *(["-f"] if follow else [])]


@dataclass(frozen=True)
class Linger:
    state: str  # "yes", "no" or "unknown"
    how: str  # where the answer came from, or why there is none

    def advice(self, user: str) -> str:
        """The warning to print when the server would stop at logout, or "" when it would not."""
        if self.state == "yes":
            return ""
        command = f"loginctl enable-linger {user}"
        if self.state == "no":
            return f"{user} does not linger, so the server stops when you log out; keep it running: {command}"
        return (f"cannot tell whether {user} lingers ({self.how}); "
                f"without lingering the server stops at logout: {command}")


def linger(user: str) -> Linger:
    """Ask logind; where it does not answer, look at the file logind keeps for lingering users."""
    try:
        argv = ["loginctl", "show-user", user, "--property=Linger", "--value"]
        result = proc.run(argv, timeout=10, what="asking logind about lingering")
        answer = result.stdout.strip()
        if result.returncode == 0 and answer in ("yes", "no"):
            return Linger(answer, "loginctl")
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
    except HopError as exc:
        reason = exc.message
    if (LINGER_DIR / user).exists():
        return Linger("yes", str(LINGER_DIR / user))
    if LINGER_DIR.is_dir():
        return Linger("no", str(LINGER_DIR))
    return Linger("unknown", f"loginctl: {reason}")


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B` and `show-environment` output (A=value lines) as a dict; values may contain '='."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def show(unit: str) -> dict[str, str]:
    args = ["show", "--timestamp=unix", unit, *(f"--property={p}" for p in SHOW_PROPERTIES)]
    return parse_show(check(args, timeout=20))


def since_epoch(state: Mapping[str, str]) -> float | None:
    """ActiveEnterTimestamp as printed with --timestamp=unix ("@1795671798"), or None when never active."""
    stamp = state.get("ActiveEnterTimestamp", "")
    if stamp.startswith("@") and stamp[1:].isdigit() and int(stamp[1:]) > 0:
        return float(stamp[1:])
    return None


def format_since(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else ""


def known(unit: str) -> bool:
    """Whether the manager knows the unit at all: loaded from a file, or remembered (e.g. failed)."""
    args = ["show", unit, "--property=LoadState", "--property=ActiveState"]
    state = parse_show(run(args, timeout=20).stdout)
    return not (state.get("LoadState") == "not-found" and state.get("ActiveState") == "inactive")
