"""Helpers for CLI tests: run the real `python -m jupyter_hop` in a throwaway XDG tree, snapshot the tree."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import select
import stat
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOP = [sys.executable, "-m", "jupyter_hop"]


@dataclass(frozen=True)
class HopTree:
    """A fake home with its own XDG config and state dirs and a work dir to use as root_dir."""

    base: Path

    @classmethod
    def make(cls, base: Path) -> HopTree:
        for sub in ("home", "config", "state", "work"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        return cls(base)

    @property
    def config(self) -> Path:
        return self.base / "config" / "jupyter-hop"

    @property
    def work(self) -> Path:
        return self.base / "work"

    def profile(self, name: str) -> Path:
        return self.config / "profiles" / f"{name}.toml"

    def server_dir(self, name: str) -> Path:
        return self.config / "servers" / name

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "HOME": str(self.base / "home"),
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "XDG_STATE_HOME": str(self.base / "state"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        env.update(extra or {})
        return env

    def hop(
        self,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        prefix: Sequence[str] = (),
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI; without `stdin` it reads from /dev/null (not a terminal), as under cron or CI; `env` adds
        variables (a Slurm job's, say)."""
        return subprocess.run(
            [*prefix, *HOP, *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            env=self.env(env),
            cwd=self.work,
            timeout=timeout,
        )

    def hop_tty(self, args: Sequence[str], answers: Sequence[tuple[str, str]], timeout: float = 60) -> Result:
        """Run the CLI with a real terminal on stdin (getpass prompts there), answering each prompt."""
        return run_on_tty([*HOP, *args], self.env(), self.work, answers, timeout)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str
    answered: list[str]  # the prompts that appeared on the terminal and were answered


def _take_terminal() -> None:
    # runs in the child after setsid: make the pty on stdin its controlling terminal, so /dev/tty is the pty
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_tty(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, answers: Sequence[tuple[str, str]], timeout: float
) -> Result:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        list(argv),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_take_terminal,
        text=True,
    )
    os.close(slave)
    seen = b""
    answered: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for prompt, answer in answers:
            while prompt.encode() not in seen:
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    break
                ready, _, _ = select.select([master], [], [], min(left, 0.2))
                if ready:
                    try:
                        seen += os.read(master, 4096)
                    except OSError:  # EIO: the child closed the terminal
                        break
            else:
                os.write(master, answer.encode() + b"\n")
                seen = seen.replace(prompt.encode(), b"<answered>", 1)
                answered.append(prompt)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return Result(proc.returncode, out, err, answered)


def snapshot(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every entry under `root`: kind, mode, owner, and the sha256 of a file's bytes (or a link's target)."""
    entries: dict[str, tuple[str, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                kind, digest = "link", os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                kind, digest = "dir", ""
            else:
                kind, digest = "file", hashlib.sha256(path.read_bytes()).hexdigest()
            entries[str(path.relative_to(root))] = (kind, stat.S_IMODE(info.st_mode), info.st_uid, digest)
    return entries


def all_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]
