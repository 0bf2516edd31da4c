"""One private ssh master (POSIX only): our foreground child, with a watchdog that ends it when we die.

The master is not daemonised (-f) and keeps no ControlPersist: connect owns the process, sees its exit code,
and stops it with `-O exit`. A SIGKILLed connect cannot run that, so a tiny `sh` watchdog holds the read end of
a pipe whose only write end is ours: when we die, however we die, the kernel closes it, `read` returns and the
watchdog sends the master SIGTERM (ssh then removes its socket): measured 0.02 s from SIGKILL to no master and
no socket. The alternative, a `-f` master with a bounded ControlPersist refreshed by `-O check` (each check
restarts the countdown), was measured too: it would end N s after connect died, but its countdown also runs
while connections through a forward are open (ControlPersist=3 ended a master, and the connection, 3 s after
the last check), so a connect that is merely late to refresh (stopped, swapping) would cut the user's tunnel.

The master's stderr goes to a 0600 file, never a pipe: nobody reads a pipe while ssh authenticates, and its
content is the evidence when ssh fails (wrong password, unknown host, host key changed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_hop import proc
from jupyter_hop.errors import HopError
from jupyter_hop.laptop import argv as ssh_argv
from jupyter_hop.laptop import sshconfig
from jupyter_hop.laptop.link import LoginFailed, last_line
from jupyter_hop.laptop.link import is_auth_failure as is_auth_failure  # kept importable from here

# The longest Unix socket path that binds everywhere (macOS sun_path is 104 bytes with its NUL; Linux 108), less
# the ".XXXXXXXXXXXXXXXX" ssh appends to the path while it sets the socket up.
SOCKET_PATH_MAX = 103 - 17
# `sh -c WATCHDOG jupyter-hop-ssh-watchdog PID`: EOF on stdin means connect is gone.
WATCHDOG = 'read _ || :; kill -TERM "$1" 2>/dev/null'
POLL = 0.02
MUX_TIMEOUT = 15.0  # `ssh -O ...` talks to a local socket: seconds are plenty even on a loaded laptop


def deaf_to_ctrl_c() -> None:
    """In the child before exec: a Ctrl-C on the terminal reaches the whole foreground process group, and ssh
    quits on SIGINT unless it found SIGINT ignored when it started (it keeps an ignored one ignored). Ignored,
    the master and its clients outlive the keypress, so connect can close the forward, stop a --run server over
    the master and end the master itself, in that order. Prompts still reach the terminal: same session."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


MasterFailed = LoginFailed  # the master could not start; `auth`: the credentials were refused


@dataclass
class Master:
    """A running master to `host` (what the user typed, or a node behind a login master)."""

    host: str
    control_path: Path  # the socket, with ssh's tokens expanded
    log: Path
    process: subprocess.Popen[bytes]
    watchdog: subprocess.Popen[bytes]
    ssh: str = "ssh"
    env: Mapping[str, str] | None = None
    forwards: list[str] = field(default_factory=list)  # -L specs we opened and not yet cancelled

    def mux(self, op: ssh_argv.MuxOp, forward: str = "") -> subprocess.CompletedProcess[str]:
        argv = ssh_argv.mux_argv(self.host, self.control_path, op, forward, ssh=self.ssh)
        return proc.run(argv, timeout=MUX_TIMEOUT, what=f"ssh -O {op} to the master for {self.host}", env=self.env)

    def check(self) -> bool:
        """The master runs and answers on its socket (`ssh -O check`)."""
        return self.process.poll() is None and self.mux("check").returncode == 0

    def run(self, remote_line: str, *, timeout: float | None, what: str) -> subprocess.CompletedProcess[str]:
        """Run one remote command line over the master; 255 (ssh's own failure) is a HopError here."""
        argv = ssh_argv.command_argv(self.host, self.control_path, remote_line, ssh=self.ssh)
        result = proc.run(argv, timeout=timeout, what=what, env=self.env)
        if result.returncode == 255:
            raise HopError(f"ssh to {self.host} failed ({what}): {_last_line(result.stderr, self.log)}",
                           detail=result.stderr)
        return result

    def popen(self, remote_line: str) -> subprocess.Popen[str]:
        """Start one remote command line over the master, its stdout and stderr piped (a command that reports
        progress on stderr while it waits: the caller reads the lines as they come)."""
        argv = ssh_argv.command_argv(self.host, self.control_path, remote_line, ssh=self.ssh)
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=None if self.env is None else dict(self.env),
                                    preexec_fn=deaf_to_ctrl_c)
        except OSError as exc:
            raise HopError(f"cannot run {self.ssh} (a command on {self.host}): {exc.strerror}") from exc

    def forward(self, spec: str) -> None:
        """Open a -L forward (see argv.forward_spec); opening one that is already open is a no-op in ssh."""
        result = self.mux("forward", spec)
        if result.returncode != 0 or "failed" in result.stderr:
            raise HopError(f"ssh could not open the forward {spec} on {self.host}: {_said(result.stderr)}",
                           detail=result.stderr)
        if spec not in self.forwards:
            self.forwards.append(spec)

    def cancel(self, spec: str) -> None:
        """Close a forward. ssh exits 0 even when the master refused: its stderr says so."""
        result = self.mux("cancel", spec)
        if spec in self.forwards:
            self.forwards.remove(spec)
        if result.returncode != 0 or "failed" in result.stderr:
            raise HopError(f"ssh could not cancel the forward {spec} on {self.host}: {_said(result.stderr)}",
                           detail=result.stderr)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel our forwards, ask the master to exit, make sure it did, and remove what we created."""
        if self.process.poll() is None:
            for spec in list(self.forwards):
                with contextlib.suppress(HopError):  # the master exits next, which closes every forward anyway
                    self.cancel(spec)
            self.mux("exit")
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
        # the watchdog goes before the master is reaped: a reaped pid may be reused, and it would signal that
        self.watchdog.kill()
        self.watchdog.wait()
        if self.watchdog.stdin is not None:
            self.watchdog.stdin.close()
        self.process.wait()
        self.forwards.clear()
        for path in (self.control_path, self.log):
            path.unlink(missing_ok=True)


def _said(stderr: str) -> str:
    """A mux client's complaint in one line: the master's reason comes first ("Port forwarding failed"), the
    client's summary after it."""
    return "; ".join(line.strip() for line in stderr.splitlines() if line.strip()) or "ssh said nothing"


def _last_line(stderr: str, log: Path | None = None) -> str:
    """The line of ssh's output that says why: its stderr's last, else its log's."""
    if not stderr.strip() and log is not None:
        with contextlib.suppress(OSError):
            stderr = log.read_text(errors="replace")
    return last_line(stderr)


def start(
    host: str,
    control_dir: Path,
    *,
    options: Sequence[str] = (),
    ssh: str = "ssh",
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> Master:
    """Start a master to `host` and return once it answers on its socket (after the user authenticated).

    Prompts (password, OTP, passphrase, a new host key) go from ssh to the user's terminal; `timeout` is how
    long the user may take to answer them. A failure is one line with ssh's reason; its full output is the
    detail. `options`: extra -o options such as argv.jump_options for a node behind a login master.
    """
    template = ssh_argv.control_template(control_dir)
    settings = sshconfig.effective(host, ["-o", f"ControlPath={template}", *options], ssh=ssh, env=env)
    control_path = Path(settings.control_path)
    if len(os.fsencode(control_path)) > SOCKET_PATH_MAX:
        raise HopError(f"the ssh control socket path {control_path} is longer than {SOCKET_PATH_MAX} bytes, "
                       "which Unix sockets cannot bind; set XDG_RUNTIME_DIR to a short private directory")
    log = control_dir / f"{control_path.name}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    argv = ssh_argv.master_argv(host, control_dir, ssh=ssh, options=options)
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fd,
                                   env=None if env is None else dict(env), preexec_fn=deaf_to_ctrl_c)
    except OSError as exc:
        raise HopError(f"cannot run {ssh} (the ssh master for {host}): {exc.strerror}") from exc
    finally:
        os.close(fd)
    # its own session: a Ctrl-C meant for connect must not end the watchdog before connect has cleaned up
    watchdog = subprocess.Popen(["sh", "-c", WATCHDOG, "jupyter-hop-ssh-watchdog", str(process.pid)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    master = Master(host, control_path, log, process, watchdog, ssh, env)
    try:
        _wait_ready(master, timeout)
    except BaseException:
        master.close()
        raise
    return master


def _wait_ready(master: Master, timeout: float) -> None:
    """Poll until the socket answers `-O check`; ssh creates it only after authentication succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        code = master.process.poll()
        if code is not None:
            said = _last_line("", master.log)
            text = master.log.read_text(errors="replace") if master.log.exists() else ""
            raise MasterFailed(f"cannot connect to {master.host}: {said}", detail=text, auth=is_auth_failure(said))
        if master.control_path.exists() and master.mux("check").returncode == 0:
            return
        if time.monotonic() > deadline:
            raise HopError(f"ssh to {master.host} did not finish logging in within {timeout:g} s; "
                           "it may be waiting for an answer nobody gave")
        time.sleep(POLL)
