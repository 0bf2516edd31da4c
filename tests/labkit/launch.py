"""Running `jupyter-hop` and the launcher as the test user, and reading what they print."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labkit.user import TestUser

TUNNEL_RE = re.compile(r"^  (ssh .*)$", re.MULTILINE)


def hop(user: TestUser, env: dict[str, str], *args: str, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return user.run(["jupyter-hop", *args], env, input=stdin, timeout=timeout)


def init_profile(
    user: TestUser, env: dict[str, str], name: str, *args: str, password: str | None = "pw-s3cret"
) -> None:
    extra = ["--password-stdin"] if password is not None else ["--no-password"]
    result = hop(user, env, "init", name, "--root-dir", env["WORK_DIR"], *extra, *args, stdin=(password or "") + "\n")
    assert result.returncode == 0, result.stderr


@dataclass
class Launcher:
    process: subprocess.Popen[str]
    out_path: Path
    err_path: Path

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def wait_ready(self, timeout: float = 60) -> str:
        """The printed instructions, once the launcher says how to stop it; fails if the launcher exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out
            if "Stop it:" in text:
                return text
            if self.process.poll() is not None:
                raise AssertionError(f"launcher exited {self.process.returncode}: {self.err[-3000:]}")
            time.sleep(0.02)
        raise AssertionError(f"launcher not ready in {timeout} s: {self.err[-3000:]}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_launcher(user: TestUser, env: dict[str, str], name: str, prefix: list[str] | None = None,
                   args: tuple[str, ...] = ()) -> Launcher:
    """Start `jupyter-hop run NAME [ARGS]` as the user; `prefix` runs it elsewhere (e.g. `ip netns exec compute`).

    The launcher is the process we signal: setpriv and env exec, so the pid is the launcher's own.
    """
    directory = Path(tempfile.mkdtemp(prefix="launcher-"))
    out_path, err_path = directory / "out", directory / "err"
    argv = user.argv(["jupyter-hop", "run", name, *args], env)
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen([*(prefix or []), *argv], stdout=out, stderr=err, text=True,
                                   cwd=str(user.home), start_new_session=True)
    return Launcher(process, out_path, err_path)


def tunnel_commands(text: str) -> list[str]:
    return TUNNEL_RE.findall(text)


def port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
