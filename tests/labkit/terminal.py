"""A command run as the test user with a real terminal as its controlling tty and stdin, stdout and stderr."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path

from labkit.user import TestUser


def _take_terminal() -> None:
    # runs in the child after setsid: the pty on stdin becomes the controlling terminal (Ctrl-C, /dev/tty)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """What a person at the terminal sees: everything the program wrote to it, in order, read as it comes."""

    def __init__(self, user: TestUser, args: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
        master, slave = pty.openpty()
        self._master = master
        self.process = subprocess.Popen(
            user.argv(args, {**env, "TERM": "xterm"}), stdin=slave, stdout=slave, stderr=slave,
            cwd=str(cwd or user.home), start_new_session=True, preexec_fn=_take_terminal,
        )
        os.close(slave)
        self._seen = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            return False
        self._seen += data
        return bool(data)

    @property
    def text(self) -> str:
        """The screen so far, with the terminal's CRLF turned back into newlines."""
        return self._seen.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_for(self, wanted: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while wanted not in self.text:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{wanted!r} did not appear in {timeout} s; the terminal shows:\n{self.text}")
            if not self._read(min(left, 0.2)) and wanted not in self.text:
                raise AssertionError(f"the program closed the terminal before {wanted!r}:\n{self.text}")
        return self.text

    def drain(self, seconds: float) -> str:
        """Whatever else arrives within `seconds` (a fixed wait: used only to show that nothing more comes)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and self._read(min(left, 0.2)):
            pass
        return self.text

    def wait_exit(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s:\n{self.text}")
            self._read(0.1)
        self.drain(0.2)
        return self.process.returncode

    def interrupt(self) -> None:
        """Ctrl-C, typed: the terminal sends SIGINT to its foreground process group."""
        os.write(self._master, b"\x03")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.wait_exit(timeout=20)
            except AssertionError:
                self.process.kill()
                self.process.wait()
        os.close(self._master)
