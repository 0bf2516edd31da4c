"""The launcher: start the profile's Jupyter app as a child, wait until it answers, record it, keep it running."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jupyter_hop import output
from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import atomic_write
from jupyter_hop.paths import Paths, new_launch_dir
from jupyter_hop.profile.model import Profile
from jupyter_hop.profile.setup import check_bind_needs_password, locked
from jupyter_hop.server import child, ownership, probe, serverconfig, serverlog
from jupyter_hop.server.child import Launch, Stopper
from jupyter_hop.server.placement import Placement, cluster_of, node_address, placement
from jupyter_hop.server.serverlog import ServerOutput
from jupyter_hop.tracking import place, records
from jupyter_hop.tracking.procid import ProcessId
from jupyter_hop.tracking.records import Record

# How each app is started with this same interpreter, and the package that must be importable for it.
APP_MODULES = {"server": "jupyter_server", "lab": "jupyterlab", "notebook": "notebook"}
# A Unix socket path longer than this makes Jupyter log a traceback and run without listening.
MAX_SOCKET_PATH = 107
POLL_INTERVAL = 0.01
# Launches that lose the race for an automatically picked port (Jupyter probes it, closes it, binds again).
AUTO_PORT_ATTEMPTS = 3
# Variables that would change how the child authenticates or listens behind the profile's back, and our own
# (JUPYTER_HOP_DEBUG from --debug would reach every `jupyter hop` run in a notebook's terminal or kernel).
SCRUBBED_ENV = ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", "JUPYTER_PORT", "JUPYTER_PORT_RETRIES", "NOTIFY_SOCKET",
                "JUPYTER_HOP_UNIT", "JUPYTER_RUNTIME_DIR", "JUPYTER_HOP_DEBUG")


def check_app(app: str) -> list[str]:
    module = APP_MODULES[app]
    if importlib.util.find_spec(module) is None:
        raise HopError(
            f"server.app = {app!r} but {module} is not installed for {sys.executable}: "
            f"pip install {module}, or choose another app with `jupyter hop init --app server`"
        )
    return [sys.executable, "-m", module]


def check_port_free(address: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise HopError(
                f"server.port = {port} is already in use on {address}; choose another or 0 (automatic)"
            ) from exc


def choose_local_port(paths: Paths, wanted: int) -> int:
    """The profile's laptop port, unless another live server of this user already claims it in its instructions."""
    taken = {r.local_port for _, r in records.all_records(paths) if r is not None}
    port = wanted
    while port in taken and port < 65535:
        port += 1
    return port


def _child_env(runtime_dir: Path, token_file: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    # Per launch and node-local: `jupyter server list` on a shared home would delete other nodes' files.
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    if token_file:
        env["JUPYTER_TOKEN_FILE"] = str(token_file)
    return env


def _server_argv(base: list[str], config: Path, bind: str, address: str, port: int, sock: Path) -> list[str]:
    argv = [*base, f"--config={config}"]
    if bind == "socket":
        return [*argv, f"--ServerApp.sock={sock}"]
    # port_retries=0: a fixed port that is taken must fail, not silently move elsewhere.
    return [*argv, f"--ServerApp.ip={address}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]


def _wait_ready(launch: Launch, stopper: Stopper, deadline: float, address: str) -> dict[str, object]:
    """Poll for the server's own runtime json, then for GET /api = 200 from our child; never a fixed sleep."""
    info_file = launch.runtime_dir / f"jpserver-{launch.process.pid}.json"
    info: dict[str, object] | None = None
    while True:
        if launch.process.poll() is not None or stopper.requested:
            raise _Stopped()
        if info is None and info_file.exists():
            with contextlib.suppress(ValueError, OSError):
                info = json.loads(info_file.read_text(encoding="utf-8"))
        if info is not None:
            port, sock = int(str(info.get("port") or 0)), str(info.get("sock") or "")
            base_url = str(info.get("base_url") or "/")
            if probe.answers(address=address, port=port, sock=sock, base_url=base_url, timeout=1.0):
                # Jupyter writes that json before it binds: in between, another user can take a fixed port.
                ownership.check(launch.process.pid, launch.runtime_dir, address, port, sock)
                if launch.process.poll() is not None:  # its fds were checked: it must still hold them
                    raise _Stopped()
                return info
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(POLL_INTERVAL)


class _Stopped(Exception):
    """The server exited, or the user asked to stop, before it was ready."""


def _job_end(job_id: str) -> float | None:
    """The job's end time from scontrol, so instructions can say when the server goes away."""
    from jupyter_hop.slurm import tools

    try:
        job = tools.scontrol_job(job_id)
    except HopError:
        return None
    return job.end if job else None


def prune_stale(paths: Paths, host: str, err: IO[str]) -> None:
    """Remove records of launchers on this host that are gone (a SIGKILLed launcher leaves one), and stop the
    server such a launcher orphaned: once its record is gone, nothing would ever find or stop it."""
    from jupyter_hop.tracking import liveness, stale

    for path, record in records.all_records(paths):
        if record is None or record.kind == "job" or record.host != host:
            continue
        if not liveness.launcher_alive(record):
            done = stale.remove_stale(paths, path, record)
            if done:
                err.write(f"jupyter-hop: {record.key} was stale (launcher pid {record.pid} is gone): {done}\n")


@dataclass
class Plan:
    """Everything decided before the child starts."""

    profile: Profile
    where: Placement
    argv: list[str]
    address: str
    runtime_dir: Path
    token: str  # "" when the profile has a password

    @property
    def token_file(self) -> Path | None:
        return self.runtime_dir / "token" if self.token else None


# What the launcher prints once the server answers, instead of the text instructions (`run --json`).
Announce = Callable[[Record], str]


def run(
    paths: Paths, profile: Profile, *, out: IO[str], err: IO[str], own_config: bool = False,
    announce: Announce | None = None, verbose: bool = False,
) -> int:
    """Run the server in the foreground until it stops; the return value is the process exit code.

    `own_config`: the profile carries one-off overrides, so its server config goes into this launch's private
    dir, and the profile's own file (which `config` shows and other launches use) is left as it is.
    On a terminal the server's log goes to a log file and only its warnings and errors to `err` (all of it
    with `verbose`), so that the instructions stay the last thing on the screen.
    """
    where = placement(profile, os.environ)  # input like the profile: checked before anything is written or started
    if os.geteuid() == 0:
        # Jupyter refuses root without --allow-root, and a notebook server should not run as root anyway.
        raise HopError("Jupyter does not run as root: run jupyter-hop as the user who will use the notebooks")
    base_argv = check_app(profile.server.app)
    with locked(paths):  # a `password` running now must not be undone by a config rendered with the old hash
        hashed = serverconfig.read_hash(paths, profile.name)
        check_bind_needs_password(profile, hashed)
        if own_config:
            own_text = serverconfig.render(profile, hashed, serverconfig.resolved_root(profile))
        else:
            config = serverconfig.write(paths, profile)
    address = node_address(place.this_host()) if profile.server.bind == "node" else "127.0.0.1"
    prune_stale(paths, where.host, err)  # first: an orphaned server may hold the fixed port
    if profile.server.port:
        check_port_free(address, profile.server.port)
    runtime_dir = new_launch_dir(paths, err)
    server_output: ServerOutput | None = None
    try:
        if own_config:
            config = runtime_dir / "jupyter_server_config.py"
            atomic_write(config, own_text)
        sock = runtime_dir / "jupyter.sock"
        if profile.server.bind == "socket" and len(str(sock).encode()) > MAX_SOCKET_PATH:
            raise HopError(
                f"the socket path {sock} is longer than {MAX_SOCKET_PATH} bytes, which Unix sockets cannot use; "
                "set XDG_RUNTIME_DIR to a shorter directory or use bind = localhost"
            )
        argv = _server_argv(base_argv, config, profile.server.bind, address, profile.server.port, sock)
        plan = Plan(profile, where, argv, address, runtime_dir, "" if hashed else secrets.token_hex(24))
        if plan.token_file:
            atomic_write(plan.token_file, plan.token)  # no newline: Jupyter would keep it as part of the token
        server_output = serverlog.for_launch(paths, profile.name, where.host, err, verbose)
        if server_output.path:
            err.write(f"jupyter-hop: starting Jupyter; its whole log: {server_output.path}\n")
        stopper = Stopper()
        stopper.install()
        started = time.time()
        ready = _start_until_ready(plan, stopper, server_output)
        if ready is None:
            return 0  # asked to stop before the server was ready
        launch, info, job_end = ready
        try:
            record = _record(plan, launch, info, started, job_end)
            return _serve(paths, plan, record, launch, stopper, out, err, announce)
        finally:
            child.finish(launch)  # after any failure (closed stdout, record write): the server never outlives it
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if server_output:
            server_output.close()


def _start(plan: Plan, output: ServerOutput) -> Launch:
    return child.start(plan.argv, _child_env(plan.runtime_dir, plan.token_file), plan.runtime_dir, output)


def _start_until_ready(
    plan: Plan, stopper: Stopper, output: ServerOutput
) -> tuple[Launch, dict[str, object], float | None] | None:
    """Start the child and wait for it; retry when an automatically picked port was taken in between."""
    server = plan.profile.server
    deadline = time.monotonic() + server.ready_timeout
    attempts = AUTO_PORT_ATTEMPTS if server.bind != "socket" and not server.port else 1
    job_end: float | None = None
    for attempt in range(attempts):
        launch = _start(plan, output)
        handed_over = False
        try:
            stopper.child = launch.process
            if attempt == 0 and plan.where.job_id:
                job_end = _job_end(plan.where.job_id)  # while the server starts, not after
            ready = launch, _wait_ready(launch, stopper, deadline, plan.address), job_end
            handed_over = True
            return ready
        except _Stopped:
            if stopper.requested:
                return None
            if attempt + 1 < attempts and "no available port" in launch.log_tail():
                continue
            code = launch.process.returncode
            raise HopError(
                f"the Jupyter server exited with code {code} before it was ready", detail=child.tail_text(launch)
            ) from None
        except ownership.NotOurs:
            if attempt + 1 < attempts:  # an automatic port another server took between Jupyter's check and bind
                continue
            raise
        except TimeoutError:
            raise HopError(
                f"the Jupyter server did not answer within server.ready_timeout = {server.ready_timeout} s; "
                "it was stopped",
                detail=child.tail_text(launch),
            ) from None
        finally:
            if not handed_over:  # whatever went wrong (or a stop request): never leave this child running
                child.finish(launch)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _record(plan: Plan, launch: Launch, info: dict[str, object], started: float, job_end: float | None) -> Record:
    where, bind = plan.where, plan.profile.server.bind
    # Who the launcher and the server are, so that cleanup never signals a process that merely got their pid.
    launcher, server = ProcessId.of(os.getpid()), ProcessId.of(launch.process.pid)
    return Record(
        kind=where.kind,
        profile=plan.profile.name,
        host=where.host,
        bind=bind,
        address="" if bind == "socket" else plan.address,
        port=int(str(info.get("port") or 0)),
        sock=str(info.get("sock") or ""),
        base_url=str(info.get("base_url") or "/"),
        app=plan.profile.server.app,
        pid=os.getpid(),
        server_pid=launch.process.pid,
        started=started,
        local_port=plan.profile.server.local_port,
        wanted_local_port=plan.profile.server.local_port,
        login_host=where.login_host,
        ssh_host=where.ssh_host,
        ssh_user=where.ssh_user,
        job_id=where.job_id,
        job_end=job_end,
        unit=where.unit,
        token=plan.token,
        launch_id=secrets.token_hex(8),
        boot_id=launcher.boot_id if launcher else "",
        pid_start=launcher.start_ticks if launcher else 0,
        argv=list(launcher.argv) if launcher else [],
        server_start=server.start_ticks if server and launcher and server.boot_id == launcher.boot_id else 0,
        server_argv=list(server.argv) if server else [],
        cluster=cluster_of(where),
    )


def _serve(
    paths: Paths, plan: Plan, record: Record, launch: Launch, stopper: Stopper, out: IO[str], err: IO[str],
    announce: Announce | None,
) -> int:
    """Publish the record and the instructions, then wait for the server to stop."""
    from jupyter_hop.slurm import comment
    from jupyter_hop.tracking import instructions

    # Should this fail, run() stops the server: without its record nobody could find or stop it.
    with records.locked(paths):
        record.local_port = choose_local_port(paths, record.wanted_local_port)
        records.write(paths, record)
    try:
        text = announce(record) if announce else instructions.render(
            record, style=plan.profile.ssh.style, show_secret=out.isatty(), hop=instructions.invocation()
        )
        output.write_or_fail(out, text, "the instructions", "the server was stopped")  # by run()
        child.sd_notify(f"READY=1\nSTATUS=Jupyter ready on {record.host} at {record.endpoint}", os.environ)
        comment.announce(record, "ready", err)  # a job's: readiness that no file-system cache can delay
        code = child.wait_exit(launch, stopper)
    finally:
        records.remove(paths, record)
        comment.announce(record, "stopped", err)  # so that a stale "ready" misleads no one re-attaching
    if stopper.requested or code == 0:
        return 0
    raise HopError(f"the Jupyter server on {record.host} exited with code {code}", detail=child.tail_text(launch))
