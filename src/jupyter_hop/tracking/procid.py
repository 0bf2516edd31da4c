"""A process's identity (pid, start time, boot, argv), so a recycled pid never passes for a process of ours."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of this machine; "" without procfs (then nothing can be identified)."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessId:
    """Who a process is: a pid names a different process after a reboot or once the pid is reused, and exec
    keeps the pid and start time but changes argv, so all four must be equal."""

    pid: int
    start_ticks: int  # field 22 of /proc/PID/stat: clock ticks after boot, exact (no clock steps, no rounding)
    boot_id: str
    argv: tuple[str, ...]

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The identity of running process `pid`, or None when it does not run, has exited (a zombie) or is not
        this user's (another user's process is never ours, whatever it is called)."""
        if pid <= 0:
            return None
        base = Path(f"/proc/{pid}")
        try:
            if base.stat().st_uid != os.getuid():
                return None
            # cmdline first: a process that exits meanwhile has an empty one, and its stat then says so
            cmdline = (base / "cmdline").read_bytes()
            stat = (base / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        if not cmdline:  # exiting (its memory already gone) or a kernel thread: nothing we started
            return None
        # The command name may contain spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):  # exited, only waiting for its parent to collect the exit status
            return None
        boot = boot_id()
        if not boot:
            return None
        argv = tuple(part.decode("utf-8", "surrogateescape") for part in cmdline.split(b"\0")[:-1])
        return cls(pid, int(fields[19]), boot, argv)

    def matches(self) -> bool:
        """Whether this very process still runs (the same pid, start, boot and argv, and still this user's)."""
        return self.start_ticks > 0 and bool(self.boot_id) and ProcessId.of(self.pid) == self

    def send(self, sig: signal.Signals) -> bool:
        """Send `sig` only if the process is still this one; whether it was sent.

        A pidfd taken before the check pins the process: if the pid is reused between the check and the signal,
        the pidfd still names the old (exited) process and the signal fails instead of reaching the new one.
        """
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            return False
        try:
            if not self.matches():
                return False
            signal.pidfd_send_signal(fd, sig)
        except (ProcessLookupError, PermissionError):
            return False
        finally:
            os.close(fd)
        return True


def recorded(pid: int, start_ticks: int, boot: str, argv: list[str]) -> ProcessId | None:
    """The identity a record holds, or None for a record without one (written by an older jupyter-hop)."""
    if pid <= 0 or start_ticks <= 0 or not boot or not argv:
        return None
    return ProcessId(pid, start_ticks, boot, tuple(argv))
